"""Exact caption information against closed forms, a naive enumeration and large-sample estimates.

Plug-in checks: N = 40,000 captions, read back with `parse_caption`; the Miller-Madow-corrected plug-in
I(parsed value; label) has bias O(cells / N^2) and the reported subsample standard error; a check allows
4 standard errors + 0.01 nats. The total is checked by the Monte Carlo mean of the exact log-likelihood
ratio log p(content | factors) / p(content), an unbiased estimate, within 4 standard errors.
"""

import math

import numpy as np
import pytest

from estimators import discrete_mi
from infomug.data.world import ShapesWorld, WorldConfig
from infomug.data.world_captions import CAPTION_FACTORS, CAPTION_LABELS, parse_caption
from infomug.data.world_information import caption_factor_pmfs, channel_information

N = 40_000


def naive_channel_information(p, eps):
    joint = p[:, None] * ((1 - eps) * np.eye(p.size) + eps * p[None, :])
    outer = p[:, None] * p[None, :]
    mask = joint > 0
    return float((joint[mask] * np.log(joint[mask] / outer[mask])).sum())


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("p", [np.full(8, 1 / 8), np.array([0.5, 0.3, 0.2]), np.array([0.9, 0.1])])
def test_channel_information_matches_naive_enumeration(p, eps):
    assert channel_information(p, eps) == pytest.approx(naive_channel_information(p, eps), abs=1e-12)


def test_channel_information_limits_and_nonlinearity():
    p = np.full(8, 1 / 8)
    assert channel_information(p, 0.0) == pytest.approx(math.log(8))
    assert channel_information(p, 1.0) == pytest.approx(0.0, abs=1e-12)
    for eps in (0.1, 0.3, 0.6):
        # Convex in the channel: strictly below the linear interpolation (1 - eps) H.
        assert channel_information(p, eps) < (1 - eps) * math.log(8) - 1e-3
    with pytest.raises(ValueError, match="pmf"):
        channel_information(np.array([0.5, 0.6]), 0.1)
    with pytest.raises(ValueError, match="irrelevant"):
        channel_information(p, 1.5)


def test_fully_mentioned_clean_captions_carry_every_caption_factor():
    always = dict.fromkeys(CAPTION_FACTORS, 1.0)
    world = ShapesWorld(WorldConfig(size=10, mention_probabilities=always))
    information, entropies = world.caption_information(), world.factor_entropies()
    for label in ("shape", "colour", "size_bin", "position_bin", "rotation_bin", "num_objects"):
        assert information[label] == pytest.approx(entropies[label])
    for label in ("background", "background_hue", "caption_is_irrelevant"):
        assert information[label] == 0.0
    # A second-object label is "none" exactly when there is one object, so a caption that says "alone" or
    # "with another object" tells as much about it as about num_objects (and nothing more).
    for label in ("shape_2", "colour_2", "size_bin_2", "position_bin_2"):
        assert information[label] == pytest.approx(math.log(2))
    assert information["position_x"] == pytest.approx(math.log(3))
    total = sum(entropies[label] for label in CAPTION_LABELS.values())
    assert world.caption_information_total() == pytest.approx(total)


CONFIGS = {
    "clean": {},
    "noisy": {"irrelevant_caption_fraction": 0.3, "partial_caption_fraction": 0.25},
    "one-object": {"max_objects": 1, "irrelevant_caption_fraction": 0.6},
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def sampled(request):
    world = ShapesWorld(WorldConfig(seed=9, size=N, **CONFIGS[request.param]))
    captions, labels = world.captions_and_labels(range(N))
    return world, [parse_caption(c) for c in captions], labels


def test_caption_information_matches_plug_in_estimates(sampled):
    world, parsed, labels = sampled
    exact = world.caption_information()
    for factor, label in CAPTION_LABELS.items():
        said = np.array([p.get(factor, -1) for p in parsed])
        estimate = discrete_mi(said, labels[label])
        assert abs(estimate.value - exact[label]) <= 4 * estimate.stderr + 0.01, (
            label,
            estimate,
            exact[label],
        )
    column = np.array([p["position"] % 3 if "position" in p else -1 for p in parsed])
    estimate = discrete_mi(column, np.minimum(((labels["position_x"] - 0.2) / 0.2).astype(int), 2))
    assert abs(estimate.value - exact["position_x"]) <= 4 * estimate.stderr + 0.01
    mention_sets = np.array([sum(1 << CAPTION_FACTORS.index(f) for f in p) for p in parsed])
    estimate = discrete_mi(mention_sets, labels["caption_is_partial"])
    assert abs(estimate.value - exact["caption_is_partial"]) <= 4 * estimate.stderr + 0.01
    said_count = np.array([p.get("num_objects", -1) for p in parsed])
    for label in ("shape_2", "position_bin_2"):
        estimate = discrete_mi(said_count, labels[label])
        assert abs(estimate.value - exact[label]) <= 4 * estimate.stderr + 0.01, (label, exact[label])
    background = discrete_mi(np.array([p.get("colour", -1) for p in parsed]), labels["background"])
    assert abs(background.value) <= 4 * background.stderr + 0.01


def test_total_caption_information_matches_the_monte_carlo_log_likelihood_ratio(sampled):
    world, parsed, labels = sampled
    eps = world.config.irrelevant_caption_fraction
    pmfs = caption_factor_pmfs(world.config.max_objects, world.config.second_object_probability)
    ratios = np.empty(N)
    for row, content in enumerate(parsed):
        own = {f: int(labels[CAPTION_LABELS[f]][row]) - (f == "num_objects") for f in content}
        p_content = math.prod(pmfs[f][v] for f, v in content.items())
        ratios[row] = math.log(eps + (1 - eps) * (own == content) / p_content)
    stderr = ratios.std() / math.sqrt(N)
    assert abs(ratios.mean() - world.caption_information_total()) <= 4 * stderr


def test_noise_lowers_every_caption_information():
    clean = ShapesWorld(WorldConfig(size=10)).caption_information()
    noisy = ShapesWorld(WorldConfig(size=10, irrelevant_caption_fraction=0.5)).caption_information()
    for label in CAPTION_LABELS.values():
        assert 0 < noisy[label] < clean[label]


@pytest.mark.parametrize("partial", [0.0, 0.5])
def test_caption_content_entropy_matches_a_plug_in_count(partial):
    # Few mentioned factors keep the content's support small (<= 4 sets x 64 values), so the plug-in
    # entropy of 20,000 parsed captions is accurate to about 0.01 nats.
    mentions = {
        "shape": 0.5,
        "colour": 0.7,
        "size": 0.0,
        "position": 0.0,
        "rotation": 0.0,
        "num_objects": 0.0,
    }
    world = ShapesWorld(
        WorldConfig(
            size=20_000, max_objects=1, mention_probabilities=mentions, partial_caption_fraction=partial
        )
    )
    captions, _ = world.captions_and_labels(range(20_000))
    contents = [tuple(sorted(parse_caption(c).items())) for c in captions]
    _, counts = np.unique(np.array([hash(c) for c in contents]), return_counts=True)
    p = counts / counts.sum()
    plug_in = float(-(p * np.log(p)).sum()) + (len(counts) - 1) / (2 * len(contents))  # Miller-Madow
    assert plug_in == pytest.approx(world.caption_content_entropy(), abs=0.02)


def test_clean_caption_information_is_content_entropy_minus_mention_entropy():
    world = ShapesWorld(WorldConfig(size=10))
    probabilities = world.config.mention_probabilities
    mention_entropy = sum(
        -q * math.log(q) - (1 - q) * math.log(1 - q) for q in (probabilities[f] for f in CAPTION_FACTORS)
    )
    assert world.caption_information_total() == pytest.approx(
        world.caption_content_entropy() - mention_entropy
    )
