"""Exact max-norm neighbour search by blocked brute force in torch (CPU or GPU).

Work is split into square tiles of the pair matrix and only tiles on or above the diagonal are
computed; each tile serves its rows and, transposed, its columns. Memory is a few tiles, never N x N.
Distances are exact in float64: a max-norm distance is a maximum of rounded differences, so a radius
found in one pass compares bit-for-bit with the same pair in another pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

INF = float("inf")
DEFAULT_TILE = 1024


def _tile_pairs(n: int, tile: int) -> Iterator[tuple[slice, slice]]:
    starts = range(0, n, tile)
    for a in starts:
        for b in starts:
            if b >= a:
                yield slice(a, min(a + tile, n)), slice(b, min(b + tile, n))


def _joint_distance(spaces: Sequence[torch.Tensor], rows: slice, cols: slice) -> torch.Tensor:
    """Max-norm distance in the product space: the max over spaces of each space's max-norm."""
    dist = torch.cdist(spaces[0][rows], spaces[0][cols], p=INF)
    for space in spaces[1:]:
        torch.maximum(dist, torch.cdist(space[rows], space[cols], p=INF), out=dist)
    return dist


def _merge_smallest(
    best_dist: torch.Tensor, best_index: torch.Tensor, dist: torch.Tensor, offset: int, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge the k smallest entries of each row of ``dist`` into the running ``[R, k]`` best lists."""
    keep = min(k, dist.shape[1])
    values, index = torch.topk(dist, keep, dim=1, largest=False, sorted=False)
    values = torch.cat([best_dist, values], dim=1)
    index = torch.cat([best_index, index + offset], dim=1)
    values, order = torch.topk(values, k, dim=1, largest=False, sorted=True)
    return values, torch.gather(index, 1, order)


def knn(
    spaces: Sequence[torch.Tensor], k: int, tile: int = DEFAULT_TILE
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest other points of every point in the product of ``spaces`` under the max-norm.

    Args:
        spaces: Tensors ``[N, d_s]`` (float64, same device); the joint distance is the max over spaces.
        k: Number of neighbours, ``k < N``.
        tile: Tile edge; peak memory is about ``(len(spaces) + 3) * tile**2 * 8`` bytes.

    Returns:
        ``distances [N, k]`` ascending and ``indices [N, k]`` (int64), self excluded.
    """
    n = spaces[0].shape[0]
    device = spaces[0].device
    best_dist = torch.full((n, k), INF, dtype=torch.float64, device=device)
    best_index = torch.full((n, k), -1, dtype=torch.int64, device=device)
    for rows, cols in _tile_pairs(n, tile):
        dist = _joint_distance(spaces, rows, cols)
        if rows.start == cols.start:
            dist.fill_diagonal_(INF)
        best_dist[rows], best_index[rows] = _merge_smallest(
            best_dist[rows], best_index[rows], dist, cols.start, k
        )
        if rows.start != cols.start:
            best_dist[cols], best_index[cols] = _merge_smallest(
                best_dist[cols], best_index[cols], dist.T.contiguous(), rows.start, k
            )
    return best_dist, best_index


def count_within(
    space: torch.Tensor,
    radii: torch.Tensor,
    strict: bool,
    queries: torch.Tensor | None = None,
    tile: int = DEFAULT_TILE,
) -> torch.Tensor:
    """For each query point i, how many other points lie within its radius under the max-norm.

    Args:
        space: ``[N, d]`` float64.
        radii: One radius per query point: ``[N]``, or ``[Q]`` with ``queries``.
        strict: Count ``distance < radius`` when True, ``distance <= radius`` when False.
        queries: Optional ``[Q]`` indices of the query points (default: every point).
        tile: Tile edge (see :func:`knn`).

    Returns:
        Counts ``[N]`` (or ``[Q]``), int64, the query point itself excluded.
    """
    inside = torch.lt if strict else torch.le
    if queries is None:
        n = space.shape[0]
        counts = torch.zeros(n, dtype=torch.int64, device=space.device)
        for rows, cols in _tile_pairs(n, tile):
            dist = torch.cdist(space[rows], space[cols], p=INF)
            counts[rows] += inside(dist, radii[rows, None]).sum(dim=1)
            if rows.start != cols.start:
                counts[cols] += inside(dist, radii[None, cols]).sum(dim=0)
    else:
        counts = torch.zeros(queries.shape[0], dtype=torch.int64, device=space.device)
        for start in range(0, queries.shape[0], tile):
            rows = slice(start, start + tile)
            points = space[queries[rows]]
            for cols in range(0, space.shape[0], tile):
                dist = torch.cdist(points, space[cols : cols + tile], p=INF)
                counts[rows] += inside(dist, radii[rows, None]).sum(dim=1)
    # Every point is at distance 0 from itself, and was counted when the radius allows it.
    counts -= (radii > 0).long() if strict else 1
    return counts
