"""Exact max-norm (Chebyshev) neighbour searches with a backend chosen by dimension and device.

Every kNN estimator here asks two questions of the data: "how far is each point's k-th neighbour"
(in a product of spaces, under the max-norm) and "how many points lie within a radius of each point".
Both backends answer them exactly in float64, so they agree bit for bit and can be mixed freely:

* ``"kdtree"``: scipy's cKDTree, fast while the dimension is small (CPU only).
* ``"brute"``: tiled torch brute force, O(N^2 d) time, O(tile^2) memory, runs where the tensors are.

Radius counts in a one-dimensional space use a sorted-array bisection (``sorted1d``) under "auto".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import brute, kdtree, sorted1d

BACKENDS = ("auto", "kdtree", "brute")

# Above this many dimensions a max-norm KD-tree prunes too little to beat brute force. The tree's
# cost grows like N log N and brute force's like N^2, so the break-even dimension rises with N:
# about 8 at N = 10,000 and 10 at N = 50,000 (experiments/bench_estimators.py --crossover, 2 cores).
KDTREE_MAX_DIM = 8
KDTREE_MAX_DIM_LARGE_N = 10
LARGE_N = 30_000


def choose_backend(dim: int, device: torch.device, backend: str = "auto", n: int = 0) -> str:
    """Resolve ``backend`` for ``n`` points of dimension ``dim`` on ``device``.

    Raises:
        ValueError: for an unknown backend, or ``"kdtree"`` with data on a GPU.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        max_dim = KDTREE_MAX_DIM_LARGE_N if n >= LARGE_N else KDTREE_MAX_DIM
        return "kdtree" if device.type == "cpu" and dim <= max_dim else "brute"
    if backend == "kdtree" and device.type != "cpu":
        raise ValueError("backend='kdtree' runs on the CPU; move the data there or use 'brute'")
    return backend


def knn(spaces: Sequence[torch.Tensor], k: int, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest other points in the product of ``spaces`` under the max-norm.

    Args:
        spaces: One or more ``[N, d_s]`` float64 tensors on one device.
        k: Neighbours per point, ``1 <= k < N``.
        backend: ``"auto"``, ``"kdtree"`` or ``"brute"``.

    Returns:
        ``distances [N, k]`` ascending (float64) and ``indices [N, k]`` (int64), self excluded.
    """
    dim = sum(space.shape[1] for space in spaces)
    if choose_backend(dim, spaces[0].device, backend, spaces[0].shape[0]) == "kdtree":
        return kdtree.knn(spaces, k)
    return brute.knn(spaces, k)


def count_within(
    space: torch.Tensor,
    radii: torch.Tensor,
    strict: bool,
    backend: str = "auto",
    queries: torch.Tensor | None = None,
) -> torch.Tensor:
    """Number of other points within each query point's radius (``<`` if ``strict`` else ``<=``).

    Args:
        space: ``[N, d]`` float64.
        radii: ``[N]`` radii, or ``[Q]`` when ``queries`` is given.
        strict: Strict or non-strict comparison.
        backend: ``"auto"``, ``"kdtree"`` or ``"brute"``.
        queries: Optional ``[Q]`` int64 indices of the query points (default: all).

    Returns:
        ``[N]`` (or ``[Q]``) int64 counts, the query point itself excluded.
    """
    if space.shape[1] == 1 and backend == "auto":
        return sorted1d.count_within(space, radii, strict, queries)
    if choose_backend(space.shape[1], space.device, backend, space.shape[0]) == "kdtree":
        return kdtree.count_within(space, radii, strict, queries)
    return brute.count_within(space, radii, strict, queries)


def distances_to(
    space: torch.Tensor, index: torch.Tensor, rows: torch.Tensor | None = None, chunk: int = 8192
) -> torch.Tensor:
    """Max-norm distance from points to their listed neighbours.

    Args:
        space: ``[N, d]`` float64.
        index: ``[R, k]`` neighbour indices of the points ``rows`` (default: ``R = N``, all points).
        rows: Optional ``[R]`` indices of the points the rows of ``index`` belong to.

    Returns:
        ``[R, k]`` float64, bit-identical to the distances the searches compare.
    """
    rows = torch.arange(index.shape[0], device=index.device) if rows is None else rows
    out = torch.empty(index.shape, dtype=torch.float64, device=space.device)
    for start in range(0, index.shape[0], chunk):
        stop = start + chunk
        diff = space[rows[start:stop], None, :] - space[index[start:stop]]
        out[start:stop] = diff.abs().amax(dim=-1)
    return out
