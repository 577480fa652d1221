"""One training loop for every fresh decoder: AdamW, minibatches, early stopping on a validation split.

A decoder is any `nn.Module` plus a ``loss_of(rows) -> [B]`` closure giving the per-sample loss (nats)
of the rows ``rows`` (a CPU ``LongTensor``); the data lives in the closure. `fit_decoder` trains on the
train rows, evaluates the validation rows every epoch, keeps the best epoch's weights and stops after
``patience`` epochs without improvement; `per_sample_losses` then reads the test rows.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

LossOf = Callable[[Tensor], Tensor]
MIN_IMPROVEMENT = 1e-4  # relative drop of the validation loss that counts as progress
# ...and the absolute drop (nats per sample) below which none counts: a loss creeping towards 0 (the
# oracle's labels) would otherwise gain 1e-4 relative every epoch and run to max_epochs.
MIN_IMPROVEMENT_NATS = 1e-3


@dataclass(frozen=True)
class DecoderSettings:
    """The fixed budget of one decoder family (the same for every encoder it compares).

    Attributes:
        width: Hidden width of the decoder.
        max_epochs: Passes over the train rows at most.
        patience: Epochs without a validation improvement before stopping.
        batch_size: Rows per step.
        lr: AdamW learning rate (constant).
        weight_decay: AdamW weight decay.
        seed: Seeds the decoder's initialisation and the batch order.
    """

    width: int = 128
    max_epochs: int = 60
    patience: int = 4
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "max_epochs", "patience", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"decoder {name} must be a positive integer, got {value!r}")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(
                f"decoder lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FitOutcome:
    """How a decoder's training ended.

    Attributes:
        epochs: Epochs run.
        best_epoch: The epoch whose weights were kept (1-based).
        best_val_loss: Its mean validation loss (nats per sample).
        converged: True when it stopped on patience; False when it ran out of epochs still improving.
        seconds: Wall time.
    """

    epochs: int
    best_epoch: int
    best_val_loss: float
    converged: bool
    seconds: float

    def to_params(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "converged": self.converged,
        }

    def warnings(self, what: str) -> tuple[str, ...]:
        if self.converged:
            return ()
        return (
            f"{what} did not converge: its validation loss still fell at epoch {self.epochs} (max_epochs);"
            " a longer fit may give more information",
        )


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build modules under a fixed torch seed without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def per_sample_losses(module: nn.Module, loss_of: LossOf, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """``[len(rows)]`` float64 per-sample losses of ``rows``, in eval mode and without gradients."""
    was_training = module.training
    module.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                batch = torch.as_tensor(rows[start : start + batch_size], dtype=torch.long)
                out.append(loss_of(batch).double().cpu().numpy())
    finally:
        module.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def fit_decoder(
    module: nn.Module,
    loss_of: LossOf,
    train: np.ndarray,
    val: np.ndarray,
    settings: DecoderSettings,
    *,
    progress: bool | None = None,
    desc: str = "decoder",
) -> FitOutcome:
    """Train ``module`` on ``train`` rows with early stopping on ``val``; it ends with the best weights.

    Args:
        module: The decoder, on the device its closure's data lives on.
        loss_of: Per-sample losses ``[B]`` (nats) of a batch of row indices.
        train: ``[n_train]`` rows it learns from.
        val: ``[n_val]`` rows that choose the epoch.
        settings: Budget and optimiser.
        progress: tqdm bar over epochs (default: when stderr is a terminal).
        desc: The bar's label.

    Returns:
        The `FitOutcome`.

    Raises:
        ValueError: for empty train or validation rows, or a non-finite training loss (naming ``desc``).
    """
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"{desc}: needs train and validation rows, got {len(train)} and {len(val)}")
    start = time.perf_counter()
    optimizer = torch.optim.AdamW(module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    rows = torch.as_tensor(np.asarray(train), dtype=torch.long)
    best_loss, best_epoch, best_state, stale = math.inf, 0, copy.deepcopy(module.state_dict()), 0
    disable = not sys.stderr.isatty() if progress is None else not progress
    bar = tqdm(range(1, settings.max_epochs + 1), desc=desc, unit="epoch", disable=disable, leave=False)
    epoch = 0
    for epoch in bar:
        module.train()
        for batch in rows[torch.randperm(len(rows), generator=generator)].split(settings.batch_size):
            loss = loss_of(batch).mean()
            if not torch.isfinite(loss):
                raise ValueError(f"{desc}: the training loss became {loss.item()} at epoch {epoch}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val_loss = float(per_sample_losses(module, loss_of, np.asarray(val), settings.batch_size).mean())
        bar.set_postfix(val=f"{val_loss:.4g}")
        if (
            val_loss < best_loss - max(MIN_IMPROVEMENT * abs(best_loss), MIN_IMPROVEMENT_NATS)
            or best_epoch == 0
        ):
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            stale += 1
            if stale >= settings.patience:
                break
    module.load_state_dict(best_state)
    module.eval()
    return FitOutcome(
        epochs=epoch,
        best_epoch=best_epoch,
        best_val_loss=best_loss,
        converged=stale >= settings.patience,
        seconds=time.perf_counter() - start,
    )
