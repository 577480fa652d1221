"""Kraskov-Stögbauer-Grassberger mutual information, algorithms 1 and 2.

A. Kraskov, H. Stögbauer, P. Grassberger, "Estimating mutual information", Phys. Rev. E 69, 066138
(2004). With the max-norm in the joint space (required by the derivation) and in each marginal:

* Algorithm 1: eps_i = distance to the k-th neighbour in (x, y); n_x(i) = #{j != i: |x_i - x_j| < eps_i}
  (strict), likewise n_y; I = psi(k) + psi(N) - <psi(n_x + 1) + psi(n_y + 1)>.
* Algorithm 2: eps_x(i), eps_y(i) = largest x- and y-distance among the k joint neighbours;
  n_x(i) = #{j != i: |x_i - x_j| <= eps_x(i)} (non-strict), likewise n_y;
  I = psi(k) - 1/k + psi(N) - <psi(n_x) + psi(n_y)>.

Each algorithm keeps its own counting convention: swapping them miscounts the neighbour that sets
the radius, which biases the estimate as soon as distances tie.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from .. import neighbors
from ..degeneracy import exact_linear_relation
from ..interface import Estimate
from ..preprocessing import DEFAULT_JITTER, add_jitter, duplicate_counts, duplicate_warning, make_generator
from ..uncertainty import standard_error
from ..validation import ArrayLike, check_same_length
from .common import (
    HEAVY_TIE_FRACTION,
    as_neighbor_counts,
    check_tie_policy,
    prepare,
    psi,
    smallest_subsample,
    zero_distance_fraction,
)
from .routing import estimate_with_atoms

ALGORITHMS = (1, 2)

# When at least this fraction of points has the same k nearest neighbours in x (or in y) as in
# (x, y), one variable is, at the sample's resolution, a function of the other.
SATURATION_FRACTION = 0.95
SATURATION_QUERIES = 1000
# An estimate above this fraction of the estimator's ceiling psi(N) - psi(k) is resolution-limited.
NEAR_CEILING = 0.9


def ksg_ceiling(n: int, ks: Sequence[int], algorithm: int) -> float:
    """Largest value KSG reports with n samples (every marginal neighbourhood = the joint one)."""
    values = [float(psi(n) - psi(k)) - (1.0 / k if algorithm == 2 else 0.0) for k in ks]
    return sum(values) / len(values)


def ksg_terms(x: torch.Tensor, y: torch.Tensor, ks: Sequence[int], algorithm: int, backend: str) -> float:
    """KSG estimate in nats, averaged over ``ks``, on prepared ``[N, dx]`` and ``[N, dy]`` samples."""
    return _ksg_with_neighbors(x, y, ks, algorithm, backend)[0]


def _ksg_with_neighbors(
    x: torch.Tensor, y: torch.Tensor, ks: Sequence[int], algorithm: int, backend: str
) -> tuple[float, torch.Tensor]:
    n = x.shape[0]
    dist, index = neighbors.knn([x, y], max(ks), backend)
    values = []
    for k in ks:
        if algorithm == 1:
            radius = dist[:, k - 1]
            n_x = neighbors.count_within(x, radius, strict=True, backend=backend)
            n_y = neighbors.count_within(y, radius, strict=True, backend=backend)
            value = psi(k) + psi(n) - (psi(n_x + 1) + psi(n_y + 1)).mean()
        else:
            n_x = neighbors.count_within(
                x, neighbors.distances_to(x, index[:, :k]).amax(dim=1), False, backend
            )
            n_y = neighbors.count_within(
                y, neighbors.distances_to(y, index[:, :k]).amax(dim=1), False, backend
            )
            value = psi(k) - 1.0 / k + psi(n) - (psi(n_x) + psi(n_y)).mean()
        values.append(float(value))
    return sum(values) / len(values), index


def saturated_fraction(
    x: torch.Tensor, y: torch.Tensor, index: torch.Tensor, k: int, backend: str, generator: torch.Generator
) -> float:
    """Fraction of points whose k joint neighbours are also their k nearest in x, or in y.

    Checked on up to ``SATURATION_QUERIES`` random points against all N, so it costs little.
    """
    n = x.shape[0]
    queries = torch.randperm(n, generator=generator)[:SATURATION_QUERIES].to(x.device)
    neighbours = index[queries, :k]
    saturated = torch.zeros(queries.shape[0], dtype=torch.bool, device=x.device)
    for space in (x, y):
        radius = neighbors.distances_to(space, neighbours, rows=queries).amax(dim=1)
        saturated |= neighbors.count_within(space, radius, False, backend, queries=queries) <= k
    return float(saturated.double().mean())


def ksg_mi(
    x: ArrayLike,
    y: ArrayLike,
    k: int | Sequence[int] = 3,
    *,
    algorithm: int = 1,
    standardize: bool = True,
    jitter: float = DEFAULT_JITTER,
    on_ties: str = "route",
    backend: str = "auto",
    uncertainty: bool = True,
    seed: int | None = 0,
) -> Estimate:
    """Mutual information I(X; Y) in nats by the KSG estimator.

    Args:
        x: ``[N]`` or ``[N, dx]`` continuous samples (numpy or torch; CUDA tensors run on the GPU).
        y: ``[N]`` or ``[N, dy]`` continuous samples, paired row by row with ``x``.
        k: Neighbours (default 3), or several values whose estimates are averaged.
        algorithm: 1 or 2 (see module docstring).
        standardize: Scale each column to zero mean and unit variance first (recommended: the
            max-norm otherwise lets the widest column decide every neighbourhood).
        jitter: Gaussian noise added to break exact ties, as a fraction of each column's standard
            deviation (default 1e-10). 0 disables it.
        on_ties: What to do when more than 1% of points have k exact duplicates (zero kNN distance,
            i.e. the data has atoms): ``"route"`` to the estimator built for them (discrete plug-in,
            Ross, or Gao et al.; see :mod:`estimators.knn.routing`), ``"jitter"`` to proceed
            anyway, ``"raise"`` to raise ValueError.
        backend: Neighbour search, ``"auto"``, ``"kdtree"`` or ``"brute"`` (all exact, so they agree
            bit for bit). ``params["backend"]`` records the one the joint search used; under
            "auto" each marginal count picks its own (a 1-D marginal uses a sorted bisection).
        uncertainty: Compute a standard error by disjoint-subsample scaling (costs about 1.7x the
            estimate with brute force, up to 7x with the KD-tree).
        seed: Seed for the jitter and the subsample partitions (None: nondeterministic).

    Returns:
        An :class:`Estimate` in nats. ``value`` is ``inf`` when x and y are detected to be
        deterministically related (an exact linear relation, or one variable locally a function of
        the other at 95% of points, checked when ``standardize`` and N >= max(20, 4 (k + 1)), below
        which it happens by chance); the finite KSG number is then kept in ``params["finite_value"]``.

    Raises:
        ValueError: for NaN/inf, mismatched lengths, fewer than k+1 samples, N <= rank(x) + rank(y)
            (too few samples for this dimension: any such sample is exactly linearly related),
            constant columns, an unknown algorithm/backend/policy, or heavy ties with
            ``on_ties="raise"``.
        TypeError: for non-numeric input.
    """
    start = time.perf_counter()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be 1 or 2, got {algorithm!r}")
    check_tie_policy(on_ties)
    ks = as_neighbor_counts(k)
    check_same_length((x, "x"), (y, "y"))
    x_t, _, warnings = prepare(x, "x", max(ks), standardize)
    y_t, _, y_warnings = prepare(y, "y", max(ks), standardize)
    warnings += y_warnings
    if y_t.device != x_t.device:
        raise ValueError(f"x is on {x_t.device} but y is on {y_t.device}; put both on one device")
    n = x_t.shape[0]
    backend_used = neighbors.choose_backend(x_t.shape[1] + y_t.shape[1], x_t.device, backend, x_t.shape[0])
    params = {
        "k": ks[0] if len(ks) == 1 else list(ks),
        "algorithm": algorithm,
        "metric": "max-norm",
        "standardize": standardize,
        "jitter": jitter,
        "backend": backend_used,
        "seed": seed,
    }
    method = f"ksg{algorithm}"

    relation = exact_linear_relation(x_t, y_t)
    if relation is not None:
        return Estimate(
            float("inf"),
            float("nan"),
            n,
            method,
            params,
            seconds=time.perf_counter() - start,
            warnings=tuple(warnings + [relation]),
        )

    duplicates = {
        "x": duplicate_counts(x_t),
        "y": duplicate_counts(y_t),
        "(x, y)": duplicate_counts(torch.cat([x_t, y_t], dim=1)),
    }
    atoms = {name: zero_distance_fraction(counts, max(ks)) for name, counts in duplicates.items()}
    tied = {name: fraction for name, fraction in atoms.items() if fraction > HEAVY_TIE_FRACTION}
    if tied:
        where = ", ".join(f"{fraction:.1%} of points in {name}" for name, fraction in tied.items())
        message = (
            f"{where} have at least k={max(ks)} exact duplicates (zero kNN distance): the data has atoms,"
            " which KSG's density assumption cannot handle"
        )
        if on_ties == "raise":
            raise ValueError(message + "; use method='ross', 'discrete' or 'mixed', or on_ties='route'")
        if on_ties == "route":
            routed, name = estimate_with_atoms(
                x,
                y,
                atoms["x"],
                atoms["y"],
                ks,
                standardize=standardize,
                backend=backend,
                uncertainty=uncertainty,
                seed=seed,
            )
            return routed.with_extra(
                warnings=(f"{message}; routed to {name}",), seconds=time.perf_counter() - start
            )
        warnings.append(message + "; jittered anyway (on_ties='jitter'), expect bias")
    warnings += duplicate_warning(duplicates["x"], "x") + duplicate_warning(duplicates["y"], "y")

    generator = make_generator(seed)
    x_t = add_jitter(x_t, jitter, generator)
    y_t = add_jitter(y_t, jitter, generator)
    value, index = _ksg_with_neighbors(x_t, y_t, ks, algorithm, backend)
    saturated = saturated_fraction(x_t, y_t, index, min(ks), backend, generator)
    ceiling = ksg_ceiling(n, ks, algorithm)

    # The signature means "y adds nothing to x's neighbourhoods" only when both have comparable scales,
    # and only with enough samples: with N = k + 2 every point is saturated by chance, and under
    # independence 95% saturation still happens now and then (0.1% of samples at k = 1, N = 14; measured
    # in 1+1 to 5+5 dimensions) until N reaches max(20, 4 (k + 1)).
    if standardize and saturated >= SATURATION_FRACTION and n < smallest_subsample(ks):
        warnings.append(
            f"at {saturated:.1%} of points the k nearest neighbours in x (or in y) are exactly those in"
            f" (x, y), but with N={n} samples that happens by chance, so it does not show one variable to"
            f" be a function of the other (that takes at least {smallest_subsample(ks)} samples at"
            f" k={max(ks)}); the KSG value stands, and at this N it is rough"
        )
    elif standardize and saturated >= SATURATION_FRACTION:
        params["finite_value"] = value
        note = (
            f"at {saturated:.1%} of points the k nearest neighbours in x (or in y) are exactly those in"
            " (x, y): at this sample's resolution one variable is a function of the other, so the mutual"
            f" information is infinite or beyond what N={n} samples resolve; the finite KSG value was"
            f" {value:.4f} nats (params['finite_value'])"
        )
        return Estimate(
            float("inf"),
            float("nan"),
            n,
            method,
            params,
            ceiling=ceiling,
            seconds=time.perf_counter() - start,
            warnings=tuple(warnings + [note]),
        )

    stderr, notes = standard_error(
        uncertainty,
        lambda idx: ksg_terms(x_t[idx], y_t[idx], ks, algorithm, backend),
        n,
        value,
        generator,
        min_size=smallest_subsample(ks),
    )
    warnings += notes
    if value >= NEAR_CEILING * ceiling:
        warnings.append(
            f"the estimate is within 10% of the most KSG can report with N={n} (psi(N) - psi(k) ="
            f" {ceiling:.3f} nats): the true value may be larger; more samples raise the ceiling"
        )

    return Estimate(
        value,
        stderr,
        n,
        method,
        params,
        ceiling=ceiling,
        seconds=time.perf_counter() - start,
        warnings=tuple(warnings),
    )
