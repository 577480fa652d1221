"""Promises the estimators keep on hostile input: a right number, or a clear refusal, never a wrong number.

Each test is named as the promise it checks (issue 20, "Estimators").
"""

import math

import numpy as np
import pytest

import estimators
from infomug.arrays import load_array
from infomug.cli import main

RNG = np.random.default_rng(20)
X = RNG.normal(size=(400, 2))
Y = X + 0.5 * RNG.normal(size=(400, 2))  # I(X; Y) = 2 log(sqrt(5)) = 1.61 nats
FAST = {"uncertainty": False, "seed": 0}


@pytest.mark.parametrize("scale", [1e160, 1e300, 1e-300])
def test_huge_magnitudes_are_estimated_or_refused_never_wrong(scale):
    # Beyond ~1e154 the squares in a standard deviation overflow; the units must not change any answer.
    # Tolerance 1e-6 nats: the scaled data differ from the originals only by rounding (1e-16 relative).
    for method in ("ksg", "ksg2", "mixed", "gaussian", "copula"):
        plain = estimators.estimate(X, Y, method=method, **FAST)
        scaled = estimators.estimate(X * scale, Y * scale, method=method, **FAST)
        assert scaled.method == plain.method and scaled.value == pytest.approx(plain.value, abs=1e-6), method
        assert scaled.ceiling is None or scaled.value <= scaled.ceiling
    auto = estimators.estimate(X * scale, Y * scale, neural=False, **FAST)
    assert auto.method == "ksg1" and auto.value == pytest.approx(1.5, abs=0.2)
    # Differential entropy moves by the log-Jacobian d log(scale), exactly as units demand.
    for method in ("kl", "gaussian"):
        plain = estimators.estimate_entropy(X, method=method, **FAST)
        scaled = estimators.estimate_entropy(X * scale, method=method, **FAST)
        assert scaled.value == pytest.approx(plain.value + 2 * math.log(scale), abs=1e-6), method
    # The noise channel's I is unchanged when the features and sigma share a unit.
    plain = estimators.noisy_channel_mi(X, relative_sigma=0.3, **FAST)
    scaled = estimators.noisy_channel_mi(X * scale, relative_sigma=0.3, **FAST)
    assert scaled.value == pytest.approx(plain.value, abs=1e-6)


def test_huge_magnitudes_give_the_same_answer_from_the_command_line(tmp_path, capsys):
    np.save(tmp_path / "x.npy", X * 1e300)
    np.save(tmp_path / "y.npy", Y * 1e300)
    np.save(tmp_path / "x1.npy", X)
    np.save(tmp_path / "y1.npy", Y)
    for method in ("ksg", "gaussian"):
        common = ["--method", method, "--no-uncertainty"]
        assert main(["mi", str(tmp_path / "x1.npy"), str(tmp_path / "y1.npy"), *common]) == 0
        plain = capsys.readouterr().out
        assert main(["mi", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), *common]) == 0
        assert capsys.readouterr().out.split("[")[0] == plain.split("[")[0]
    assert main(["entropy", str(tmp_path / "x.npy"), "--method", "kl", "--no-uncertainty"]) == 0
    assert "inf" not in capsys.readouterr().out


def test_a_column_whose_scale_one_outlier_sets_is_named_never_silently_squeezed():
    # One 1e300 value used to overflow the column's standard deviation and zero the whole column.
    x = X.copy()
    x[0, 1] = 1e300
    for estimate in (
        estimators.ksg_mi(x, Y, **FAST),
        estimators.mixed_mi(x, Y, **FAST),
        estimators.gaussian_mi(x, Y, **FAST),
        estimators.kl_entropy(x, **FAST),
    ):
        assert math.isfinite(estimate.value)
        assert any(
            "x column(s) 1: a few extreme values set the standard deviation" in w for w in estimate.warnings
        )
    # Ordinary data, heavy tails included (Student-t, 3 degrees of freedom), raise no such warning.
    heavy = RNG.standard_t(3, size=(400, 2))
    for data in (X, heavy):
        assert not any("extreme values" in w for w in estimators.ksg_mi(data, Y, **FAST).warnings)


@pytest.mark.parametrize(("n", "dim"), [(10, 5), (15, 10), (6, 3)])
def test_too_few_samples_for_the_dimension_are_refused_never_infinite(n, dim):
    # Centred, N samples span N - 1 dimensions: when rank(x) + rank(y) > N - 1 the spans of x and y
    # must meet, so even independent data show canonical correlations of exactly 1.
    x, y = RNG.normal(size=(n, dim)), RNG.normal(size=(n, dim))
    for method in ("ksg", "ksg2", "auto"):
        with pytest.raises(ValueError, match=f"too few samples for this dimension.*at least {2 * dim + 1}"):
            estimators.estimate(x, y, method=method, **FAST)
    # One more sample and the test means something again: an estimate, finite for independent data.
    x, y = RNG.normal(size=(2 * dim + 1, dim)), RNG.normal(size=(2 * dim + 1, dim))
    assert math.isfinite(estimators.ksg_mi(x, y, **FAST).value)


def test_small_independent_samples_are_never_called_infinite():
    # At N = k + 2 every point's neighbourhoods agree by chance ("saturation"); that is no functional
    # relation. Every N from k + 1 = 4 up, independent data: a finite value or a refusal, never inf.
    for dim in (1, 2, 5):
        for n in range(4, 31):
            x, y = RNG.normal(size=(n, dim)), RNG.normal(size=(n, dim))
            try:
                estimate = estimators.ksg_mi(x, y, **FAST)
            except ValueError as error:
                assert "too few samples for this dimension" in str(error) and n <= 2 * dim
                continue
            assert math.isfinite(estimate.value), (n, dim)
    small = estimators.ksg_mi(RNG.normal(size=(5, 2)), RNG.normal(size=(5, 2)), **FAST)
    assert any("happens by chance" in w and "at least 20" in w for w in small.warnings)
    # With enough samples a function is still told apart from chance: infinite, as before.
    x = RNG.normal(size=(200, 1))
    assert estimators.ksg_mi(x, np.exp(x), **FAST).value == math.inf


def test_empty_or_damaged_array_files_are_refused_with_one_clear_message(tmp_path, capsys):
    np.save(tmp_path / "y.npy", Y)
    np.save(tmp_path / "good.npy", X)
    good = (tmp_path / "good.npy").read_bytes()
    files = {
        "empty.npy": (b"", "is empty \\(0 bytes\\)"),
        "empty.npz": (b"", "is empty \\(0 bytes\\)"),
        "cut.npy": (good[:-100], "damaged or truncated"),
        "header.npy": (good[:40], "damaged or truncated"),
        "text.npy": (b"1,2\n3,4\n", "is not a .npy file"),
        "cut.npz": (b"PK\x03\x04" + b"\x00" * 20, "damaged or truncated"),
    }
    for name, (content, message) in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=message):
            load_array(str(tmp_path / name))
        assert main(["mi", str(tmp_path / name), str(tmp_path / "y.npy")]) == 2
        error = capsys.readouterr().err
        assert error.startswith("infomug mi: error:") and "Traceback" not in error
        assert main(["entropy", str(tmp_path / name)]) == 2
        capsys.readouterr()


def test_a_constant_variable_is_refused_by_every_continuous_method_with_one_message(tmp_path, capsys):
    # All rows identical: "auto" used to route it to an atoms estimator and report 0 without a word.
    same = np.ones((400, 2))
    for method in ("auto", "ksg", "ksg2", "gaussian", "copula"):
        with pytest.raises(ValueError, match=r"x is constant \(all 400 rows are \[1.0, 1.0\]\)"):
            estimators.estimate(same, Y, method=method, **FAST)
        with pytest.raises(ValueError, match=r"y is constant"):
            estimators.estimate(X, same, method=method, **FAST)
    for method in ("kl", "gaussian"):
        with pytest.raises(ValueError, match=r"x is constant"):
            estimators.estimate_entropy(same, method=method, **FAST)
    np.save(tmp_path / "same.npy", same)
    np.save(tmp_path / "y.npy", Y)
    messages = set()
    for method in ("auto", "ksg"):
        assert main(["mi", str(tmp_path / "same.npy"), str(tmp_path / "y.npy"), "--method", method]) == 2
        messages.add(capsys.readouterr().err)
    assert len(messages) == 1 and "x is constant" in messages.pop()
