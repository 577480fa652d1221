"""Usable information on equal terms: fresh decoders trained on frozen features, the same for every encoder.

    from infomug.measure.usable import Splits, factor_information, image_information, caption_information
    splits = Splits.make(len(features), test_fraction=0.3, val_fraction=0.1, seed=0)
    information = factor_information(features, {"shape": shapes}, splits, entropies={"shape": math.log(8)})
    information["shape"].estimate     # an Estimate: nats, stderr, kind "lower_bound", ceiling log 8

`basis` (the canonical basis every decoder reads: whitened, rotated to the fourth-moment axes, so any
invertible linear map of the features changes nothing), `splits` (train / validation / test rows),
`fitting` (one early-stopping loop), `factors` (an MLP per label: I(T; label) >= H(label) - CE), `image`
(token grid -> pixels, discretised Gaussian: I_V(T -> X) = H_V(X) - H_V(X | T)), `caption` (a causal
decoder cross-attending to the tokens: I(T; caption) >= H(caption) - CE), `estimates` (per-image values,
paired differences) and `stage` (all of them for one model inside `infomug measure`). Xu et al. 2020,
"A Theory of Usable Information under Computational Constraints"; Barber & Agakov 2003.
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy, like infomug.measure: `information` imports `basis` alone, and `factors` imports `information`.
_EXPORTS = {
    "CanonicalBasis": "basis",
    "DecodedInformation": "estimates",
    "paired_difference": "estimates",
    "DecoderSettings": "fitting",
    "fit_decoder": "fitting",
    "Splits": "splits",
    "caption_baseline": "caption",
    "caption_information": "caption",
    "factor_information": "factors",
    "image_baseline": "image",
    "image_information": "image",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'infomug.measure.usable' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
