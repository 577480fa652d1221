"""Both neighbour backends against an exhaustive numpy search, ties and boundaries included."""

import numpy as np
import pytest
import torch

from estimators import neighbors
from estimators.neighbors import brute, kdtree, sorted1d


def naive_max_norm(points: np.ndarray) -> np.ndarray:
    distances = np.abs(points[:, None, :] - points[None, :, :]).max(axis=2)
    np.fill_diagonal(distances, np.inf)
    return distances


@pytest.fixture(params=["continuous", "tied"])
def spaces(request):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(600, 2)), rng.normal(size=(600, 3))
    if request.param == "tied":  # one decimal: many equal distances and duplicated points
        x, y = np.round(x, 1), np.round(y, 1)
    return torch.from_numpy(x), torch.from_numpy(y)


@pytest.mark.parametrize("search", [kdtree.knn, lambda s, k: brute.knn(s, k, tile=128)])
def test_knn_distances_match_exhaustive_search(spaces, search):
    joint = naive_max_norm(np.hstack([s.numpy() for s in spaces]))
    expected = np.sort(joint, axis=1)[:, :4]
    distances, index = search(list(spaces), 4)
    np.testing.assert_array_equal(distances.numpy(), expected)
    # the returned neighbours really are at the returned distances, and never the point itself
    np.testing.assert_array_equal(np.take_along_axis(joint, index.numpy(), axis=1), expected)


@pytest.mark.parametrize("strict", [True, False])
def test_counts_match_exhaustive_search_at_the_boundary(spaces, strict):
    x, y = spaces
    radii, _ = kdtree.knn([x, y], 3)
    radii = radii[:, -1].contiguous()  # radii equal to real distances: the boundary case that matters
    distances = naive_max_norm(x.numpy())
    inside = distances < radii.numpy()[:, None] if strict else distances <= radii.numpy()[:, None]
    expected = inside.sum(axis=1)
    np.testing.assert_array_equal(kdtree.count_within(x, radii, strict).numpy(), expected)
    np.testing.assert_array_equal(brute.count_within(x, radii, strict, tile=128).numpy(), expected)
    queries = torch.tensor([5, 0, 599, 17])
    for backend in ("kdtree", "brute"):
        counted = neighbors.count_within(x, radii[queries], strict, backend, queries=queries)
        np.testing.assert_array_equal(counted.numpy(), expected[queries.numpy()])


@pytest.mark.parametrize("strict", [True, False])
def test_one_dimensional_bisection_counts_match_exhaustive_search(spaces, strict):
    x = spaces[0][:, :1].contiguous()
    radii = kdtree.knn(list(spaces), 3)[0][:, -1].contiguous()
    distances = naive_max_norm(x.numpy())
    inside = distances < radii.numpy()[:, None] if strict else distances <= radii.numpy()[:, None]
    np.testing.assert_array_equal(sorted1d.count_within(x, radii, strict).numpy(), inside.sum(axis=1))
    queries = torch.tensor([3, 599, 0])
    counted = sorted1d.count_within(x, radii[queries], strict, queries=queries)
    np.testing.assert_array_equal(counted.numpy(), inside.sum(axis=1)[queries.numpy()])


def test_zero_radius_counts_exact_duplicates_only():
    points = torch.tensor([[0.0], [0.0], [0.0], [1.0], [2.0], [2.0]], dtype=torch.float64)
    zero = torch.zeros(6, dtype=torch.float64)
    for count in (kdtree.count_within, brute.count_within, sorted1d.count_within):
        assert count(points, zero, False).tolist() == [2, 2, 2, 0, 1, 1]
        assert count(points, zero, True).tolist() == [0] * 6


def test_distances_to_matches_the_search():
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(300, 4)))
    distances, index = neighbors.knn([x], 5, backend="brute")
    assert torch.equal(neighbors.distances_to(x, index), distances)
    rows = torch.tensor([7, 3])
    assert torch.equal(neighbors.distances_to(x, index[rows], rows=rows), distances[rows])


def test_brute_force_never_allocates_more_than_a_tile(monkeypatch):
    """N = 100,000 must not build an N x N matrix: every distance block is at most tile x tile."""
    largest = []
    real_cdist = torch.cdist

    def recording_cdist(a, b, p):
        largest.append(a.shape[0] * b.shape[0])
        return real_cdist(a, b, p=p)

    monkeypatch.setattr(torch, "cdist", recording_cdist)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1000, 3)))
    brute.knn([x, x], 3, tile=128)
    brute.count_within(x, torch.ones(1000, dtype=torch.float64), True, tile=128)
    brute.count_within(x, torch.ones(10, dtype=torch.float64), True, queries=torch.arange(10), tile=128)
    assert max(largest) <= 128 * 128


def test_backend_choice():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert neighbors.choose_backend(2, cpu) == "kdtree"
    assert neighbors.choose_backend(neighbors.KDTREE_MAX_DIM + 1, cpu) == "brute"
    assert neighbors.choose_backend(neighbors.KDTREE_MAX_DIM + 1, cpu, n=neighbors.LARGE_N) == "kdtree"
    assert neighbors.choose_backend(2, gpu) == "brute"
    with pytest.raises(ValueError, match="CPU"):
        neighbors.choose_backend(2, gpu, "kdtree")
    with pytest.raises(ValueError, match="backend must be"):
        neighbors.choose_backend(2, cpu, "faiss")
