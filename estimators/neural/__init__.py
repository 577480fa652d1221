"""Neural variational bounds on mutual information: bounds, critics and the estimator that trains them."""

from .critics import CRITICS, make_critic
from .estimator import neural_mi
from .training import BOUNDS, NeuralSettings

__all__ = ["BOUNDS", "CRITICS", "NeuralSettings", "make_critic", "neural_mi"]
