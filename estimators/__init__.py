"""Entropy and mutual information estimators that work on any arrays.

Standalone: depends on numpy, scipy and torch only, never on ``infomug``. Every estimator returns an
:class:`Estimate` (value in nats, ``.bits``, standard error, 95% interval, settings, warnings).

    import numpy as np, estimators
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 1))
    y = x + rng.normal(size=(2000, 1))      # true I = 0.5 log 2 = 0.347 nats
    print(estimators.estimate(x, y))        # method="auto": picks KSG here, and says why
"""

from .api import ENTROPY_METHODS, MI_METHODS, estimate, estimate_entropy
from .auto import auto_mi
from .decoder_bounds import barber_agakov_bound, gaussian_nll, sequence_nll
from .discrete import discrete_entropy, discrete_mi
from .gaussian import gaussian_copula_mi, gaussian_entropy, gaussian_mi
from .interface import Estimate
from .knn import kl_entropy, ksg_mi, mixed_mi, ross_mi
from .neural import NeuralSettings, neural_mi
from .noisy_channel import kolchinsky_tracey_bounds, noisy_channel_mi, noisy_channel_sweep

__all__ = [
    "ENTROPY_METHODS",
    "MI_METHODS",
    "Estimate",
    "NeuralSettings",
    "auto_mi",
    "barber_agakov_bound",
    "discrete_entropy",
    "discrete_mi",
    "estimate",
    "estimate_entropy",
    "gaussian_copula_mi",
    "gaussian_entropy",
    "gaussian_mi",
    "gaussian_nll",
    "kl_entropy",
    "kolchinsky_tracey_bounds",
    "ksg_mi",
    "mixed_mi",
    "neural_mi",
    "noisy_channel_mi",
    "noisy_channel_sweep",
    "ross_mi",
    "sequence_nll",
]
