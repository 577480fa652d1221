"""k-nearest-neighbour estimators: KSG mutual information, Kozachenko-Leonenko entropy, mixed data."""

from .kl_entropy import kl_entropy
from .ksg import ksg_mi
from .mixed import mixed_mi, ross_mi

__all__ = ["kl_entropy", "ksg_mi", "mixed_mi", "ross_mi"]
