"""Which estimator handles data with atoms (repeated values) that KSG cannot.

KSG assumes a density; a value repeated at least k times puts a point at zero kNN distance and the
estimate off. Three cases, each with the estimator built for it:

* both variables discrete -> plug-in with Miller-Madow correction (:func:`estimators.discrete_mi`);
* one discrete, the other continuous -> Ross (2014) (:func:`estimators.ross_mi`);
* anything else (a mixture of atoms and a continuous part) -> Gao et al. (2017)
  (:func:`estimators.mixed_mi`). Gao's estimator needs k to grow with N on the continuous part
  (at k = 3 it is biased by about -0.3 nats on a discrete-vs-uniform example), so it is the last
  resort, not the first.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..discrete import discrete_mi
from ..interface import Estimate
from ..validation import ArrayLike
from .common import HEAVY_TIE_FRACTION
from .mixed import mixed_mi, ross_mi

# A variable whose points are (almost) all repeated at least k times is treated as discrete.
DISCRETE_FRACTION = 0.99


def estimate_with_atoms(
    x: ArrayLike,
    y: ArrayLike,
    atoms_x: float,
    atoms_y: float,
    ks: Sequence[int],
    *,
    standardize: bool,
    backend: str,
    uncertainty: bool,
    seed: int | None,
) -> tuple[Estimate, str]:
    """Estimate I(X; Y) with the estimator suited to where the atoms are; also return its name.

    ``atoms_x``/``atoms_y``: fraction of points of x/y with at least max(ks) exact duplicates.
    """
    knn_options = {"standardize": standardize, "backend": backend, "uncertainty": uncertainty, "seed": seed}
    if atoms_x >= DISCRETE_FRACTION and atoms_y >= DISCRETE_FRACTION:
        return discrete_mi(x, y, uncertainty=uncertainty, seed=seed), "the plug-in discrete estimator"
    if atoms_x >= DISCRETE_FRACTION and atoms_y <= HEAVY_TIE_FRACTION:
        return ross_mi(y, x, ks, **knn_options), "Ross's estimator (x as labels)"
    if atoms_y >= DISCRETE_FRACTION and atoms_x <= HEAVY_TIE_FRACTION:
        return ross_mi(x, y, ks, **knn_options), "Ross's estimator (y as labels)"
    return mixed_mi(x, y, ks, **knn_options), "the mixed estimator of Gao et al. (2017)"
