"""Exact max-norm neighbour search with scipy's cKDTree, for low-dimensional data on the CPU."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree


def knn(spaces: Sequence[torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`estimators.neighbors.brute.knn`, on CPU tensors."""
    joint = np.concatenate([space.numpy() for space in spaces], axis=1)
    n = joint.shape[0]
    dist, index = cKDTree(joint).query(joint, k=k + 1, p=np.inf, workers=-1)
    # Drop the point itself. With exact duplicates it may sit anywhere among the zero distances, or
    # not be returned at all when more than k duplicates tie; then the (k+1)-th result is dropped.
    is_self = index == np.arange(n)[:, None]
    keep = ~is_self
    keep[~is_self.any(axis=1), -1] = False
    dist = dist[keep].reshape(n, k)
    index = index[keep].reshape(n, k)
    return torch.from_numpy(np.ascontiguousarray(dist)), torch.from_numpy(index.astype(np.int64))


def count_within(
    space: torch.Tensor, radii: torch.Tensor, strict: bool, queries: torch.Tensor | None = None
) -> torch.Tensor:
    """Same contract as :func:`estimators.neighbors.brute.count_within`, on CPU tensors."""
    points = space.numpy()
    query_points = points if queries is None else points[queries.numpy()]
    r = radii.numpy()
    # cKDTree counts distance <= r (self included); the largest float below r makes it strict.
    query_radius = np.nextafter(r, -np.inf) if strict else r.copy()
    empty = query_radius < 0
    query_radius[empty] = 0.0
    counts = cKDTree(points).query_ball_point(
        query_points, query_radius, p=np.inf, return_length=True, workers=-1
    )
    counts = np.asarray(counts, dtype=np.int64) - 1
    counts[empty] = 0
    return torch.from_numpy(counts)
