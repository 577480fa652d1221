"""Transfer on frozen features: a held-out split, linear probes and a k-NN classifier.

* Linear probe, MAE's recipe (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners",
  appendix A.2): BatchNorm without affine parameters, then a linear layer. We train full-batch, so that
  BatchNorm is exactly a standardisation by the training split's per-dimension mean and (biased)
  variance, with MAE's eps 1e-6; we implement it that way. The test split is standardised with the same
  statistics (what BatchNorm's running averages stand for in eval mode).
* k-NN classifier, DINO's recipe (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
  Transformers", eval_knn.py): cosine similarity between L2-normalised features, the k most similar
  training samples vote with weight exp(similarity / temperature). Cosine similarity is at the mercy of
  a few large-scale dimensions, which a linear probe's standardisation discounts, so it is also run on
  features standardised per dimension by the train split's statistics (``standardize=True``).

Both take any number of discrete labels; each label's classes are those present anywhere in its array
(the "full class set"), so a class seen only in the test split still has a column of logits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from infomug.measure.results import Score

BATCHNORM_EPS = 1e-6
# L-BFGS stopping tolerances, relative to the loss scale: the objective at W = 0 is sum_l log C_l (a few
# nats per label), so an absolute tolerance would mean something different for 1 label and for 11.
PROBE_TOLERANCE_GRAD = 1e-7
PROBE_TOLERANCE_CHANGE = 1e-10
KNN_CHUNK = 1024  # test queries per similarity block: memory is KNN_CHUNK x n_train floats


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)`` into train and test indices (each sorted).

    Args:
        n: Number of samples.
        test_fraction: Share held out for testing; ``round(n * test_fraction)`` samples.
        seed: Seed of the permutation.

    Returns:
        ``(train_idx [n - n_test], test_idx [n_test])`` int64 arrays.

    Raises:
        ValueError: for a fraction outside (0, 1), or if either part would hold fewer than 2 samples.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = int(round(n * test_fraction))
    if n_test < 2 or n - n_test < 2:
        raise ValueError(
            f"cannot split {n} samples with test_fraction={test_fraction}: train ({n - n_test}) and test"
            f" ({n_test}) parts need at least 2 samples each"
        )
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def encode_labels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class codes ``[N]`` (0..C-1) of a discrete label array and its sorted classes ``[C]``."""
    classes, codes = np.unique(values, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), classes


def majority_rate(codes: np.ndarray) -> float:
    """Share of the most frequent class in ``codes`` ``[n]``: what always guessing it scores."""
    return float(np.bincount(codes).max() / codes.size)


def _accuracy_score(
    correct: np.ndarray, test_codes: np.ndarray, method: str, params: dict, seconds: float
) -> Score:
    accuracy = float(correct.mean())
    n_test = int(correct.size)
    return Score(
        value=accuracy,
        stderr=math.sqrt(accuracy * (1.0 - accuracy) / n_test),
        n=n_test,
        method=method,
        params=params,
        baseline=majority_rate(test_codes),
        seconds=seconds,
    )


def standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BatchNorm without affine, full-batch: ``(x - mean) / sqrt(var + 1e-6)`` with train statistics.

    Args:
        train: ``[n_train, D]`` features the statistics come from.
        test: ``[n_test, D]`` features standardised with the same statistics.

    Returns:
        The standardised ``(train, test)``.
    """
    mean = train.mean(dim=0)
    scale = torch.sqrt(train.var(dim=0, unbiased=False) + BATCHNORM_EPS)
    return (train - mean) / scale, (test - mean) / scale


# Directions of the standardised features with less variance than this times the largest are left out of
# the probe's preconditioner (LayerNorm's exact rank deficiency, one-hot features' dependent columns).
WHITEN_FLOOR = 1e-10


@dataclass(frozen=True)
class ProbeOutput:
    """One label's linear probe, evaluated on the test split.

    Attributes:
        accuracy: Held-out accuracy (``baseline`` = the test split's majority-class rate, ``stderr``
            binomial).
        cross_entropy: ``[n_test]`` per-sample held-out cross-entropy -log q(y | t) in nats.
        logits: ``[n_test, C]`` held-out logits over the label's full class set.
        classes: ``[C]`` the label values the logit columns stand for.
        unseen_classes: Classes absent from the train split (their logits are a constant bias).
        converged: False when L-BFGS stopped at its iteration or evaluation limit rather than at one of
            its tolerances: a better probe exists, so the accuracy and the bound may be understated.
    """

    accuracy: Score
    cross_entropy: np.ndarray
    logits: np.ndarray
    classes: np.ndarray
    unseen_classes: tuple[Any, ...] = ()
    converged: bool = True


def linear_probes(
    features: np.ndarray,
    labels: Mapping[str, np.ndarray],
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    *,
    max_iter: int,
    weight_decay: float,
    tolerance_grad: float = PROBE_TOLERANCE_GRAD,
    tolerance_change: float = PROBE_TOLERANCE_CHANGE,
) -> dict[str, ProbeOutput]:
    """Multinomial logistic regression of every label on standardised features, held-out evaluation.

    All labels share one standardisation and are trained as separate heads of one linear map
    ``[D, sum_l C_l]`` in a single L-BFGS run (strong Wolfe line search, float64): the objective is the
    sum of the heads' mean cross-entropies plus ``weight_decay / 2 * |W|^2`` (the bias is not
    penalised), and as no parameter is shared between heads each head reaches its own optimum.

    L-BFGS solves for ``V`` with ``W = P V``, ``P`` whitening the standardised train features: the same
    objective, so the same optimum, reached in far fewer iterations. The fit runs to convergence: L-BFGS
    stops when the largest entry of the gradient in ``V`` falls below ``tolerance_grad * L0`` or the
    loss (or the step) changes by less than ``tolerance_change * L0``, ``L0 = sum_l log C_l`` the
    objective at ``W = 0`` (the loss scale); only when it reaches ``max_iter`` iterations (or L-BFGS's
    ``1.25 * max_iter`` evaluations) first is it not converged.

    A class that never occurs in the train split gets no weights (its column of W stays 0): its logit
    is a learned constant, pushed down by the softmax on the train split, so a test sample of that
    class costs a large but finite cross-entropy.

    Args:
        features: ``[N, D]`` features.
        labels: ``{name: [N] discrete values}``; each must have at least 2 classes.
        train_idx: ``[n_train]`` rows that train the probes.
        test_idx: ``[n_test]`` rows that evaluate them.
        max_iter: L-BFGS iterations at most.
        weight_decay: L2 penalty on the weights (per sample: the loss is a mean over samples).
        tolerance_grad: Stop when ``max |grad| <= tolerance_grad * L0``.
        tolerance_change: Stop when the loss or the step changes by less than ``tolerance_change * L0``.

    Returns:
        ``{name: ProbeOutput}``; each ``accuracy`` carries the shared training time in ``seconds`` and in
        ``params`` ``converged``, the L-BFGS ``iterations`` run, the relative tolerances asked for,
        ``loss_scale`` (L0) and ``grad_max`` (the largest entry of the gradient in ``W`` at the end), with
        ``"preconditioner": "whitened"``, and a warning when the fit stopped at its limit rather than at
        a tolerance.

    Raises:
        ValueError: for no labels, a label with fewer than 2 classes, ``max_iter < 1`` or a tolerance
            that is not positive.
    """
    start = time.perf_counter()
    if not labels:
        raise ValueError("linear_probes needs at least one label")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if not (tolerance_grad > 0 and tolerance_change > 0):
        raise ValueError(
            f"tolerances must be positive, got tolerance_grad={tolerance_grad}, "
            f"tolerance_change={tolerance_change}"
        )
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    train_x, test_x = standardise(x[train_idx], x[test_idx])
    heads = []  # (name, codes [N], classes, column slice)
    offset = 0
    for name, values in labels.items():
        codes, classes = encode_labels(np.asarray(values))
        if classes.size < 2:
            raise ValueError(f"label {name!r} has a single class; a probe needs at least 2")
        heads.append((name, torch.from_numpy(codes), classes, slice(offset, offset + classes.size)))
        offset += classes.size
    train_codes = [codes[train_idx] for _, codes, _, _ in heads]
    # Zero the weight columns of classes absent from the train split: they get no weights.
    seen = torch.zeros(offset, dtype=torch.float64)
    for (_, _, classes, cols), codes in zip(heads, train_codes, strict=True):
        seen[cols] = (torch.bincount(codes, minlength=classes.size) > 0).double()

    loss_scale = float(sum(math.log(classes.size) for _, _, classes, _ in heads))
    # L-BFGS works on V, with the weights W = P V: P whitens the standardised features, so the data term
    # is well conditioned (on 192-wide ViT features it gets in 100 iterations closer to the optimum than
    # 300 on W). The objective is the same function of W, so the optimum is the same probe.
    precondition = _whitening(train_x)
    solved = torch.zeros(precondition.shape[1], offset, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(offset, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [solved, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tolerance_grad * loss_scale,
        tolerance_change=tolerance_change * loss_scale,
        line_search_fn="strong_wolfe",
    )
    columns, padding, targets = _head_layout(heads, train_codes)

    def objective(weight: torch.Tensor) -> torch.Tensor:
        effective = weight * seen
        logits = train_x @ effective + bias
        # Every head's mean cross-entropy at once: its logits gathered into [n, heads, most classes],
        # the missing classes of smaller heads at -inf (one op each, not one cross_entropy per head).
        log_normaliser = torch.logsumexp(logits[:, columns].masked_fill(padding, -math.inf), dim=2)
        loss = (log_normaliser - logits.gather(1, targets)).mean(dim=0).sum()
        return loss + 0.5 * weight_decay * effective.pow(2).sum()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective(precondition @ solved)
        loss.backward()
        return loss

    optimizer.step(closure)
    # The gradient in W's own coordinates at the final point, for grad_max.
    weight = (precondition @ solved).detach().requires_grad_()
    bias.grad = None
    objective(weight).backward()
    grad_max = float(torch.cat([weight.grad.reshape(-1), bias.grad]).abs().max())
    with torch.no_grad():
        test_logits = test_x @ (weight * seen) + bias
    seconds = time.perf_counter() - start
    state = optimizer.state[solved]
    # L-BFGS returns on its tolerances, or when it runs out of iterations or evaluations; it does not
    # say which, so a fit that met a tolerance on its very last iteration counts as not converged.
    converged = bool(state["n_iter"] < max_iter and state["func_evals"] < optimizer.defaults["max_eval"])
    params = {
        "max_iter": max_iter,
        "weight_decay": weight_decay,
        "normalisation": "batchnorm_no_affine",
        "preconditioner": "whitened",
        "iterations": int(state["n_iter"]),
        "converged": converged,
        "tolerance_grad": tolerance_grad,
        "tolerance_change": tolerance_change,
        "loss_scale": loss_scale,
        "grad_max": grad_max,
    }
    limit: tuple[str, ...] = ()
    if not converged:
        limit = (
            f"the probe's L-BFGS stopped at its iteration limit (max_iter={max_iter}) before converging"
            f" (largest gradient entry {grad_max:.2g}, tolerance {tolerance_grad * loss_scale:.2g}):"
            " a longer fit may score higher (budget probe_max_iter)",
        )
    out = {}
    for (name, codes, classes, cols), train in zip(heads, train_codes, strict=True):
        logits = test_logits[:, cols]
        test_codes = codes[test_idx]
        cross_entropy = F.cross_entropy(logits, test_codes, reduction="none")
        correct = (logits.argmax(dim=1) == test_codes).numpy()
        unseen = tuple(classes[torch.bincount(train, minlength=classes.size).numpy() == 0].tolist())
        score = _accuracy_score(correct, test_codes.numpy(), "linear_probe", dict(params), seconds)
        if unseen:
            score = replace(score, warnings=(f"classes {list(unseen)} never occur in the train split",))
        score = replace(score, warnings=score.warnings + limit)
        out[name] = ProbeOutput(score, cross_entropy.numpy(), logits.numpy(), classes, unseen, converged)
    return out


def _whitening(features: torch.Tensor) -> torch.Tensor:
    """``[D, r]`` P with ``features @ P`` of identity covariance, over the ``r`` directions whose variance
    is above `WHITEN_FLOOR` times the largest (the rest carry no signal a probe could use: the loss does
    not see them, and the weight decay sets the probe's weights along them to 0)."""
    covariance = features.T @ features / features.shape[0]
    values, vectors = torch.linalg.eigh(covariance)
    keep = values > WHITEN_FLOOR * values[-1]
    return vectors[:, keep] / values[keep].sqrt()


def _head_layout(
    heads: list[tuple[str, torch.Tensor, np.ndarray, slice]], codes: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each head's classes sit in the probe's ``[D, sum C]`` map: ``columns`` ``[H, C_max]``
    (padded with column 0), ``padding`` ``[H, C_max]`` (True where padded) and ``targets`` ``[n, H]``,
    each sample's true class column per head."""
    most = max(cols.stop - cols.start for *_, cols in heads)
    columns = torch.zeros(len(heads), most, dtype=torch.long)
    padding = torch.ones(len(heads), most, dtype=torch.bool)
    for row, (*_, cols) in enumerate(heads):
        columns[row, : cols.stop - cols.start] = torch.arange(cols.start, cols.stop)
        padding[row, : cols.stop - cols.start] = False
    targets = torch.stack(
        [head_codes + cols.start for head_codes, (*_, cols) in zip(codes, heads, strict=True)], 1
    )
    return columns, padding, targets


def knn_accuracies(
    features: np.ndarray,
    labels: Mapping[str, np.ndarray],
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    *,
    k: int,
    temperature: float,
    standardize: bool = False,
) -> dict[str, Score]:
    """Weighted k-NN classification of every label, the train split as memory bank (DINO's recipe).

    With ``standardize``, the features are first standardised per dimension by the train split's mean and
    variance (`standardise`, as the linear probe's BatchNorm), so that no dimension weighs in the cosine by
    its scale alone; the scores are then ``method="knn_standardized"``.

    One neighbour search serves all labels: cosine similarities of L2-normalised features, the top
    ``k`` training neighbours of each test sample, each voting for its class with weight
    ``exp(similarity / temperature)``; the class with the largest total wins.

    Args:
        features: ``[N, D]`` features.
        labels: ``{name: [N] discrete values}``.
        train_idx: ``[n_train]`` memory bank rows.
        test_idx: ``[n_test]`` query rows.
        k: Neighbours (capped at ``n_train``).
        temperature: Temperature of the vote.
        standardize: Standardise the features by train-split statistics first.

    Returns:
        ``{name: Score}`` held-out accuracies (``baseline`` the test majority rate); ``seconds`` is the
        shared search time plus the label's vote.

    Raises:
        ValueError: for ``k < 1`` or a non-positive temperature.
    """
    if k < 1 or not temperature > 0:
        raise ValueError(f"k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    start = time.perf_counter()
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    bank, queries = x[torch.from_numpy(train_idx)], x[torch.from_numpy(test_idx)]
    if standardize:
        bank, queries = standardise(bank.double(), queries.double())
        bank, queries = bank.float(), queries.float()
    bank, queries = F.normalize(bank, dim=1), F.normalize(queries, dim=1)
    k_used = min(k, bank.shape[0])
    similarities, neighbours = [], []
    for begin in range(0, queries.shape[0], KNN_CHUNK):
        top = torch.topk(queries[begin : begin + KNN_CHUNK] @ bank.T, k_used, dim=1)
        similarities.append(top.values)
        neighbours.append(top.indices)
    similarities = torch.cat(similarities).double()  # [n_test, k], each row descending
    # Votes relative to the nearest neighbour's: the same argmax, without exp(1 / temperature) overflowing
    # to inf (and every vote tying) at temperatures below 1/709.
    weights = torch.exp((similarities - similarities[:, :1]) / temperature)
    neighbours = torch.cat(neighbours)
    search_seconds = time.perf_counter() - start
    params = {"k": k_used, "temperature": temperature, "similarity": "cosine", "standardized": standardize}
    method = "knn_standardized" if standardize else "knn"
    out = {}
    for name, values in labels.items():
        begin = time.perf_counter()
        codes, classes = encode_labels(np.asarray(values))
        train_codes = torch.from_numpy(codes[train_idx])
        votes = torch.zeros(weights.shape[0], classes.size, dtype=torch.float64)
        votes.scatter_add_(1, train_codes[neighbours], weights)
        correct = votes.argmax(dim=1).numpy() == codes[test_idx]
        seconds = search_seconds + time.perf_counter() - begin
        out[name] = _accuracy_score(correct, codes[test_idx], method, dict(params), seconds)
    return out
