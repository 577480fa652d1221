"""AdamW with MAE's parameter groups, and the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

# Parameters named like these are embeddings or learned tokens: no weight decay, as in MAE and timm.
NO_DECAY_NAMES = ("pos_embed", "cls_token", "mask_token", "token_embedding", "logit_scale")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weights (matrices, kernels) and everything else.

    Norm weights, biases (any 0-d or 1-d tensor), embeddings and learned tokens (``NO_DECAY_NAMES``) get no
    weight decay (He et al. 2022, MAE; timm's ``param_groups_weight_decay``).

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}]``,
        frozen parameters left out. Each group also carries ``"names"`` for inspection.
    """
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim <= 1 or any(part in name for part in NO_DECAY_NAMES):
            no_decay.append(parameter)
            no_decay_names.append(name)
        else:
            decay.append(parameter)
            decay_names.append(name)
    return [
        {"params": decay, "weight_decay": weight_decay, "names": decay_names},
        {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names},
    ]


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """AdamW over `parameter_groups` (``lr`` is set every step by the schedule).

    Raises:
        ValueError: if the model has no trainable parameter.
    """
    groups = parameter_groups(model, weight_decay)
    if not groups[0]["params"] and not groups[1]["params"]:
        raise ValueError("the model has no trainable parameters")
    for group in groups:
        group.pop("names")
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def learning_rate(step: int, total_steps: int, peak: float, warmup_steps: int, minimum: float = 0.0) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then half-cosine to ``minimum``.

    Step ``0`` uses ``peak / warmup_steps`` (not 0, which would waste a step); step ``warmup_steps``
    reaches ``peak``; step ``total_steps - 1`` ends at ``minimum`` (Loshchilov & Hutter 2017, SGDR; MAE).

    Raises:
        ValueError: for ``step`` outside ``[0, total_steps)`` or ``warmup_steps >= total_steps``.
    """
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} is outside [0, {total_steps})")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup_steps must be in [0, {total_steps}), got {warmup_steps}")
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    decay_steps = total_steps - 1 - warmup_steps
    progress = (step - warmup_steps) / decay_steps if decay_steps > 0 else 1.0
    return minimum + (peak - minimum) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
