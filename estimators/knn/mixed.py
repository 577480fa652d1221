"""kNN mutual information when one or both variables are discrete or have atoms.

* Ross (2014), "Mutual information between discrete and continuous data sets", PLoS ONE 9(2):
  continuous x, discrete labels y. d_i = distance to the k-th neighbour of x_i among points with the
  same label; m_i = #{j != i: |x_i - x_j| <= d_i} over all points;
  I = psi(N) - <psi(N_{y_i})> + <psi(k)> - <psi(m_i)>.
* Gao, Kannan, Oh, Viswanath (2017), "Estimating mutual information for discrete-continuous
  mixtures", NeurIPS: rho_i = k-th neighbour distance in (x, y); if rho_i = 0, k_i = number of exact
  duplicates of (x_i, y_i), else k_i = k; n_x(i) = #{j != i: |x_i - x_j| <= rho_i} (likewise n_y);
  I = <psi(k_i) + log N - log(n_x + 1) - log(n_y + 1)>. Exact ties are information here: no jitter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from .. import neighbors
from ..interface import Estimate
from ..preprocessing import (
    DEFAULT_JITTER,
    add_jitter,
    duplicate_counts,
    duplicate_warning,
    make_generator,
    outlier_scale_warning,
)
from ..preprocessing import standardize as standardize_columns
from ..uncertainty import standard_error
from ..validation import ArrayLike, as_labels, as_samples, check_enough_samples, check_same_length
from .common import as_neighbor_counts, prepare, psi, smallest_subsample


def ross_terms(x: torch.Tensor, labels: torch.Tensor, ks: Sequence[int], backend: str) -> float:
    """Ross estimate (nats, averaged over ``ks``) on prepared ``[N, d]`` samples and ``[N]`` codes.

    Points whose label occurs only once carry no within-class neighbour and are left out.
    """
    values = []
    classes, class_size = torch.unique(labels, return_counts=True)
    size_of = torch.zeros(int(classes.max()) + 1, dtype=torch.int64, device=labels.device)
    size_of[classes] = class_size
    kept = size_of[labels] > 1
    x, labels = x[kept], labels[kept]
    n = x.shape[0]
    if n == 0:
        return math.nan
    for k in ks:
        radius = torch.empty(n, dtype=torch.float64, device=x.device)
        k_used = torch.empty(n, dtype=torch.float64, device=x.device)
        for label in torch.unique(labels):
            members = labels == label
            k_class = min(k, int(members.sum()) - 1)
            dist, _ = neighbors.knn([x[members]], k_class, backend)
            radius[members] = dist[:, -1]
            k_used[members] = k_class
        m = neighbors.count_within(x, radius, strict=False, backend=backend)
        value = psi(torch.tensor(n)) - psi(size_of[labels]).mean() + psi(k_used).mean() - psi(m).mean()
        values.append(float(value))
    return sum(values) / len(values)


def ross_mi(
    x: ArrayLike,
    labels: ArrayLike,
    k: int | Sequence[int] = 3,
    *,
    standardize: bool = True,
    jitter: float = DEFAULT_JITTER,
    backend: str = "auto",
    uncertainty: bool = True,
    seed: int | None = 0,
) -> Estimate:
    """I(X; Y) in nats between continuous ``x`` and discrete ``labels`` (Ross 2014).

    Args:
        x: ``[N]`` or ``[N, d]`` continuous samples.
        labels: ``[N]`` labels of any type (or ``[N, m]``, rows taken as joint labels).
        k: Within-class neighbours (default 3; capped at class size - 1), or several to average.
        standardize, jitter, backend, uncertainty, seed: as in :func:`estimators.ksg_mi`.

    Returns:
        An :class:`Estimate`; ``params["label_entropy"]`` is the plug-in H(Y), the ceiling of I(X; Y).

    Raises:
        ValueError: for NaN/inf, mismatched lengths, fewer than k+1 samples, constant columns.
    """
    start = time.perf_counter()
    ks = as_neighbor_counts(k)
    check_same_length((x, "x"), (labels, "labels"))
    x_t, _, warnings = prepare(x, "x", max(ks), standardize)
    codes = torch.from_numpy(as_labels(labels, "labels")).to(x_t.device)
    n = x_t.shape[0]
    _, counts = np.unique(codes.cpu().numpy(), return_counts=True)
    singletons = int((counts == 1).sum())
    if singletons:
        warnings.append(
            f"{singletons} point(s) with a label seen only once were left out (no same-label neighbour)"
        )
    if singletons == n:
        raise ValueError("every label occurs once: there is no within-class neighbour to measure")
    probabilities = counts / n
    label_entropy = float(-(probabilities * np.log(probabilities)).sum())
    backend_used = neighbors.choose_backend(x_t.shape[1], x_t.device, backend, x_t.shape[0])
    params = {
        "k": ks[0] if len(ks) == 1 else list(ks),
        "metric": "max-norm",
        "standardize": standardize,
        "jitter": jitter,
        "backend": backend_used,
        "seed": seed,
        "label_entropy": label_entropy,
    }
    warnings += duplicate_warning(duplicate_counts(x_t), "x")
    generator = make_generator(seed)
    x_t = add_jitter(x_t, jitter, generator)
    value = ross_terms(x_t, codes, ks, backend)
    stderr, notes = standard_error(
        uncertainty,
        lambda idx: ross_terms(x_t[idx], codes[idx], ks, backend),
        n,
        value,
        generator,
        min_size=smallest_subsample(ks),
    )
    warnings += notes
    return Estimate(
        value, stderr, n, "ross", params, seconds=time.perf_counter() - start, warnings=tuple(warnings)
    )


def mixed_terms(x: torch.Tensor, y: torch.Tensor, ks: Sequence[int], backend: str) -> float:
    """Gao et al. estimate (nats, averaged over ``ks``) on prepared ``[N, dx]``, ``[N, dy]`` samples."""
    n = x.shape[0]
    dist, _ = neighbors.knn([x, y], max(ks), backend)
    duplicates = duplicate_counts(torch.cat([x, y], dim=1))
    values = []
    for k in ks:
        radius = dist[:, k - 1]
        k_eff = torch.where(radius == 0, duplicates, torch.full_like(duplicates, k))
        n_x = neighbors.count_within(x, radius, strict=False, backend=backend)
        n_y = neighbors.count_within(y, radius, strict=False, backend=backend)
        terms = psi(k_eff) + math.log(n) - torch.log1p(n_x.double()) - torch.log1p(n_y.double())
        values.append(float(terms.mean()))
    return sum(values) / len(values)


def mixed_mi(
    x: ArrayLike,
    y: ArrayLike,
    k: int | Sequence[int] = 3,
    *,
    standardize: bool = True,
    backend: str = "auto",
    uncertainty: bool = True,
    seed: int | None = 0,
) -> Estimate:
    """I(X; Y) in nats for continuous, discrete or mixed data (Gao et al. 2017).

    Consistent when either variable, or both, mixes continuous parts with atoms (repeated values);
    on purely continuous data it reduces to a KSG-like estimate.

    Args:
        x: ``[N]`` or ``[N, dx]`` numeric samples (labels given as numbers are fine).
        y: ``[N]`` or ``[N, dy]`` numeric samples.
        k: Neighbours (default 3), or several to average.
        standardize: Scale columns to unit variance first (ties stay ties).
        backend, uncertainty, seed: as in :func:`estimators.ksg_mi`.

    Raises:
        ValueError: for NaN/inf, mismatched lengths, fewer than k+1 samples.
    """
    start = time.perf_counter()
    ks = as_neighbor_counts(k)
    check_same_length((x, "x"), (y, "y"))
    tensors, warnings = [], []
    for array, name in ((x, "x"), (y, "y")):
        tensor = as_samples(array, name)
        check_enough_samples(tensor.shape[0], max(ks))
        if standardize:
            warnings += outlier_scale_warning(tensor, name)
            tensor = standardize_columns(tensor)[0]
        tensors.append(tensor)
    x_t, y_t = tensors
    n = x_t.shape[0]
    backend_used = neighbors.choose_backend(x_t.shape[1] + y_t.shape[1], x_t.device, backend, x_t.shape[0])
    params = {
        "k": ks[0] if len(ks) == 1 else list(ks),
        "metric": "max-norm",
        "standardize": standardize,
        "backend": backend_used,
        "seed": seed,
    }
    value = mixed_terms(x_t, y_t, ks, backend)
    stderr, notes = standard_error(
        uncertainty,
        lambda idx: mixed_terms(x_t[idx], y_t[idx], ks, backend),
        n,
        value,
        make_generator(seed),
        min_size=smallest_subsample(ks),
    )
    return Estimate(
        value,
        stderr,
        n,
        "mixed",
        params,
        seconds=time.perf_counter() - start,
        warnings=tuple(warnings + notes),
    )
