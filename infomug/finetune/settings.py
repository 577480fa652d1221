"""The fine-tuning protocol as typed settings: modes, recipes, label budgets, seeds, hyper-parameter grids.

Defaults are sized for the CPU demo (a 32-px ViT-Tiny, 2 cores); ``--set full.steps=2000`` and the like
scale them up. The recipe is MAE's fine-tuning recipe (He et al. 2022, appendix A.1: AdamW with
betas (0.9, 0.999), layer-wise lr decay 0.75, warmup then cosine, label smoothing 0.1, drop path 0.1,
weight decay 0.05), with steps instead of epochs so that every label budget gets the same compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from infomug.train.config import apply_overrides
from infomug.train.typed import build_dataclass, plain

from .tasks import DEFAULT_TASKS

MODES = ("linear", "partial", "full")


@dataclass(frozen=True)
class Recipe:
    """Gradient fine-tuning of the trainable blocks and the heads (the ``partial`` and ``full`` modes).

    Attributes:
        steps: optimizer steps, the same for every encoder and label budget.
        batch_size: images per step.
        lr_grid: peak learning rates tried on the validation split; the best is kept.
        layer_decay: layer-wise lr decay (timm's `param_groups_layer_decay`): the patch embedding trains at
            ``lr * decay^L``, block ``i`` of ``L`` at ``lr * decay^(L - 1 - i)``, the last block and the
            heads at ``lr``; 1.0 turns it off.
        weight_decay: AdamW's, on matrices only (not on norms, biases, tokens, positions).
        warmup_fraction: share of the steps with a linear warmup, then a half-cosine to ``min_lr``.
        min_lr: floor of the cosine.
        label_smoothing: of the cross-entropy.
        drop_path: stochastic depth of the last block (linear in depth).
        blocks: trainable last blocks; None = all (``full``).
        head_norm: the norm between the pooled tokens and the heads: ``"layernorm"`` (MAE's) or
            ``"batchnorm"`` (see `infomug.finetune.classifier.Classifier`).
    """

    steps: int = 300
    batch_size: int = 64
    lr_grid: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    layer_decay: float = 0.75
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    drop_path: float = 0.1
    blocks: int | None = None
    head_norm: str = "layernorm"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if not self.lr_grid or min(self.lr_grid) <= 0:
            raise ValueError(f"lr_grid must hold positive learning rates, got {self.lr_grid}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.head_norm not in ("layernorm", "batchnorm"):
            raise ValueError(f"head_norm must be 'layernorm' or 'batchnorm', got {self.head_norm!r}")
        if self.blocks is not None and self.blocks < 1:
            raise ValueError(f"blocks must be >= 1 (or None for all), got {self.blocks}")


@dataclass(frozen=True)
class LinearRecipe:
    """The frozen encoder's linear probe (``linear`` mode): `infomug.measure.probes.linear_probes` on the
    mean of the final-norm patch tokens, L-BFGS to convergence, so the grid is of its L2 penalty.

    Attributes:
        weight_decay_grid: L2 penalties (per sample) tried on the validation split.
        max_iter: L-BFGS iterations at most.
    """

    weight_decay_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    max_iter: int = 1000

    def __post_init__(self) -> None:
        if not self.weight_decay_grid or min(self.weight_decay_grid) < 0:
            raise ValueError(f"weight_decay_grid must hold penalties >= 0, got {self.weight_decay_grid}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")


@dataclass(frozen=True)
class FinetuneSettings:
    """What `infomug.finetune.finetune` runs.

    Attributes:
        tasks: task names or ``folder:PATH`` / ``csv:PATH[:COLUMN]`` specs (`tasks.build_task`).
        modes: some of `MODES`.
        label_budgets: labelled training images per fit, drawn per seed from the training pool; 0 = all
            of the pool (the pool is the task's training images less the validation split).
        seeds: seeds per cell; the grid is searched on the first, the others reuse its choice.
        val_fraction: share of each task's training images held out to choose hyper-parameters (the same
            images for every encoder and seed; never the test set).
        train_size, test_size: images of the generated worlds' training pool and test set.
        from_scratch: also fine-tune a random initialisation of each architecture (``full`` and
            ``linear`` modes), the reference that pre-training must beat.
        eval_batch_size: images per forward pass when evaluating.
        linear, partial, full: the recipes of the three modes.
    """

    tasks: tuple[str, ...] = DEFAULT_TASKS
    modes: tuple[str, ...] = MODES
    label_budgets: tuple[int, ...] = (1000, 0)
    seeds: int = 3
    val_fraction: float = 0.1
    train_size: int = 10_000
    test_size: int = 2_000
    from_scratch: bool = True
    eval_batch_size: int = 256
    linear: LinearRecipe = field(default_factory=LinearRecipe)
    partial: Recipe = field(default_factory=lambda: Recipe(blocks=2))
    full: Recipe = field(default_factory=Recipe)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("name at least one task")
        unknown = [mode for mode in self.modes if mode not in MODES]
        if unknown or not self.modes:
            raise ValueError(f"modes must be some of {MODES}, got {list(self.modes)}")
        if any(budget < 0 or budget == 1 for budget in self.label_budgets) or not self.label_budgets:
            raise ValueError(f"label budgets must be >= 2 (or 0 for all), got {list(self.label_budgets)}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        if self.partial.blocks is None:
            raise ValueError("the partial recipe must name how many last blocks train (partial.blocks)")

    def recipe(self, mode: str) -> Recipe:
        """The gradient recipe of ``"partial"`` or ``"full"``."""
        return self.partial if mode == "partial" else self.full

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples as lists)."""
        return plain(asdict(self))


def build_settings(overrides: Sequence[str] = (), **values: Any) -> FinetuneSettings:
    """`FinetuneSettings` from keyword values, then dotted ``key=value`` overrides (``full.steps=500``).

    Raises:
        ValueError: for an unknown key (named by its dotted path), a wrong type or a bad value.
    """
    base = FinetuneSettings().to_dict()
    base.update({key: plain(value) for key, value in values.items() if value is not None})
    return build_dataclass(FinetuneSettings, apply_overrides(base, list(overrides)))
