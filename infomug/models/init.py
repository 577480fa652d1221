"""MAE's weight initialisation (He et al. 2022, `models_mae.py: initialize_weights`), for the encoder and
the pixel decoder of every objective, so that runs differ by their objective and not by their init."""

from __future__ import annotations

import torch
from torch import nn


def init_mae_weights_(module: nn.Module) -> None:
    """In place: xavier-uniform weights and zero biases for every `nn.Linear`; unit weight and zero bias
    for every `nn.LayerNorm`; a patch-embedding convolution initialised like the linear map it is."""
    for child in module.modules():
        if isinstance(child, nn.Linear):
            nn.init.xavier_uniform_(child.weight)
            if child.bias is not None:
                nn.init.zeros_(child.bias)
        elif isinstance(child, nn.LayerNorm):
            if child.weight is not None:
                nn.init.ones_(child.weight)
            if child.bias is not None:
                nn.init.zeros_(child.bias)
        elif isinstance(child, nn.Conv2d) and child.kernel_size == child.stride:
            # A patch embedding: MAE treats its kernel as a [out, in * p * p] linear map.
            with torch.no_grad():
                nn.init.xavier_uniform_(child.weight.view(child.weight.shape[0], -1))
            if child.bias is not None:
                nn.init.zeros_(child.bias)
