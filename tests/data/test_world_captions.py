"""Captions: content read back exactly, noise knobs at the asked rates, the background never named."""

import math
import re

import numpy as np
import pytest

from infomug.data import world_factors as wf
from infomug.data.world import ShapesWorld, WorldConfig
from infomug.data.world_captions import (
    CAPTION_FACTORS,
    CAPTION_LABELS,
    WORDS,
    active_factors,
    caption_values,
    draw_mentions,
    parse_caption,
    write_caption,
)

N = 20_000


@pytest.fixture(scope="module")
def noisy():
    world = ShapesWorld(
        WorldConfig(seed=5, size=N, irrelevant_caption_fraction=0.25, partial_caption_fraction=0.4)
    )
    captions, labels = world.captions_and_labels(range(N))
    return world, captions, labels


def test_parsing_recovers_every_mentioned_value_of_the_caption_source(noisy):
    world, captions, labels = noisy
    u = wf.uniforms(world._decoy_key, np.arange(N))
    decoy = wf.sample_factors(u, 2, 0.5)
    relevant = labels["caption_is_irrelevant"] == 0
    for row in range(N):
        source = labels if relevant[row] else decoy
        parsed = parse_caption(captions[row])
        for factor, value in parsed.items():
            offset = 1 if factor == "num_objects" else 0
            assert value == source[CAPTION_LABELS[factor]][row] - offset, (captions[row], factor)


def test_written_captions_parse_back_for_every_mention_set_and_template():
    u = wf.uniforms(wf.stream_key(0, "train"), np.arange(3000))
    factors = wf.sample_factors(u, 2, 0.5)
    rng = np.random.default_rng(0)
    for row in range(3000):
        mentions = rng.random((1, len(CAPTION_FACTORS))) < 0.5
        values = caption_values({k: v[row : row + 1] for k, v in factors.items()}, mentions, 0)
        caption = write_caption(values, u[row])
        assert parse_caption(caption) == values, caption
    for row in range(20):
        empty = write_caption({}, u[row])
        assert parse_caption(empty) == {} and empty.strip(), empty


def test_every_phrase_belongs_to_one_value_and_parsing_rejects_contradictions():
    phrases = [p for values in WORDS.values() for synonyms in values for p in synonyms]
    assert len(phrases) == len(set(phrases))
    for factor, values in WORDS.items():
        for value, synonyms in enumerate(values):
            for phrase in synonyms:
                assert parse_caption(f"something {phrase} here") == {factor: value}
    with pytest.raises(ValueError, match="two values of 'colour'"):
        parse_caption("a red and blue star")


def test_noise_knobs_produce_the_asked_fractions(noisy):
    _, captions, labels = noisy
    # Binomial tolerance: 4 standard deviations of a proportion from N draws.
    for name, rate in (("caption_is_irrelevant", 0.25), ("caption_is_partial", 0.4)):
        assert abs(labels[name].mean() - rate) < 4 * math.sqrt(rate * (1 - rate) / N), name
    partial = labels["caption_is_partial"] == 1
    sizes = np.array([len(parse_caption(c)) for c in captions])
    assert np.all(sizes[partial] == 1)
    assert sizes[~partial].mean() > 2.5  # clean captions mention 3.4 factors on average


def test_mention_rates_follow_the_configured_probabilities():
    probabilities = {
        "shape": 0.2,
        "colour": 1.0,
        "size": 0.0,
        "position": 0.5,
        "rotation": 0.7,
        "num_objects": 0.9,
    }
    u = wf.uniforms(wf.stream_key(3, "train"), np.arange(N))
    mentions, partial = draw_mentions(u, probabilities, 0.0, active_factors(2))
    assert not partial.any()
    for j, factor in enumerate(CAPTION_FACTORS):
        q = probabilities[factor]
        assert abs(mentions[:, j].mean() - q) <= 4 * math.sqrt(q * (1 - q) / N) + 1e-12, factor
    mentions, _ = draw_mentions(u, probabilities, 0.0, active_factors(1))
    assert not mentions[:, CAPTION_FACTORS.index("num_objects")].any()


def test_background_and_second_object_are_never_mentioned(noisy):
    _, captions, labels = noisy
    forbidden = re.compile(r"background|stripe|checker|plain|textur|hue|tint")
    assert not any(forbidden.search(c) for c in captions)
    # The second object's own values leave no trace: its colour is independent of caption colour words.
    two = labels["num_objects"] == 2
    relevant = labels["caption_is_irrelevant"] == 0
    said = np.array([parse_caption(c).get("colour", -1) for c in captions])
    rows = two & relevant & (said >= 0)
    match_second = (said[rows] == labels["colour_2"][rows]).mean()
    assert abs(match_second - 1 / 8) < 4 * math.sqrt(1 / 8 * 7 / 8 / rows.sum())


def test_captions_vary_in_wording_and_may_omit_shape_or_colour(noisy):
    _, captions, _ = noisy
    parsed = [parse_caption(c) for c in captions[:2000]]
    assert len(set(captions)) > 1500
    assert any("shape" not in p for p in parsed) and any("colour" not in p for p in parsed)
    starts = {c.split()[0] for c in captions[:2000]}
    assert {"a", "there"} <= starts and len(starts) >= 10  # noun phrases, sentences, lists and tags
