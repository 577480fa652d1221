import json
import math

import pytest

from estimators import Estimate


def test_bits_and_interval_follow_from_nats():
    estimate = Estimate(value=math.log(2.0), stderr=0.1, n=100, method="ksg1", params={"k": 3})
    assert estimate.bits == pytest.approx(1.0)
    assert estimate.stderr_bits == pytest.approx(0.1 / math.log(2.0))
    low, high = estimate.ci95
    assert low == pytest.approx(math.log(2.0) - 1.959964 * 0.1, abs=1e-6)
    assert high == pytest.approx(math.log(2.0) + 1.959964 * 0.1, abs=1e-6)
    assert estimate.ci95_bits[0] == pytest.approx(low / math.log(2.0))


def test_json_round_trip_keeps_every_field():
    estimate = Estimate(
        value=1.5,
        stderr=0.02,
        n=10,
        method="infonce",
        params={"k": [3, 5]},
        kind="lower_bound",
        ceiling=2.3,
        seconds=0.5,
        warnings=("near the ceiling",),
    )
    restored = Estimate.from_dict(json.loads(json.dumps(estimate.to_dict())))
    assert restored == estimate


def test_infinite_value_has_an_infinite_interval_and_prints():
    estimate = Estimate(value=math.inf, stderr=math.nan, n=10, method="ksg1", warnings=("deterministic",))
    assert estimate.ci95 == (math.inf, math.inf)
    assert "inf nats" in str(estimate) and "deterministic" in str(estimate)


def test_summary_labels_bounds_and_names_the_settings():
    text = Estimate(0.5, 0.01, 100, "infonce", {"batch": 64}, kind="lower_bound", ceiling=4.16).summary()
    assert "(lower bound)" in text and "ceiling 4.1600" in text and "batch=64" in text and "N=100" in text


def test_rejects_unknown_kind_and_negative_n():
    with pytest.raises(ValueError, match="kind"):
        Estimate(0.0, 0.0, 1, "x", kind="estimate")
    with pytest.raises(ValueError, match="n must be"):
        Estimate(0.0, 0.0, -1, "x")
