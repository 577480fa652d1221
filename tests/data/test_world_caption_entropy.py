"""H(caption string) of the shapes world against brute force and large-sample estimates.

Three references, none of which uses the formula under test:

* exact: for configs with a small string space, every (mention set, values, template, synonyms, generic
  noun) is written with `write_caption` and its probability summed per distinct string;
* plug-in: 200,000 captions from `ShapesWorld.captions_and_labels` of a restricted world (about 5,000
  strings) with decoys and partial captions; the Miller-Madow-corrected plug-in entropy has a residual
  bias of O(strings / N^2) and a standard error of sd(log p) / sqrt(N) ~ 0.003 nats, so it must agree
  within 4 standard errors + 0.005 nats;
* Monte Carlo log-likelihood for the default world (about e^12.9 strings, too many for a plug-in): the mean
  of -log p(caption) over sampled captions is an unbiased estimate of H(caption), with p(caption) =
  P(content) P(string | content), P(string | content) by enumerating every wording of the parsed content.
"""

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest

from infomug.data.world import ShapesWorld, WorldConfig
from infomug.data.world_captions import (
    CAPTION_FACTORS,
    GENERIC_NOUNS,
    NUM_TEMPLATES,
    WORDS,
    active_factors,
    parse_caption,
    write_caption,
)
from infomug.data.world_factors import COLUMNS, NUM_COLUMNS
from infomug.data.world_information import caption_content_entropy, caption_entropy

# Given statistics skip the 2048-image pass that computes them; captions do not depend on them.
STATS = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def value_pmfs(max_objects, second):
    p2 = second if max_objects == 2 else 0.0
    pmfs = {f: np.full(len(WORDS[f]), 1 / len(WORDS[f])) for f in CAPTION_FACTORS}
    pmfs["num_objects"] = np.array([1 - p2, p2])
    return pmfs


def mention_set_law(probabilities, partial, max_objects):
    """Naive {mention set: probability}: independent coins for clean captions, one uniform factor else."""
    active = active_factors(max_objects)
    law = defaultdict(float)
    for coins in itertools.product((False, True), repeat=len(active)):
        subset = frozenset(f for f, c in zip(active, coins, strict=True) if c)
        law[subset] += (1 - partial) * math.prod(
            probabilities[f] if c else 1 - probabilities[f] for f, c in zip(active, coins, strict=True)
        )
    for f in active:
        law[frozenset({f})] += partial / len(active)
    return law


def wordings(values):
    """Every (string, probability) wording of ``values``: template, synonyms and noun uniform."""
    factors = sorted(values)
    choices = [range(len(WORDS[f][values[f]])) for f in factors]
    for template, noun, *synonyms in itertools.product(
        range(NUM_TEMPLATES), range(len(GENERIC_NOUNS)), *choices
    ):
        u = np.zeros(NUM_COLUMNS)
        u[COLUMNS["template"]] = (template + 0.5) / NUM_TEMPLATES
        u[COLUMNS["word_noun"]] = (noun + 0.5) / len(GENERIC_NOUNS)
        probability = 1 / (NUM_TEMPLATES * len(GENERIC_NOUNS))
        for f, pick, options in zip(factors, synonyms, choices, strict=True):
            u[COLUMNS[f"word_{f}"]] = (pick + 0.5) / len(options)
            probability /= len(options)
        yield write_caption(values, u), probability


def brute_force_entropy(max_objects, second, partial, probabilities):
    pmfs = value_pmfs(max_objects, second)
    law = defaultdict(float)
    for subset, p_subset in mention_set_law(probabilities, partial, max_objects).items():
        if p_subset == 0:
            continue
        factors = sorted(subset)
        for combo in itertools.product(*(range(pmfs[f].size) for f in factors)):
            p_values = p_subset * math.prod(pmfs[f][v] for f, v in zip(factors, combo, strict=True))
            if p_values == 0:
                continue
            for text, p_wording in wordings(dict(zip(factors, combo, strict=True))):
                law[text] += p_values * p_wording
    p = np.array(list(law.values()))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    return float(-(p * np.log(p)).sum())


def mentions(**given):
    return {f: given.get(f, 0.0) for f in CAPTION_FACTORS}


SMALL_CONFIGS = {
    "nothing said": (1, 0.5, 0.0, mentions()),
    "shape only": (1, 0.5, 0.0, mentions(shape=1.0)),
    "shape or colour": (1, 0.5, 0.0, mentions(shape=0.5, colour=0.5)),
    "size, colour, shape, partial": (1, 0.5, 0.5, mentions(shape=0.8, colour=0.3, size=1.0)),
    "two objects": (2, 0.3, 0.25, mentions(num_objects=1.0, rotation=0.5, position=0.5)),
    "everything once": (2, 0.5, 1.0, mentions()),
}


@pytest.mark.parametrize("name", list(SMALL_CONFIGS))
def test_caption_entropy_matches_brute_force_enumeration(name):
    max_objects, second, partial, probabilities = SMALL_CONFIGS[name]
    exact = caption_entropy(max_objects, second, partial, probabilities)
    assert exact == pytest.approx(brute_force_entropy(max_objects, second, partial, probabilities), abs=1e-9)
    assert exact > caption_content_entropy(max_objects, second, partial, probabilities)


def test_templates_one_and_four_coincide_only_for_a_bare_noun():
    # The closed form for "nothing said": templates {0}, {2}, {3}, {1, 4} (1/5, 1/5, 1/5, 2/5) times a
    # uniform generic noun. A mention set that is not {} or {shape} has five distinct template strings.
    merged = -3 * 0.2 * math.log(0.2) - 0.4 * math.log(0.4) + math.log(3)
    assert caption_entropy(1, 0.5, 0.0, mentions()) == pytest.approx(merged, abs=1e-12)
    colour = math.log(8) + math.log(5) + 0.8 * math.log(3) + math.log(2) * 3 / 8  # 3 colours have 2 words
    assert caption_entropy(1, 0.5, 0.0, mentions(colour=1.0)) == pytest.approx(colour, abs=1e-12)


def test_world_caption_entropy_matches_a_miller_madow_plug_in_with_noise():
    n = 200_000
    config = WorldConfig(
        seed=3,
        size=n,
        eval_size=1,
        mention_probabilities=mentions(shape=0.9, colour=0.5, num_objects=0.5),
        irrelevant_caption_fraction=0.3,
        partial_caption_fraction=0.2,
        **STATS,
    )
    world = ShapesWorld(config)
    captions, _ = world.captions_and_labels(np.arange(n))
    _, inverse, counts = np.unique(np.array(captions), return_inverse=True, return_counts=True)
    log_p = np.log(counts / n)
    plug_in = float(-(counts / n * log_p).sum())
    miller_madow = plug_in + (counts.size - 1) / (2 * n)
    stderr = float(log_p[inverse].std()) / math.sqrt(n)
    exact = world.caption_entropy()
    assert plug_in < exact  # biased low
    assert abs(miller_madow - exact) <= 4 * stderr + 0.005, (miller_madow, exact, stderr)
    # Decoys leave the caption's law, hence its entropy, unchanged.
    clean = ShapesWorld(WorldConfig(**{**config.__dict__, "irrelevant_caption_fraction": 0.0}))
    assert clean.caption_entropy() == exact


def test_default_world_caption_entropy_matches_the_monte_carlo_log_likelihood():
    n = 4000
    world = ShapesWorld(WorldConfig(seed=5, size=n, eval_size=1, partial_caption_fraction=0.1, **STATS))
    cfg = world.config
    pmfs = value_pmfs(cfg.max_objects, cfg.second_object_probability)
    set_law = mention_set_law(cfg.mention_probabilities, cfg.partial_caption_fraction, cfg.max_objects)
    captions, _ = world.captions_and_labels(np.arange(n))
    wording_cache: dict[tuple, dict[str, float]] = {}
    surprisal = np.empty(n)
    for row, text in enumerate(captions):
        content = parse_caption(text)
        key = tuple(sorted(content.items()))
        if key not in wording_cache:
            law = defaultdict(float)
            for string, p in wordings(content):
                law[string] += p
            wording_cache[key] = law
        p_content = set_law[frozenset(content)] * math.prod(pmfs[f][v] for f, v in content.items())
        surprisal[row] = -math.log(p_content * wording_cache[key][text])
    stderr = surprisal.std() / math.sqrt(n)
    assert abs(surprisal.mean() - world.caption_entropy()) <= 4 * stderr, (surprisal.mean(), stderr)
