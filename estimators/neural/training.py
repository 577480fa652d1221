"""Training a critic for a variational bound: one split to train, one to stop early, one to report.

Reporting on data the critic never saw keeps the bound honest (a critic scored on its own training
pairs can overfit them and claim any value); choosing the stopping step on a separate split keeps
that choice from inflating the reported number.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from . import bounds
from .critics import CRITICS, make_critic

BOUNDS = ("infonce", "nwj", "dv", "mine", "js", "smile", "interpolated")


@dataclass(frozen=True)
class NeuralSettings:
    """Everything that decides a neural estimate, validated when built.

    Attributes:
        critic: ``"separable"``, ``"bilinear"`` or ``"concat"`` (see :mod:`estimators.neural.critics`).
        hidden, layers, embed_dim: Critic size (MLP width and depth, separable embedding width).
        batch_size: K, the pairs per batch; InfoNCE can never exceed log K.
        learning_rate: Adam step size.
        weight_decay: Decoupled weight decay (AdamW).
        max_steps: Training steps at most.
        eval_every: Steps between evaluations on the validation split.
        patience: Evaluations without improvement before stopping.
        validation_fraction, test_fraction: Shares of the samples held out for stopping and reporting.
        smile_clip: tau of SMILE.
        alpha: Interpolation weight of the interpolated bound (1 = InfoNCE-like, 0 = NWJ-like).
        mine_momentum: Moving-average momentum of MINE.
        test_permutations: Random partitions of the test split into batches averaged in the report.
    """

    critic: str = "separable"
    hidden: int = 256
    layers: int = 2
    embed_dim: int = 32
    batch_size: int = 256
    learning_rate: float = 5e-4
    weight_decay: float = 0.1
    max_steps: int = 3000
    eval_every: int = 25
    patience: int = 10
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    smile_clip: float = 5.0
    alpha: float = 0.5
    mine_momentum: float = 0.99
    test_permutations: int = 10

    def __post_init__(self) -> None:
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be one of {CRITICS}, got {self.critic!r}")
        bounds.check_batch_size(self.batch_size)
        for name in ("hidden", "embed_dim", "max_steps", "eval_every", "patience", "test_permutations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.layers < 0:
            raise ValueError(f"layers must be >= 0, got {self.layers}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("validation_fraction", "test_fraction"):
            if not 0.0 < getattr(self, name) < 0.5:
                raise ValueError(f"{name} must be in (0, 0.5), got {getattr(self, name)}")
        if not self.smile_clip > 0:
            raise ValueError(f"smile_clip must be positive, got {self.smile_clip}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.mine_momentum < 1.0:
            raise ValueError(f"mine_momentum must be in [0, 1), got {self.mine_momentum}")


class BoundObjective(nn.Module):
    """What a bound trains on and what it reports, with any state it carries (MINE's average,
    the interpolated bound's learned baseline)."""

    def __init__(self, bound: str, settings: NeuralSettings):
        super().__init__()
        if bound not in BOUNDS:
            raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")
        self.bound, self.settings = bound, settings
        self.log_baseline = nn.Parameter(torch.zeros(())) if bound == "interpolated" else None
        self.running_log_mean: torch.Tensor | None = None

    def train_value(self, scores: torch.Tensor) -> torch.Tensor:
        """The quantity to maximise (its gradient may differ from the bound's, see ``bounds``)."""
        if self.bound == "mine":
            value, self.running_log_mean = bounds.mine_bound(
                scores, self.running_log_mean, self.settings.mine_momentum
            )
            return value
        return self.read(scores)

    def read(self, scores: torch.Tensor) -> torch.Tensor:
        """The bound's value on a batch."""
        if self.bound == "infonce":
            return bounds.infonce_bound(scores)
        if self.bound == "nwj":
            return bounds.nwj_bound(scores)
        if self.bound in ("dv", "mine"):
            return bounds.dv_bound(scores)
        if self.bound == "js":
            return bounds.js_bound(scores)
        if self.bound == "smile":
            return bounds.smile_bound(scores, self.settings.smile_clip)
        return bounds.interpolated_bound(scores, self.log_baseline, self.settings.alpha)


@dataclass
class TrainedCritic:
    """A trained critic with its training record.

    Attributes:
        critic: The critic at its best validation step.
        objective: The bound (with its learned state).
        steps: Steps trained.
        best_step: Step with the best validation value.
        best_validation: That value (nats).
        converged: Whether training stopped on a plateau rather than at ``max_steps``.
        diverged_at: Step where the loss became non-finite, or None.
    """

    critic: nn.Module
    objective: BoundObjective
    steps: int
    best_step: int
    best_validation: float
    converged: bool
    diverged_at: int | None


def batch_values(
    critic: nn.Module,
    objective: BoundObjective,
    x: torch.Tensor,
    y: torch.Tensor,
    order: torch.Tensor,
    k: int,
) -> torch.Tensor:
    """The bound on each disjoint batch of ``k`` pairs taken in ``order`` (the remainder is dropped)."""
    values = []
    with torch.no_grad():
        for start in range(0, order.shape[0] - k + 1, k):
            index = order[start : start + k]
            values.append(objective.read(critic(x[index], y[index])))
    return torch.stack(values)


def interactive() -> bool:
    """Whether progress bars should show (stderr is a terminal)."""
    return sys.stderr.isatty()


def train_critic(
    bound: str,
    settings: NeuralSettings,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    generator: torch.Generator,
    progress: bool,
    log: Callable[[str], None] = lambda text: None,
) -> TrainedCritic:
    """Train a critic on ``train`` pairs, stopping early on the mean bound over ``validation`` batches.

    Args:
        bound: A name in ``BOUNDS``.
        settings: Sizes and schedule.
        train, validation: ``(x [n, dx], y [n, dy])`` float tensors on the training device.
        generator: CPU generator for batch sampling (the caller seeds it, and torch's global RNG
            for the critic's initial weights).
        progress: Show a progress bar.

    Returns:
        A :class:`TrainedCritic` holding the best-validation weights.
    """
    x_train, y_train = train
    x_val, y_val = validation
    device = x_train.device
    k = settings.batch_size
    critic = make_critic(
        settings.critic,
        x_train.shape[1],
        y_train.shape[1],
        settings.hidden,
        settings.layers,
        settings.embed_dim,
    ).to(device)
    objective = BoundObjective(bound, settings).to(device)
    optimizer = torch.optim.Adam(
        list(critic.parameters()) + list(objective.parameters()), lr=settings.learning_rate
    )
    validation_order = torch.randperm(x_val.shape[0], generator=generator).to(device)

    best, best_step, best_state, waited = -math.inf, 0, None, 0
    converged, diverged_at, step = False, None, 0
    bar = tqdm(total=settings.max_steps, desc=f"{bound} critic", disable=not progress, leave=False)
    for step in range(1, settings.max_steps + 1):
        index = torch.randperm(x_train.shape[0], generator=generator)[:k].to(device)
        loss = -objective.train_value(critic(x_train[index], y_train[index]))
        if not torch.isfinite(loss):
            diverged_at = step
            log(f"non-finite training loss at step {step}; keeping the best critic so far")
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        bar.update(1)
        if step % settings.eval_every == 0 or step == settings.max_steps:
            value = float(batch_values(critic, objective, x_val, y_val, validation_order, k).mean())
            bar.set_postfix(validation=f"{value:.3f}")
            if math.isfinite(value) and value > best:
                best, best_step, waited = value, step, 0
                best_state = (copy.deepcopy(critic.state_dict()), copy.deepcopy(objective.state_dict()))
            else:
                waited += 1
                if waited >= settings.patience:
                    converged = True
                    break
    bar.close()
    if best_state is not None:
        critic.load_state_dict(best_state[0])
        objective.load_state_dict(best_state[1])
    return TrainedCritic(critic, objective, step, best_step, best, converged, diverged_at)
