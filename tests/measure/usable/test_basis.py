import numpy as np
import pytest

from infomug.measure.usable.basis import CanonicalBasis


def non_gaussian(n: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, 5]`` mixed, correlated, skewed columns: the FOBI rotation needs distinct kurtoses."""
    sources = np.stack(
        [
            rng.exponential(1.0, n),
            rng.gamma(4.0, 1.0, n),
            np.where(rng.random(n) < 0.3, rng.normal(3.0, 0.5, n), rng.normal(0.0, 1.0, n)),
            rng.lognormal(0.0, 0.5, n),
            rng.chisquare(3, n),
        ],
        axis=1,
    )
    return sources @ rng.normal(size=(5, 5))


def invertible_maps(rng: np.random.Generator, dim: int) -> dict[str, np.ndarray]:
    scales = np.diag(10.0 ** rng.uniform(-2, 2, dim))  # per-dimension rescaling over 1e-2..1e2
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return {"rescale": scales, "rotate": rotation, "both": scales @ rotation}


# Statistics are float64 and the output float32 (~1e-7 relative on O(1) standardised values); the FOBI
# eigenvectors amplify float error by 1 / (eigenvalue gap), which is O(1) for these sources: 1e-4 leaves
# two orders of headroom and still catches any real basis change (an O(1) difference).
TOLERANCE = 1e-4


@pytest.mark.parametrize("name", ["rescale", "rotate", "both"])
def test_vectors_invariant_under_invertible_maps(name):
    rng = np.random.default_rng(0)
    x = non_gaussian(3000, rng)
    mapped = x @ invertible_maps(rng, 5)[name] + 7.0
    original = CanonicalBasis.fit(x).transform(x)
    moved = CanonicalBasis.fit(mapped).transform(mapped)
    assert np.abs(original - moved).max() < TOLERANCE
    # standardised: unit variance, zero mean on the rows it was fit on
    np.testing.assert_allclose(original.std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_allclose(original.mean(axis=0), 0.0, atol=1e-4)


@pytest.mark.parametrize("name", ["rescale", "both"])
def test_token_grids_invariant_under_invertible_maps(name):
    rng = np.random.default_rng(1)
    tokens = non_gaussian(400 * 6, rng).reshape(400, 6, 5)
    mapped = tokens @ invertible_maps(rng, 5)[name]
    original = CanonicalBasis.fit(tokens).transform(tokens)
    moved = CanonicalBasis.fit(mapped).transform(mapped)
    assert original.shape == (400, 6, 5)
    assert np.abs(original - moved).max() < TOLERANCE


def test_fit_on_train_rows_transforms_other_rows_the_same_way():
    rng = np.random.default_rng(2)
    x = non_gaussian(2000, rng)
    mapped = x @ invertible_maps(rng, 5)["both"]
    train, held_out = slice(0, 1500), slice(1500, None)
    original = CanonicalBasis.fit(x[train]).transform(x[held_out])
    moved = CanonicalBasis.fit(mapped[train]).transform(mapped[held_out])
    assert np.abs(original - moved).max() < TOLERANCE


def test_rank_deficient_direction_is_dropped():
    rng = np.random.default_rng(3)
    x = non_gaussian(1000, rng)
    x = np.concatenate([x, x[:, :1] - 2 * x[:, 1:2]], axis=1)  # a 6th column in the span of the others
    basis = CanonicalBasis.fit(x)
    assert basis.input_dim == 6
    assert basis.dropped == 1
    assert basis.transform(x).shape == (1000, 5)


def test_errors():
    x = non_gaussian(100, np.random.default_rng(4))
    nan = x.copy()
    nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CanonicalBasis.fit(nan)
    with pytest.raises(ValueError, match="no variance"):
        CanonicalBasis.fit(np.ones((50, 4)))
    with pytest.raises(ValueError, match="shape"):
        CanonicalBasis.fit(np.ones(10))
    with pytest.raises(ValueError, match="dimensions"):
        CanonicalBasis.fit(x).transform(x[:, :3])
