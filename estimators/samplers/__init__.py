"""Joint distributions with closed-form mutual information, to validate estimators against."""

from .base import Sampler
from .gaussian import GaussianSampler
from .student_t import StudentTSampler
from .transforms import Spiral, TransformedSampler, asinh, half_cube, normal_cdf
from .uniform import AdditiveUniformSampler

__all__ = [
    "AdditiveUniformSampler",
    "GaussianSampler",
    "Sampler",
    "Spiral",
    "StudentTSampler",
    "TransformedSampler",
    "asinh",
    "half_cube",
    "normal_cdf",
]
