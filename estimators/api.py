"""One entry point for every estimator: ``estimate(x, y, method=...)`` and ``estimate_entropy(x, ...)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .auto import auto_mi
from .discrete import discrete_entropy, discrete_mi
from .gaussian import gaussian_copula_mi, gaussian_entropy, gaussian_mi
from .interface import Estimate
from .knn import kl_entropy, ksg_mi, mixed_mi, ross_mi
from .neural import BOUNDS, neural_mi
from .validation import ArrayLike


def _ksg2(x: ArrayLike, y: ArrayLike, **kwargs: Any) -> Estimate:
    return ksg_mi(x, y, algorithm=2, **kwargs)


_ksg2.__wrapped__ = ksg_mi  # so inspect.signature reports the real options


def _neural(bound: str) -> Callable[..., Estimate]:
    def estimate_with_bound(x: ArrayLike, y: ArrayLike, **kwargs: Any) -> Estimate:
        return neural_mi(x, y, bound, **kwargs)

    estimate_with_bound.__name__ = f"neural_mi[{bound}]"
    estimate_with_bound.__wrapped__ = neural_mi
    return estimate_with_bound


MI_METHODS: dict[str, Callable[..., Estimate]] = {
    "auto": auto_mi,
    "ksg": ksg_mi,
    "ksg1": ksg_mi,
    "ksg2": _ksg2,
    "mixed": mixed_mi,
    "ross": ross_mi,
    "discrete": discrete_mi,
    "gaussian": gaussian_mi,
    "copula": gaussian_copula_mi,
    **{bound: _neural(bound) for bound in BOUNDS},
}
MI_METHOD_HELP: dict[str, str] = {
    "auto": "choose by ties, dimension and N, and say why (estimators.auto)",
    "ksg": "KSG algorithm 1 (Kraskov et al. 2004), continuous x and y",
    "ksg1": "same as ksg",
    "ksg2": "KSG algorithm 2",
    "mixed": "Gao et al. 2017, data with atoms / discrete-continuous mixtures",
    "ross": "Ross 2014, continuous x and discrete labels y",
    "discrete": "plug-in with Miller-Madow correction, labels vs labels",
    "gaussian": "Gaussian / CCA closed form (exact for Gaussian data)",
    "copula": "Gaussian copula: Gaussian MI of rank-based normal scores",
    "infonce": "InfoNCE lower bound from a trained critic (<= log batch_size)",
    "nwj": "NWJ lower bound from a trained critic",
    "dv": "Donsker-Varadhan bound from a trained critic",
    "mine": "MINE: DV with a moving-average corrected gradient",
    "js": "critic trained with Jensen-Shannon, read with NWJ",
    "smile": "SMILE: DV with a clipped partition (an estimate, not a bound)",
    "interpolated": "interpolated InfoNCE/NWJ bound with a learned baseline",
}
ENTROPY_METHODS: dict[str, Callable[..., Estimate]] = {
    "kl": kl_entropy,
    "discrete": discrete_entropy,
    "gaussian": gaussian_entropy,
}
ENTROPY_METHOD_HELP: dict[str, str] = {
    "kl": "Kozachenko-Leonenko kNN, differential entropy of continuous samples",
    "discrete": "plug-in with Miller-Madow correction, of labels (rows of [N, m] are joint labels)",
    "gaussian": "of the Gaussian with the samples' covariance (an upper bound on h(X))",
}


def estimate(x: ArrayLike, y: ArrayLike, method: str = "auto", **options: Any) -> Estimate:
    """Mutual information I(X; Y) in nats by the named ``method`` (see ``MI_METHODS``).

    Args:
        x: ``[N]`` or ``[N, dx]`` samples (labels for ``"discrete"``).
        y: ``[N]`` or ``[N, dy]`` samples, paired with ``x`` (labels for ``"ross"``/``"discrete"``).
        method: A key of ``MI_METHODS``.
        **options: Passed to the estimator (e.g. ``k=5``, ``uncertainty=False``).

    Raises:
        ValueError: for an unknown method, and whatever the estimator raises for bad input.
    """
    if method not in MI_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(MI_METHODS)}")
    return MI_METHODS[method](x, y, **options)


def estimate_entropy(x: ArrayLike, method: str = "kl", **options: Any) -> Estimate:
    """Entropy of ``x`` in nats: ``"kl"`` (differential, kNN), ``"gaussian"``, ``"discrete"``.

    Raises:
        ValueError: for an unknown method, and whatever the estimator raises for bad input.
    """
    if method not in ENTROPY_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(ENTROPY_METHODS)}")
    return ENTROPY_METHODS[method](x, **options)
