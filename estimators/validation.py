"""Input checks shared by every estimator: one clear error per kind of bad input."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

ArrayLike = Any  # numpy array, torch tensor, or anything np.asarray accepts

# A column whose values are all integers and take at most this many distinct values is probably a
# label or a count; KSG assumes a density and is biased on such data.
_MAX_LABEL_LEVELS = 32


def as_samples(x: ArrayLike, name: str = "x") -> torch.Tensor:
    """Return ``x`` as a float64 tensor of shape ``[N, d]`` on its own device.

    Args:
        x: ``[N]`` or ``[N, d]`` samples (numpy array, torch tensor, or nested lists). A torch tensor
            stays on its device, so GPU data is estimated on the GPU.
        name: What to call the array in error messages.

    Raises:
        TypeError: for complex, string or object arrays.
        ValueError: for empty arrays, arrays of rank other than 1 or 2, and NaN or infinite values.
    """
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"{name} is complex; estimators need real-valued samples")
        tensor = x.detach()
    else:
        array = np.asarray(x)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} has dtype {array.dtype}; estimators need real-valued numeric samples")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor.ndim == 1:
        tensor = tensor[:, None]
    if tensor.ndim != 2:
        raise ValueError(f"{name} must have shape [N] or [N, d], got shape {tuple(tensor.shape)}")
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)})")
    tensor = tensor.to(torch.float64)
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        row, col = (int(v) for v in torch.nonzero(bad)[0])
        kind = "NaN" if bool(torch.isnan(tensor).any()) else "infinite"
        raise ValueError(
            f"{name} contains {int(bad.sum())} {kind}/non-finite values (first at row {row}, column {col});"
            " drop or impute them before estimating"
        )
    return tensor.contiguous()


def as_labels(y: ArrayLike, name: str = "y") -> np.ndarray:
    """Return discrete values as integer codes ``[N]`` (rows of a 2-D array become joint codes).

    Raises:
        ValueError: for empty input or rank above 2.
    """
    array = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if array.ndim == 0 or array.ndim > 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be non-empty labels of shape [N] or [N, d], got shape {array.shape}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite labels")
    if array.ndim == 2:
        _, codes = np.unique(array, axis=0, return_inverse=True)
    else:
        _, codes = np.unique(array, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def check_same_length(*arrays_and_names: tuple[Any, str]) -> int:
    """Check that all arrays have the same number of samples and return it.

    Raises:
        ValueError: naming each array's length when they differ.
    """
    lengths = {name: len(array) for array, name in arrays_and_names}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {length}" for name, length in lengths.items())
        raise ValueError(f"mismatched lengths: {described} samples; samples must be paired row by row")
    return next(iter(lengths.values()))


def check_neighbors(k: int) -> int:
    """Validate a neighbour count.

    Raises:
        ValueError: if ``k`` is not a positive integer.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k (number of neighbours) must be a positive integer, got {k!r}")
    return int(k)


def check_enough_samples(n: int, k: int, what: str = "samples") -> None:
    """Raise ValueError when there are fewer than ``k + 1`` samples (a point needs k others)."""
    if n < k + 1:
        raise ValueError(f"too few {what}: {n}, a k={k} nearest-neighbour estimate needs at least {k + 1}")


def check_no_constant_columns(x: torch.Tensor, name: str = "x") -> None:
    """Raise ValueError naming the first column of ``x`` ``[N, d]`` that holds a single value.

    This is the one rule for every estimator of continuous data, ``method="auto"`` included: a single
    value carries no information and has no scale, so it is refused rather than estimated as 0.
    """
    constant = (x == x[:1]).all(dim=0)
    if bool(constant.all()):
        row = ", ".join(f"{float(value)!r}" for value in x[0, :4]) + (", ..." if x.shape[1] > 4 else "")
        raise ValueError(
            f"{name} is constant (all {x.shape[0]} rows are [{row}]): it carries no information and has no"
            " scale to standardise, so there is nothing to estimate"
        )
    if bool(constant.any()):
        col = int(torch.nonzero(constant)[0])
        raise ValueError(
            f"{name} column {col} is constant (every value is {float(x[0, col])!r}): it carries no"
            " information and has no scale to standardise; drop it"
        )


def looks_like_labels(x: torch.Tensor) -> bool:
    """True when every column of ``x`` ``[N, d]`` is integer-valued with few distinct values."""
    if not bool((x == torch.round(x)).all()):
        return False
    return all(torch.unique(x[:, col]).numel() <= _MAX_LABEL_LEVELS for col in range(x.shape[1]))


def label_warning(x: torch.Tensor, name: str) -> list[str]:
    """A warning (as a one-item list) when continuous-data estimators are handed labels."""
    if not looks_like_labels(x):
        return []
    return [
        f"{name} looks like discrete labels (integer values, few levels): kNN estimators assume a density;"
        " use method='ross' (continuous vs labels), 'discrete' (labels vs labels) or 'mixed' instead"
    ]
