"""Factor draws: counter-based uniforms, exact entropies against large-sample plug-in counts.

Tolerances: with N = 100,000 draws, the Miller-Madow-corrected plug-in entropy of a K-valued label
has standard error below sqrt(Var(log p) / N) <= 0.005 nats for these laws (0 for uniform ones) and
residual bias O(1/N^2); 0.01 nats covers it. Continuous factors: the plug-in entropy of 50 equal bins
plus log(bin width) estimates the differential entropy of a uniform law with the same error.
"""

import math

import numpy as np
import pytest

from estimators import discrete_entropy
from infomug.data import world_factors as wf

N = 100_000


@pytest.fixture(scope="module", params=[(2, 0.5), (2, 0.3), (1, 0.5)], ids=["two-half", "two-0.3", "one"])
def draws(request):
    max_objects, p2 = request.param
    u = wf.uniforms(wf.stream_key(11, "train"), np.arange(N))
    return wf.sample_factors(u, max_objects, p2), wf.factor_entropies(max_objects, p2)


def test_uniforms_are_uniform_independent_and_reproducible():
    key = wf.stream_key(0, "train")
    u = wf.uniforms(key, np.arange(50_000))
    assert u.shape == (50_000, wf.NUM_COLUMNS) and u.min() >= 0 and u.max() < 1
    assert np.abs(u.mean(axis=0) - 0.5).max() < 4 * math.sqrt(1 / 12 / 50_000)
    correlation = np.corrcoef(u.T)[~np.eye(wf.NUM_COLUMNS, dtype=bool)]
    assert np.abs(correlation).max() < 5 / math.sqrt(50_000)
    assert np.array_equal(wf.uniforms(key, [7, 3]), u[[7, 3]])


def test_stream_keys_differ_and_reject_bad_input():
    keys = {wf.stream_key(seed, stream) for seed in range(50) for stream in wf.STREAMS}
    assert len(keys) == 50 * len(wf.STREAMS)
    with pytest.raises(ValueError, match="seed"):
        wf.stream_key(-1, "train")
    with pytest.raises(ValueError, match="stream"):
        wf.stream_key(0, "validation")


def test_discrete_entropies_match_plug_in_counts(draws):
    factors, exact = draws
    for name in ("shape", "colour", "size_bin", "position_bin", "rotation_bin", "num_objects", "background"):
        estimate = discrete_entropy(factors[name], uncertainty=False).value
        assert estimate == pytest.approx(exact[name], abs=0.01), name
    for name in ("shape_2", "colour_2", "size_bin_2", "position_bin_2"):
        estimate = discrete_entropy(factors[name], uncertainty=False).value if exact[name] > 0 else 0.0
        assert estimate == pytest.approx(exact[name], abs=0.01), name


def test_continuous_entropies_match_binned_plug_in_counts(draws):
    factors, exact = draws
    ranges = {
        "size": wf.SIZE_RANGE,
        "position_x": wf.POSITION_RANGE,
        "position_y": wf.POSITION_RANGE,
        "rotation": wf.ROTATION_RANGE,
        "background_hue": wf.HUE_RANGE,
    }
    for name, (low, high) in ranges.items():
        values = factors[name]
        assert values.min() >= low and values.max() < high, name
        counts = np.histogram(values, bins=50, range=(low, high))[0]
        p = counts / counts.sum()
        estimate = -(p * np.log(p)).sum() + math.log((high - low) / 50)
        assert estimate == pytest.approx(exact[name], abs=0.01), name


def test_bins_agree_with_their_continuous_factors(draws):
    factors, _ = draws
    size_edges = np.linspace(*wf.SIZE_RANGE, 4)
    assert np.array_equal(np.digitize(factors["size"], size_edges[1:-1]), factors["size_bin"])
    position_edges = np.linspace(*wf.POSITION_RANGE, 4)[1:-1]
    column = np.digitize(factors["position_x"], position_edges)
    row = np.digitize(factors["position_y"], position_edges)
    assert np.array_equal(3 * row + column, factors["position_bin"])
    rotation_edges = np.linspace(*wf.ROTATION_RANGE, 4)[1:-1]
    assert np.array_equal(np.digitize(factors["rotation"], rotation_edges), factors["rotation_bin"])


def test_second_object_labels_are_none_exactly_when_one_object_is_drawn(draws):
    factors, _ = draws
    one = factors["num_objects"] == 1
    for name, none in (("shape_2", 8), ("colour_2", 8), ("size_bin_2", 3), ("position_bin_2", 9)):
        assert np.all(factors[name][one] == none)
        assert np.all(factors[name][~one] < none)


def test_factor_classes_name_every_value(draws):
    factors, _ = draws
    classes = wf.factor_classes(2)
    for name, names in classes.items():
        offset = 1 if name == "num_objects" else 0
        assert factors[name].max() - offset < len(names), name
    assert classes["shape_2"][-1] == "none" and len(wf.SHAPES) == len(set(wf.SHAPES)) == 8
    assert len(set(wf.COLOURS.values())) == 8
