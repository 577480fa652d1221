"""Exact radius counts in one dimension by binary search over sorted values: O(N log N), CPU or GPU.

The predicate |s - v| < r (or <=) is evaluated exactly as the other backends evaluate it, with the
rounded difference, so the counts agree with theirs bit for bit. Rounding is monotone, so on sorted
values the predicate holds on one contiguous run, whose ends a vectorised bisection finds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def _first_true(
    predicate: Callable[[torch.Tensor], torch.Tensor], size: int, queries: int, device: torch.device
) -> torch.Tensor:
    """For each query, the first index in [0, size] where the monotone (false..true) predicate holds."""
    low = torch.zeros(queries, dtype=torch.int64, device=device)
    high = torch.full((queries,), size, dtype=torch.int64, device=device)
    for _ in range(math.ceil(math.log2(size + 1)) + 1):
        middle = (low + high) // 2
        holds = predicate(middle.clamp(max=size - 1)) & (low < high)
        high = torch.where(holds, middle, high)
        low = torch.where(~holds & (low < high), middle + 1, low)
    return low


def count_within(
    space: torch.Tensor, radii: torch.Tensor, strict: bool, queries: torch.Tensor | None = None
) -> torch.Tensor:
    """Same contract as :func:`estimators.neighbors.brute.count_within`, for ``space`` of shape ``[N, 1]``."""
    values = space[:, 0]
    ordered, _ = torch.sort(values)
    centre = values if queries is None else values[queries]
    inside = torch.lt if strict else torch.le

    def within(index: torch.Tensor) -> torch.Tensor:
        return inside((ordered[index] - centre).abs(), radii)

    n = ordered.shape[0]
    first = _first_true(lambda i: (ordered[i] >= centre) | within(i), n, centre.shape[0], space.device)
    after = _first_true(lambda i: (ordered[i] > centre) & ~within(i), n, centre.shape[0], space.device)
    # the run [first, after) holds the query point itself, except for a strict radius of 0 (then empty)
    if strict:
        return torch.where(radii > 0, after - first - 1, torch.zeros_like(first))
    return after - first - 1
