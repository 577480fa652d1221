"""The training loop in-process: resuming repeats the uninterrupted run bit for bit, gradient clipping
bounds the update, and a non-finite loss stops the run before it damages the weights."""

import math

import pytest
import safetensors.torch
import torch

from infomug.objectives import MUGObjective, build_objective
from infomug.train import (
    TrainingDiverged,
    latest_checkpoint,
    list_checkpoints,
    load_config,
    load_model_weights,
    load_train_state,
    read_metrics,
    train,
)
from infomug.train import tokenizer as run_tokenizer_module
from infomug.train.rng import derive_seed, seed_everything

# A model and world small enough for a step in tens of milliseconds: 16x16 images, 16 patches, width 64.
TINY = [
    "model.img_size=16",
    "data.image_size=16",
    "data.world.image_size=16",
    "model.depth=2",
    "model.embed_dim=64",
    "model.num_heads=2",
    "model.decoder_width=32",
    "model.decoder_depth=1",
    "model.caption_width=32",
    "model.text_width=32",
    "model.text_depth=1",
    "model.projection_dim=32",
    "data.world.size=512",
    "data.world.eval_size=64",
    "tokenizer.train_captions=500",
    "train.batch_size=16",
    "train.eval_batches=1",
    "train.log_every=1",
    "train.sample_every=0",
    "optim.warmup_steps=1",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny matrices gain nothing from a second thread, and on a busy machine waiting for it costs ~10x.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(*overrides: str):
    return load_config(None, [*TINY, *overrides])


def _weights(checkpoint) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(checkpoint / "model.safetensors")


def _assert_identical(a, b, where="train_state"):
    """Nested containers of tensors are equal: tensors bit for bit (dtype included), the rest by ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            _assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


def _losses(records):
    return [{k: v for k, v in r.items() if k == "step" or k.startswith("loss")} for r in records]


@pytest.mark.parametrize(
    "overrides",
    [("model.objective=mae", "train.accumulation_steps=2"), ("model.objective=mug",)],
    ids=["mae-accumulation", "mug"],
)
def test_resuming_from_a_checkpoint_repeats_the_uninterrupted_run_bit_for_bit(
    tmp_path, monkeypatch, overrides
):
    config = _config(
        *overrides,
        "train.steps=4",
        "train.checkpoint_every=2",
        "train.eval_every=2",
        "train.keep_checkpoints=10",
    )
    whole = train(config, tmp_path / "whole", progress=False)
    assert [c.name for c in list_checkpoints(whole.run_dir)] == ["step_00000002", "step_00000004"]

    def no_training(*args, **kwargs):
        raise AssertionError("the resumed run trained a new tokenizer instead of reusing the checkpoint's")

    # A BPE trained afresh could assign other ids; the resumed run must read the checkpoint's tokenizer.
    monkeypatch.setattr(run_tokenizer_module, "training_captions", no_training)
    middle = whole.run_dir / "checkpoints" / "step_00000002"
    resumed = train(config, tmp_path / "resumed", resume=middle, progress=False)

    assert resumed.resumed_from == 2 and resumed.steps == 4
    assert resumed.checkpoint == resumed.run_dir / "checkpoints" / "step_00000004"
    expected, actual = _weights(whole.checkpoint), _weights(resumed.checkpoint)
    assert set(expected) == set(actual)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    state, resumed_state = load_train_state(whole.checkpoint), load_train_state(resumed.checkpoint)
    _assert_identical(state["optimizer"], resumed_state["optimizer"], "optimizer")
    assert state["position"] == resumed_state["position"] and resumed_state["step"] == 4
    # Global generators continue where they stopped too (user transforms or dropout may draw from them).
    _assert_identical(state["rng"], resumed_state["rng"], "rng")

    resumed_records = read_metrics(resumed.run_dir / "metrics.jsonl", kind="train")
    assert [r["step"] for r in resumed_records] == [3, 4]
    assert _losses(resumed_records) == _losses(
        read_metrics(whole.run_dir / "metrics.jsonl", kind="train")[2:]
    )
    eval_records = read_metrics(resumed.run_dir / "metrics.jsonl", kind="eval")
    assert eval_records[-1]["eval_loss"] == whole.eval_metrics["eval_loss"]
    if config.model.objective == "mug":
        tokenizer = (whole.run_dir / "tokenizer.json").read_bytes()
        assert (resumed.run_dir / "tokenizer.json").read_bytes() == tokenizer
        assert (resumed.checkpoint / "tokenizer.json").read_bytes() == tokenizer


def test_gradient_clipping_logs_the_norm_before_clipping_and_bounds_the_update(tmp_path):
    lr, clip, eps = 1e-3, 1e-9, 1e-8
    common = (
        "model.objective=mae",
        "train.steps=2",
        "train.checkpoint_every=1",
        "optim.weight_decay=0.0",
        f"optim.lr={lr}",
        f"optim.eps={eps}",
        "train.eval_every=0",
    )
    config = _config(*common)
    seed_everything(derive_seed(config.train.seed, "init"))  # the trainer's initialisation
    initial = {k: v.detach().clone() for k, v in build_objective(config.model).state_dict().items()}
    changes, norms = {}, {}
    for name, extra in (("plain", ()), ("clipped", (f"optim.grad_clip_norm={clip}",))):
        result = train(_config(*common, *extra), tmp_path / name, progress=False)
        after = _weights(result.run_dir / "checkpoints" / "step_00000001")
        changes[name] = max(float((after[k] - initial[k]).abs().max()) for k in after)
        norms[name] = read_metrics(result.run_dir / "metrics.jsonl", kind="train")[0]["grad_norm"]
    # The logged norm is the one before clipping: the same in both runs, and far above the limit.
    assert norms["clipped"] == pytest.approx(norms["plain"], rel=1e-6)
    assert norms["clipped"] > 1e6 * clip
    # AdamW's first step moves each weight by lr * g / (|g| + eps); a gradient clipped to total norm
    # `clip` has |g| <= clip, so no weight moves more than lr * clip / (clip + eps). Unclipped, the step
    # is about lr wherever |g| >> eps.
    assert changes["clipped"] <= lr * clip / (clip + eps) * (1 + 1e-4)
    assert changes["plain"] > 0.5 * lr


def _poison_from(monkeypatch, bad_step: int, propagate: bool):
    """Make MUG's caption loss NaN from optimizer step ``bad_step`` (0-based) on, in training only."""
    calls = {"train": 0}
    original = MUGObjective.forward

    def forward(self, batch, generator=None):
        out = original(self, batch, generator)
        if self.training:
            calls["train"] += 1
            if calls["train"] > bad_step:
                out["loss_caption"] = out["loss_caption"] * math.nan
                if propagate:
                    out["loss"] = out["loss"] + out["loss_caption"]
        return out

    monkeypatch.setattr(MUGObjective, "forward", forward)


@pytest.mark.parametrize("propagate", [True, False], ids=["nan-total", "nan-term-only"])
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, propagate):
    config = _config(
        "model.objective=mug",
        "train.steps=6",
        "train.checkpoint_every=1",
        "train.keep_checkpoints=10",
        "train.eval_every=0",
    )
    _poison_from(monkeypatch, bad_step=3, propagate=propagate)
    with pytest.raises(TrainingDiverged, match="diverged at step 3: loss_caption is nan") as raised:
        train(config, tmp_path / "run", progress=False)
    error = raised.value
    assert (error.step, error.term) == (3, "loss_caption")
    good = tmp_path / "run" / "checkpoints" / "step_00000003"
    assert error.checkpoint == good and latest_checkpoint(tmp_path / "run") == good
    assert [c.name for c in list_checkpoints(tmp_path / "run")][-1] == "step_00000003"
    model = build_objective(config.model)
    load_model_weights(model, good)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert load_train_state(good)["step"] == 3
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    assert records[-1] == {"kind": "event", "step": 3, "event": "diverged", "term": "loss_caption"}


def test_without_a_checkpoint_the_error_says_none_was_written(tmp_path, monkeypatch):
    config = _config("model.objective=mug", "train.steps=4", "train.checkpoint_every=0", "train.eval_every=0")
    _poison_from(monkeypatch, bad_step=1, propagate=True)
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet") as raised:
        train(config, tmp_path / "run", progress=False)
    assert raised.value.checkpoint is None and raised.value.step == 1
    assert list_checkpoints(tmp_path / "run") == []


def test_resume_refusals(tmp_path):
    config = _config("model.objective=mae", "train.steps=2", "train.eval_every=0")
    train(config, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(config, tmp_path / "run", resume=False, progress=False)
    changed = _config("model.objective=mae", "train.steps=2", "train.eval_every=0", "optim.lr=0.002")
    with pytest.raises(ValueError, match=r"differs from the checkpoint .* in: optim\.lr\."):
        train(changed, tmp_path / "run", progress=False)
    # Resuming a finished run does nothing and reports the run as it stands.
    again = train(None, tmp_path / "run", progress=False)
    assert again.steps == 2 and again.resumed_from == 2 and again.config == config
