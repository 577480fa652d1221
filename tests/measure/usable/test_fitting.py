import numpy as np
import pytest
import torch
from torch import nn

from infomug.measure.usable.fitting import DecoderSettings, fit_decoder, per_sample_losses, seeded


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))


def drifting_problem():
    """One weight from 0 towards the train target 1; the validation target 0.3 is passed on the way."""
    module = Scalar()
    targets = torch.cat([torch.ones(20), torch.full((10,), 0.3)])

    def loss_of(rows):
        return (module.w - targets[rows]) ** 2

    return module, loss_of, np.arange(20), np.arange(20, 30)


def test_early_stopping_keeps_the_best_epoch():
    module, loss_of, train, val = drifting_problem()
    # One step an epoch (the batch holds all train rows), Adam moves w by ~lr a step: the validation loss
    # falls until w reaches 0.3 (epoch ~6), then rises.
    settings = DecoderSettings(max_epochs=50, patience=3, batch_size=64, lr=0.05, weight_decay=0.0)
    outcome = fit_decoder(module, loss_of, train, val, settings, progress=False)
    assert outcome.converged
    assert outcome.warnings("x") == ()
    assert 3 <= outcome.best_epoch <= 10
    assert outcome.epochs == outcome.best_epoch + settings.patience
    # The module ends with the best epoch's weights: its validation loss is the best one, exactly, and w is
    # within one Adam step (lr) of the validation target.
    final = per_sample_losses(module, loss_of, val, 64).mean()
    assert final == pytest.approx(outcome.best_val_loss, abs=1e-12)
    assert abs(module.w.item() - 0.3) < settings.lr


def test_running_out_of_epochs_is_not_converged():
    module, loss_of, train, _ = drifting_problem()
    settings = DecoderSettings(max_epochs=1, patience=3, batch_size=64, lr=0.05, weight_decay=0.0)
    outcome = fit_decoder(module, loss_of, train, train, settings, progress=False)  # val = train: improving
    assert not outcome.converged
    assert outcome.epochs == 1 and outcome.best_epoch == 1
    assert "did not converge" in outcome.warnings("the decoder")[0]


def test_a_loss_creeping_towards_zero_stops_on_patience():
    # A perfectly separable target (the oracle's labels): the loss keeps halving towards 0, a relative
    # gain every epoch; below MIN_IMPROVEMENT_NATS a gain no longer counts, so the fit stops early.
    module = Scalar()

    def loss_of(rows):
        return torch.exp(-module.w).expand(len(rows)) * 0.01

    settings = DecoderSettings(max_epochs=200, patience=3, batch_size=64, lr=0.5, weight_decay=0.0)
    outcome = fit_decoder(module, loss_of, np.arange(20), np.arange(20), settings, progress=False)
    # The loss falls by ~40% an epoch: gains drop below 1e-3 nats at ~1.5e-3 (with 1e-4: 16 epochs).
    assert outcome.converged and outcome.epochs <= 10
    assert 5e-4 < outcome.best_val_loss < 2e-3


def fitted_weights(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(123)
    x, y = torch.randn(200, 4, generator=generator), torch.randn(200, generator=generator)
    settings = DecoderSettings(width=8, max_epochs=5, patience=2, batch_size=32, seed=seed)
    with seeded(settings.seed):
        module = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 1))

    def loss_of(rows):
        return (module(x[rows])[:, 0] - y[rows]) ** 2

    fit_decoder(module, loss_of, np.arange(150), np.arange(150, 200), settings, progress=False)
    return [p.detach().clone() for p in module.parameters()]


def test_a_seed_makes_the_fit_deterministic():
    first, again, other = fitted_weights(0), fitted_weights(0), fitted_weights(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_seeded_leaves_the_callers_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded(0):
        torch.rand(10)
    assert torch.equal(torch.rand(3), expected)


def test_per_sample_losses_keeps_extra_axes():
    # factor decoders read [B, F] losses (one column per factor) through it
    module = Scalar()
    losses = per_sample_losses(module, lambda rows: rows[:, None].float().repeat(1, 3), np.arange(10), 4)
    assert losses.shape == (10, 3)
    np.testing.assert_array_equal(losses[:, 2], np.arange(10))


def test_errors():
    module, loss_of, train, val = drifting_problem()
    with pytest.raises(ValueError, match="validation rows"):
        fit_decoder(module, loss_of, train, val[:0], DecoderSettings(), progress=False)
    with pytest.raises(ValueError, match="became"):
        fit_decoder(
            module, lambda rows: loss_of(rows) * np.nan, train, val, DecoderSettings(), progress=False
        )
    with pytest.raises(ValueError, match="positive integer"):
        DecoderSettings(width=0)
