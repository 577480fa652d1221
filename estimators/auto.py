"""``method="auto"``: choose the estimator by ties, dimension and sample size, and say why.

The rule, from the measurements in ``experiments/results/estimators.md``:

1. Atoms (values repeated at least k times) go to the estimator built for them, as in ``ksg_mi``:
   labels vs labels -> plug-in discrete, labels vs continuous -> Ross, mixtures -> Gao et al.
2. Joint dimension <= 4: KSG alone. There it is nearly unbiased (within 0.03 nats on Gaussians at
   N = 2000) and, unlike the Gaussian-copula estimate, sees any form of dependence.
3. Higher: the Gaussian-copula estimate (bias-corrected; exact for Gaussian data and for any
   monotone map of each coordinate) competes with
   * KSG while the joint dimension is <= 8, where both err low on their failure modes (KSG with
     dimension, the copula with non-Gaussian dependence such as a spiral or a shared scale);
     above 8 KSG's bias can go either way (it overestimates a 25+25-D Student-t by 0.12 nats),
     so it is left out;
   * an InfoNCE lower bound from a trained critic, when N allows a batch of at least 32; it is a
     bound, so exceeding the copula means the copula misses dependence.
   A challenger replaces the copula only if it is larger by more than two combined standard errors,
   so noise alone does not pick the larger of two equal estimates.
"""

from __future__ import annotations

import math
import time

import torch

from .gaussian import gaussian_copula_mi
from .interface import Estimate
from .knn import ksg_mi
from .knn.common import HEAVY_TIE_FRACTION, zero_distance_fraction
from .knn.routing import estimate_with_atoms
from .neural import neural_mi
from .preprocessing import duplicate_counts
from .validation import ArrayLike, as_samples, check_no_constant_columns, check_same_length

KSG_ONLY_MAX_DIM = 4
KSG_CHALLENGER_MAX_DIM = 8
NEURAL_MIN_BATCH = 32
NEURAL_MAX_BATCH = 256
NEIGHBOURS = 3


def _challenges(challenger: Estimate, incumbent: Estimate) -> bool:
    if math.isinf(challenger.value):
        return not math.isinf(incumbent.value)
    errors = [e.stderr for e in (challenger, incumbent) if math.isfinite(e.stderr)]
    margin = 2.0 * math.sqrt(sum(error**2 for error in errors))
    return challenger.value > incumbent.value + margin


def _explained(estimate: Estimate, reason: str, candidates: dict[str, Estimate], start: float) -> Estimate:
    params = dict(estimate.params)
    params["chosen_by"] = "auto"
    params["auto_reason"] = reason
    params["auto_candidates"] = {
        name: {"value": candidate.value, "stderr": candidate.stderr, "kind": candidate.kind}
        for name, candidate in candidates.items()
    }
    return estimate.with_extra(
        params=params,
        warnings=(f"auto chose {estimate.method}: {reason}",),
        seconds=time.perf_counter() - start,
    )


def auto_mi(
    x: ArrayLike,
    y: ArrayLike,
    *,
    neural: bool = True,
    uncertainty: bool = True,
    seed: int | None = 0,
    progress: bool | None = None,
) -> Estimate:
    """I(X; Y) in nats by the estimator the rule in this module's docstring picks.

    Args:
        x: ``[N]`` or ``[N, dx]`` samples.
        y: ``[N]`` or ``[N, dy]`` samples, paired with ``x``.
        neural: Allow the InfoNCE challenger (it trains a critic: seconds to a minute).
        uncertainty: Standard errors for every candidate (needed to compare them fairly).
        seed: Seed for every candidate.
        progress: Progress bar for the neural candidate (default: when interactive).

    Returns:
        The chosen :class:`Estimate`, with ``params["auto_reason"]`` (why) and
        ``params["auto_candidates"]`` (every candidate's value and standard error), and the choice
        as its first-listed added warning.

    Raises:
        ValueError/TypeError: for bad input, as the chosen estimators raise them; a constant column
            (all rows identical included) is refused before any choice, as KSG refuses it.
    """
    start = time.perf_counter()
    check_same_length((x, "x"), (y, "y"))
    x_t, y_t = as_samples(x, "x"), as_samples(y, "y")
    # The same rule as every candidate's, before routing: a constant column would otherwise count as
    # atoms and reach an estimator that reports 0 for it without a word.
    check_no_constant_columns(x_t, "x")
    check_no_constant_columns(y_t, "y")
    n, dim = x_t.shape[0], x_t.shape[1] + y_t.shape[1]
    atoms_x = zero_distance_fraction(duplicate_counts(x_t), NEIGHBOURS)
    atoms_y = zero_distance_fraction(duplicate_counts(y_t), NEIGHBOURS)
    joint_atoms = zero_distance_fraction(duplicate_counts(torch.cat([x_t, y_t], dim=1)), NEIGHBOURS)
    if max(atoms_x, atoms_y, joint_atoms) > HEAVY_TIE_FRACTION:
        routed, name = estimate_with_atoms(
            x,
            y,
            atoms_x,
            atoms_y,
            (NEIGHBOURS,),
            standardize=True,
            backend="auto",
            uncertainty=uncertainty,
            seed=seed,
        )
        reason = f"repeated values (atoms) in the data: {name} is built for them"
        return _explained(routed, reason, {routed.method: routed}, start)

    options = {"uncertainty": uncertainty, "seed": seed}
    if dim <= KSG_ONLY_MAX_DIM or n < dim + 2:
        ksg = ksg_mi(x, y, NEIGHBOURS, **options)
        if dim <= KSG_ONLY_MAX_DIM:
            reason = f"joint dimension {dim} <= {KSG_ONLY_MAX_DIM}: KSG is nearly unbiased for any dependence"
        else:
            reason = f"N = {n} is too small for a covariance in {dim} dimensions; KSG needs none"
        return _explained(ksg, reason, {"ksg": ksg}, start)

    best = gaussian_copula_mi(x, y, **options)
    candidates = {"copula": best}
    reason = (
        "the Gaussian-copula estimate (exact for Gaussian dependence after any monotone map per coordinate)"
    )
    if dim <= KSG_CHALLENGER_MAX_DIM:
        candidates["ksg"] = ksg_mi(x, y, NEIGHBOURS, **options)
    batch = min(NEURAL_MAX_BATCH, n // 5)
    if neural and batch >= NEURAL_MIN_BATCH:
        candidates["infonce"] = neural_mi(x, y, "infonce", batch_size=batch, seed=seed, progress=progress)
    for name, candidate in candidates.items():
        if name != "copula" and _challenges(candidate, best):
            best = candidate
            reason = (
                f"{name} exceeds the Gaussian-copula estimate by more than two standard errors: the"
                " dependence is not Gaussian after per-coordinate monotone maps, and the copula misses part"
                " of it"
            )
    if best is candidates["copula"] and len(candidates) > 1:
        others = ", ".join(f"{name} {c.value:.3f}" for name, c in candidates.items() if name != "copula")
        reason += f"; no challenger exceeded it significantly ({others})"
    return _explained(best, reason, candidates, start)
