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

    Step ``0`` uses ``peak / warmup_steps`` (not 0, which would waste a step); steps
    ``warmup_steps - 1`` and ``warmup_steps`` (where the cosine starts) are at ``peak``; step
    ``total_steps - 1`` ends at ``minimum`` (Loshchilov & Hutter 2017, SGDR; MAE), unless it is the only
    step after warmup, which stays at ``peak``.

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
    # A single step after warmup (a one-step run, say) trains at the peak, not at the floor.
    progress = (step - warmup_steps) / decay_steps if decay_steps > 0 else 0.0
    return minimum + (peak - minimum) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_optimizer_settings(
    optimizer: torch.optim.AdamW, weight_decay: float, betas: tuple[float, float], eps: float
) -> None:
    """Set the AdamW settings of an optimizer made by `build_optimizer` (after loading a state dict, which
    brings the saved ones): ``weight_decay`` on its first group (the decayed weights), ``betas`` and
    ``eps`` on both.

    Raises:
        ValueError: if the optimizer does not have `build_optimizer`'s two groups.
    """
    if len(optimizer.param_groups) != 2:
        raise ValueError(f"expected build_optimizer's 2 parameter groups, got {len(optimizer.param_groups)}")
    for group in optimizer.param_groups:
        group["betas"], group["eps"] = (float(betas[0]), float(betas[1])), float(eps)
    optimizer.param_groups[0]["weight_decay"] = weight_decay


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set ``lr`` on every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
