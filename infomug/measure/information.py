"""Information quantities of one layer's features ``T`` ``[N, D]``, each with what may be said of it.

* I(T; Y) for a discrete label Y, two lower bounds from the held-out linear probe (`probes`):
  Barber-Agakov, H(Y) - CE, and Ross's kNN estimator on the probe's held-out logits, a lower bound
  by data processing (I(T; Y) >= I(g(T); Y) for any g) up to the estimator's error.
* I(X; T + sigma Z), the noisy channel, and H(T) by Kozachenko-Leonenko: geometry diagnostics, not
  measures of what the features keep. Both are properties of the feature distribution (and of sigma),
  so by default they are measured on PCA-whitened features (`pca_whiten`), which makes them invariant
  to any invertible linear map of T: a probe reads A T as well as T, and so should these.
* RankMe (Garrido et al. 2023, "RankMe: Assessing the downstream performance of pretrained
  self-supervised representations by their rank", arXiv 2210.02885): a proxy, not information, to be
  compared within one objective only.
* I(T; caption) as an InfoNCE lower bound against a bag-of-words text feature.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

import estimators
from estimators import Estimate
from estimators.noisy_channel import feature_scale
from estimators.preprocessing import make_generator
from estimators.uncertainty import standard_error
from infomug.measure.probes import ProbeOutput
from infomug.measure.results import Score
from infomug.measure.usable.basis import CanonicalBasis

RANKME_EPS = 1e-7
RANKME_MIN_SUBSAMPLE = 20
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Whitening drops directions with variance below this fraction of the largest: they are rounding noise
# (float32 features carry ~1e-7 relative precision, so variances below ~1e-14 x the largest are noise;
# 1e-10 leaves room), and scaling them to unit variance would make noise as large as signal.
WHITEN_RELATIVE_FLOOR = 1e-10
GEOMETRY_DIAGNOSTIC = "geometry_diagnostic"
CHANNEL_CAVEAT = (
    "I(X; T + sigma Z) is a property of sigma and the feature distribution (geometry diagnostic), not of"
    " what the features keep; compare only at equal sigma"
)
ENTROPY_CAVEAT = (
    "H(T) is a property of the feature distribution (geometry diagnostic), not of what the features keep;"
    " differential entropy changes under maps of T that keep all it knows"
)
RANKME_CAVEAT = (
    "a proxy, not information; compare within one objective only (RankMe's authors' caveat); grows with N"
    " up to min(N, D)"
)


def plug_in_entropy(values: np.ndarray) -> float:
    """Shannon entropy in nats of the empirical distribution of discrete ``values`` ``[N]``."""
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def subsample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``n`` rows, a seeded sample without replacement (``[m]``)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def label_information(
    probe: ProbeOutput,
    test_labels: np.ndarray,
    whole_labels: np.ndarray,
    *,
    entropy: float | None,
    k: int,
    uncertainty: bool,
    seed: int,
    knn: bool = True,
) -> tuple[dict[str, Estimate], list[str]]:
    """Two lower bounds on I(T; Y) in nats from one label's held-out probe.

    Args:
        probe: The label's `ProbeOutput` (held-out cross-entropies and logits).
        test_labels: ``[n_test]`` the label on the test split (rows of ``probe.logits``).
        whole_labels: ``[N]`` the label on every sample (for the plug-in H(Y) when ``entropy`` is None).
        entropy: Exact H(Y) in nats, or None to use the plug-in entropy of ``whole_labels``.
        k: Neighbours of Ross's estimator.
        uncertainty: Standard errors by subsample scaling for the kNN estimate.
        seed: Seed of the kNN estimator's jitter and subsamples.
        knn: Also run Ross's kNN estimator on the logits (off: the cross-entropy bound alone, which
            costs nothing beyond the probe).

    Returns:
        ``({"probe_cross_entropy": Estimate, "knn_on_probe_logits": Estimate}, notes)``; both are
        ``kind="lower_bound"`` with ``ceiling=H(Y)``, and warn when the probe did not converge. The kNN
        estimate is left out, with a note, when the logits give it nothing to work on.
    """
    notes: list[str] = []
    warnings: tuple[str, ...] = ()
    if entropy is None:
        entropy = plug_in_entropy(whole_labels)
        warnings = (
            f"H(Y) = {entropy:.4f} nats is the plug-in entropy of the {len(whole_labels)} measured labels,"
            " not an exact value: the bound and its ceiling inherit its error",
        )
    if not probe.converged:
        warnings += (
            "the linear probe stopped at its iteration limit before converging: a better fit may give a"
            " higher bound",
        )
    bound = estimators.barber_agakov_bound(probe.cross_entropy, entropy)
    out = {
        "probe_cross_entropy": bound.with_extra(
            warnings=warnings,
            params={**bound.params, "classes": len(probe.classes), "decoder": "linear_probe"},
        )
    }
    if not knn:
        return out, notes
    # Logit columns of classes unseen in training are one constant: no information, and no scale.
    logits = probe.logits
    varying = np.ptp(logits, axis=0) > 0
    try:
        ross = estimators.ross_mi(logits[:, varying], test_labels, k=k, uncertainty=uncertainty, seed=seed)
    except ValueError as error:
        notes.append(f"kNN estimate on probe logits skipped: {error}")
        return out, notes
    out["knn_on_probe_logits"] = ross.with_extra(
        kind="lower_bound",
        ceiling=entropy,
        params={**ross.params, "projection": "linear_probe_logits", "logit_columns": int(varying.sum())},
        warnings=warnings
        + (
            "kNN estimate of I(g(T); Y) with g the linear probe fit on the train split: a lower bound on"
            " I(T; Y) up to the estimator's error",
        ),
    )
    return out, notes


@dataclass(frozen=True)
class Whitened:
    """PCA-whitened features and what whitening dropped.

    Attributes:
        features: ``[N, r]`` float64, centred, unit variance and uncorrelated (biased covariance = I),
            in the canonical rotation described in `pca_whiten`.
        dim: ``D``, the dimension of the features given.
        dropped: Directions left out for variance below ``WHITEN_RELATIVE_FLOOR`` x the largest
            (``r = D - dropped``).
    """

    features: np.ndarray
    dim: int
    dropped: int

    @property
    def params(self) -> dict[str, object]:
        return {"whitened": True, "whitened_dims": self.dim - self.dropped, "dropped_dims": self.dropped}


def pca_whiten(features: np.ndarray) -> Whitened:
    """Whitened features in the decoders' canonical basis (`CanonicalBasis`, statistics of every row).

    Centred, unit variance and uncorrelated, turned to the axes of their fourth moments and signed by
    their third: ``T`` and ``A T`` (``A`` invertible) give the same features up to rounding, so the
    estimators' per-coordinate Monte Carlo noise and max-norm neighbours see the same input.

    Args:
        features: ``[N, D]`` features.

    Returns:
        A `Whitened` with ``[N, r]`` float64 features.

    Raises:
        ValueError: for features without spread (every row the same).
    """
    x = np.asarray(features, dtype=np.float64)
    basis = CanonicalBasis.fit(x, relative_floor=WHITEN_RELATIVE_FLOOR, max_rows=max(x.shape[0], 1))
    white = (x - basis.mean) @ basis.projection
    return Whitened(white, int(x.shape[1]), basis.dropped)


def input_information(
    features: np.ndarray,
    *,
    relative_sigmas: Sequence[float],
    max_samples: int,
    uncertainty: bool,
    seed: int,
    whiten: bool = True,
) -> list[Estimate]:
    """I(X; T + sigma Z) in nats at each noise level, on at most ``max_samples`` rows: a geometry diagnostic.

    With ``whiten`` (the default) the channel reads the PCA-whitened features (`pca_whiten`, statistics of
    every row) and sigma is absolute in their unit-variance coordinates, so the value is invariant to
    any invertible linear map of T (up to Monte Carlo error). Without it, sigma is a multiple of the
    raw features' RMS per-dimension std (the old behaviour: invariant only to a global scale, so an
    anisotropic rescaling of T, which a probe does not notice, changes it). Either way the value is a
    property of sigma and the feature distribution, not of what the features keep.

    Args:
        features: ``[N, D]`` features.
        relative_sigmas: Noise levels: absolute on the whitened features, or multiples of the feature
            scale when ``whiten`` is False.
        max_samples: Rows used at most (a seeded subset; the cost is quadratic in them).
        uncertainty: Standard errors by subsample scaling.
        seed: Seed of the subset, the noise and the subsamples.
        whiten: Measure on whitened features.

    Returns:
        One `Estimate` per level, in the order given. ``params``: ``"relative_sigma"`` the level asked
        for, exactly (the estimator's own ``sigma / scale`` can differ from it in the last bit, which
        would make one level look like two across layers); ``"sigma"`` the absolute noise (the level
        itself when whitened); ``"whitened"``; ``"role": "geometry_diagnostic"``; and, when whitened,
        ``"whitened_dims"`` and ``"dropped_dims"``. Each warns that it is a geometry diagnostic.

    Raises:
        ValueError: for features without spread (see :func:`estimators.noisy_channel_mi`).
    """
    levels = [float(level) for level in relative_sigmas]
    rows = subsample_rows(len(features), max_samples, seed)
    extra: dict[str, object] = {"whitened": False, "role": GEOMETRY_DIAGNOSTIC}
    if whiten:
        whitened = pca_whiten(features)
        extra = {**whitened.params, "role": GEOMETRY_DIAGNOSTIC}
        subset = whitened.features[rows]
        estimates = [
            estimators.noisy_channel_mi(subset, sigma=level, uncertainty=uncertainty, seed=seed)
            for level in levels
        ]
    else:
        estimates = estimators.noisy_channel_sweep(
            np.asarray(features)[rows], relative_sigmas=tuple(levels), uncertainty=uncertainty, seed=seed
        )
    out = []
    for estimate, level in zip(estimates, levels, strict=True):
        sigma = level if whiten else estimate.params["sigma"]
        where = (
            f"on PCA-whitened features ({extra.get('whitened_dims')} of {np.shape(features)[1]} directions),"
            f" sigma = {level:g} in their unit-variance coordinates: invariant to invertible linear maps of T"
            if whiten
            else f"on raw features, sigma = {level:g} x their RMS per-dimension std: not invariant to a"
            " per-dimension rescaling of T"
        )
        out.append(
            estimate.with_extra(
                params={**estimate.params, **extra, "relative_sigma": level, "sigma": sigma},
                warnings=(f"{CHANNEL_CAVEAT} ({where})",),
            )
        )
    return out


def feature_entropy(
    features: np.ndarray, *, k: int, max_samples: int, uncertainty: bool, seed: int, whiten: bool = True
) -> tuple[Estimate | None, str | None]:
    """Kozachenko-Leonenko H(T) in nats on at most ``max_samples`` rows: a geometry diagnostic.

    With ``whiten`` (the default) this is H(W), W the PCA-whitened features (`pca_whiten`, statistics
    of every row): invariant to any invertible linear map of T, at most ``(r / 2) log(2 pi e)`` (the
    Gaussian's), and below it by T's non-Gaussianity. Without it, the old H(T / s), s the RMS
    per-dimension std: invariant only to a global scale (differential entropy changes by
    ``log |det A|`` under a linear map A).

    Args:
        features: ``[N, D]`` features.
        k: Neighbours of the estimator.
        max_samples: Rows used at most (a seeded subset).
        uncertainty: Standard error by subsample scaling.
        seed: Seed of the subset, the jitter and the subsamples.
        whiten: Measure on whitened features.

    Returns:
        ``(Estimate, None)`` with ``params["role"] = "geometry_diagnostic"`` and ``params["whitened"]``,
        or ``(None, reason)`` when the estimator cannot measure these features (constant columns when
        not whitened, features without spread, too few rows).
    """
    rows = subsample_rows(len(features), max_samples, seed)
    if whiten:
        try:
            whitened = pca_whiten(features)
        except ValueError:
            return None, "H(T) not measured: the features have no spread"
        subset = torch.as_tensor(whitened.features[rows])
        extra: dict[str, object] = {
            **whitened.params,
            "role": GEOMETRY_DIAGNOSTIC,
            "gaussian_ceiling": gaussian_entropy_ceiling(whitened.dim - whitened.dropped),
        }
        where = (
            f"measured on PCA-whitened features ({whitened.dim - whitened.dropped} of {whitened.dim}"
            " directions): invariant to invertible linear maps of T; at most the Gaussian's"
            " (r/2) log(2 pi e)"
        )
    else:
        subset = torch.as_tensor(np.asarray(features)[rows], dtype=torch.float64)
        scale = feature_scale(subset)
        if not scale > 0:
            return None, "H(T) not measured: the features have no spread"
        subset = subset / scale
        extra = {
            "whitened": False,
            "scale_normalised": True,
            "feature_scale": scale,
            "role": GEOMETRY_DIAGNOSTIC,
        }
        where = (
            "differential entropy is scale-dependent: this is H(T / s) with s the RMS per-dimension"
            f" std of the features ({scale:.4g}), comparable across layers and models, not an absolute"
            " number"
        )
    try:
        estimate = estimators.kl_entropy(subset, k=k, standardize=False, uncertainty=uncertainty, seed=seed)
    except ValueError as error:
        return None, f"H(T) not measured: {error}"
    return (
        estimate.with_extra(params={**estimate.params, **extra}, warnings=(f"{ENTROPY_CAVEAT}; {where}",)),
        None,
    )


def gaussian_entropy_ceiling(dim: int) -> float:
    """``(dim / 2) log(2 pi e)`` nats: the entropy of a ``dim``-dimensional standard Gaussian, the most
    any unit-covariance distribution (so any whitened feature) has."""
    return 0.5 * dim * math.log(2.0 * math.pi * math.e)


def _rankme(x: torch.Tensor) -> float:
    singular = torch.linalg.svdvals(x)
    p = singular / singular.sum() + RANKME_EPS
    return float(torch.exp(-(p * torch.log(p)).sum()))


def effective_rank(features: np.ndarray, *, uncertainty: bool, seed: int) -> Score:
    """RankMe: exp of the entropy of the normalised singular values of the (uncentred) features.

    p_i = s_i / sum_j s_j + 1e-7 (Garrido et al. 2023, eq. 1); the score is in [1, min(N, D)]. Its
    authors validate it within one training objective: across objectives it is a proxy at best.

    Args:
        features: ``[N, D]`` features.
        uncertainty: Standard error by disjoint-subsample scaling (else ``nan``).
        seed: Seed of the subsample partitions.

    Returns:
        A `Score` with ``method="rankme"``, ``params["max"] = min(N, D)`` and ``baseline=None``.
    """
    start = time.perf_counter()
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    value = _rankme(x)
    stderr, warnings = standard_error(
        uncertainty,
        lambda idx: _rankme(x[idx]),
        x.shape[0],
        value,
        make_generator(seed),
        RANKME_MIN_SUBSAMPLE,
    )
    return Score(
        value=value,
        stderr=stderr,
        n=int(x.shape[0]),
        method="rankme",
        params={"max": int(min(x.shape)), "eps": RANKME_EPS, "centred": False},
        baseline=None,
        seconds=time.perf_counter() - start,
        warnings=(RANKME_CAVEAT, *warnings),
    )


def _words(caption: str) -> list[str]:
    return WORD.findall(caption.lower())


def caption_vocabulary(captions: Sequence[str]) -> list[str]:
    """Lower-cased words that occur in at least 2 of the captions, sorted alphabetically."""
    seen_in = Counter(word for caption in captions for word in set(_words(caption)))
    return sorted(word for word, count in seen_in.items() if count >= 2)


def bag_of_words(captions: Sequence[str]) -> np.ndarray:
    """Word counts ``[N, V]`` float32 over `caption_vocabulary` (columns in its alphabetical order).

    A model-independent text feature: lower-cased word counts, words seen in fewer than 2 captions
    left out (they cannot generalise from a train split to a test split).
    """
    vocabulary = caption_vocabulary(captions)
    column = {word: index for index, word in enumerate(vocabulary)}
    counts = np.zeros((len(captions), len(vocabulary)), dtype=np.float32)
    for row, caption in enumerate(captions):
        for word in _words(caption):
            if word in column:
                counts[row, column[word]] += 1.0
    return counts


def caption_information(
    features: np.ndarray,
    captions: Sequence[str],
    *,
    batch_size: int,
    max_steps: int,
    seed: int,
    progress: bool | None = None,
    device: str | torch.device | None = None,
) -> tuple[Estimate | None, str | None]:
    """InfoNCE lower bound on I(T; words of the caption) <= I(T; caption), in nats.

    The text side is `bag_of_words` (columns constant over the sample, e.g. "a", are dropped, as are
    constant feature columns: neither carries information). Ceiling log K, K = ``batch_size``.

    Args:
        features: ``[N, D]`` features.
        captions: ``N`` captions, row-aligned with ``features``.
        batch_size: InfoNCE batch size K.
        max_steps: Critic training steps at most.
        seed: Seed of the split, batches and critic.
        progress: Progress bar (default: when stderr is a terminal).
        device: Where the critic trains; None = CUDA when available (as `estimators.neural_mi`), so pass
            the measurement's device for the same numbers on machines with and without a GPU.

    Returns:
        ``(Estimate, None)``, or ``(None, reason)`` when the captions give fewer than 2 varying words
        or there are too few samples for the batch size.

    Raises:
        ValueError: when the number of captions differs from the number of feature rows.
    """
    if len(captions) != len(features):
        raise ValueError(f"{len(captions)} captions for {len(features)} feature rows; they must be paired")
    words = bag_of_words(captions)
    words = words[:, np.ptp(words, axis=0) > 0]
    if words.shape[1] < 2:
        return None, (
            f"I(T; caption) not measured: the captions share only {words.shape[1]} varying word(s) seen in"
            " at least 2 captions"
        )
    x = np.asarray(features)
    x = x[:, np.ptp(x, axis=0) > 0]
    if x.shape[1] == 0:
        return None, "I(T; caption) not measured: every feature column is constant"
    try:
        estimate = estimators.neural_mi(
            x,
            words,
            "infonce",
            batch_size=batch_size,
            max_steps=max_steps,
            seed=seed,
            progress=progress,
            device=device,
        )
    except ValueError as error:
        return None, f"I(T; caption) not measured: {error}"
    return (
        estimate.with_extra(
            params={**estimate.params, "text_feature": "bag_of_words", "vocabulary": int(words.shape[1])},
            warnings=(
                "the text side is a bag of words: this bounds I(T; words of the caption) <= I(T; caption)",
            ),
        ),
        None,
    )
