"""The training loop in-process: resuming repeats the uninterrupted run bit for bit, gradient clipping
bounds the update, and a non-finite loss stops the run before it damages the weights."""

import math
import time
import types

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


@pytest.fixture
def make_config(tiny_run):
    """``make_config(*overrides)``: the tiny run's config with one eval batch, no samples, and the
    overrides."""

    def make(*overrides: str):
        return load_config(None, [*tiny_run, "train.eval_batches=1", "train.sample_every=0", *overrides])

    return make


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
    make_config, tmp_path, monkeypatch, overrides
):
    config = make_config(
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


def test_gradient_clipping_logs_the_norm_before_clipping_and_bounds_the_update(make_config, tmp_path):
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
    config = make_config(*common)
    seed_everything(derive_seed(config.train.seed, "init"))  # the trainer's initialisation
    initial = {k: v.detach().clone() for k, v in build_objective(config.model).state_dict().items()}
    changes, norms = {}, {}
    for name, extra in (("plain", ()), ("clipped", (f"optim.grad_clip_norm={clip}",))):
        result = train(make_config(*common, *extra), tmp_path / name, progress=False)
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
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    make_config, tmp_path, monkeypatch, propagate
):
    config = make_config(
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


def test_without_a_checkpoint_the_error_says_none_was_written(make_config, tmp_path, monkeypatch):
    config = make_config(
        "model.objective=mug", "train.steps=4", "train.checkpoint_every=0", "train.eval_every=0"
    )
    _poison_from(monkeypatch, bad_step=1, propagate=True)
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet") as raised:
        train(config, tmp_path / "run", progress=False)
    assert raised.value.checkpoint is None and raised.value.step == 1
    assert list_checkpoints(tmp_path / "run") == []


def test_resume_refusals(make_config, tmp_path):
    config = make_config("model.objective=mae", "train.steps=2", "train.eval_every=0")
    train(config, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(config, tmp_path / "run", resume=False, progress=False)
    changed = make_config("model.objective=mae", "train.steps=2", "train.eval_every=0", "optim.lr=0.002")
    with pytest.raises(ValueError, match=r"differs from the checkpoint .* in: optim\.lr\."):
        train(changed, tmp_path / "run", progress=False)
    # Resuming a finished run does nothing and reports the run as it stands.
    again = train(None, tmp_path / "run", progress=False)
    assert again.steps == 2 and again.resumed_from == 2 and again.config == config


@pytest.mark.parametrize("precision, autocast", [("bf16", True), ("fp32", False)])
def test_bf16_precision_runs_the_forward_passes_under_autocast(
    make_config, tmp_path, monkeypatch, precision, autocast
):
    seen = []
    original = MUGObjective.forward

    def forward(self, batch, generator=None):
        seen.append((self.training, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(self, batch, generator)

    monkeypatch.setattr(MUGObjective, "forward", forward)
    config = make_config(
        "model.objective=mug", "train.steps=2", "train.eval_every=2", f"train.precision={precision}"
    )
    result = train(config, tmp_path / "run", progress=False)
    assert math.isfinite(result.train_metrics["loss"]) and math.isfinite(result.eval_metrics["eval_loss"])
    assert [training for training, _, _ in seen] == [True, True, False], "two steps, then one eval batch"
    assert all(enabled == autocast for _, enabled, _ in seen)
    if autocast:
        assert all(dtype == torch.bfloat16 for _, _, dtype in seen)


def test_clip_temperature_is_clamped_after_each_update(make_config, tmp_path):
    # A temperature of 0.001 puts the logit scale at log(1000), above CLIP's ceiling of log(100); the
    # forward pass clamps its copy (so no gradient moves it) and the trainer clamps the parameter.
    config = make_config(
        "model.objective=clip", "train.steps=2", "train.eval_every=0", "model.clip_initial_temperature=0.001"
    )
    result = train(config, tmp_path / "run", progress=False)
    scale = _weights(result.checkpoint)["logit_scale"]
    assert scale.item() == torch.tensor(math.log(100.0)).item()


def test_a_batch_the_processes_cannot_split_is_refused_before_training(make_config, tmp_path, monkeypatch):
    from infomug import dist

    monkeypatch.setattr(dist, "world_size", lambda: 3)  # as under torchrun --nproc_per_node=3
    config = make_config("model.objective=mae", "train.steps=2", "train.accumulation_steps=2")
    with pytest.raises(
        ValueError, match=r"batch_size 16 does not split into 3 process\(es\) x 2 accumulation"
    ):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_checkpoint_is_written_every_checkpoint_minutes_as_well(make_config, tmp_path, monkeypatch):
    # The engine's clock moves 2 minutes at each reading (at the start, each step boundary and after each
    # checkpoint) against checkpoint_minutes=3: due at steps 2 and 4, and at the last step anyway.
    from infomug.train import engine as engine_module

    ticks = iter(range(0, 10_000, 120))
    clock = types.SimpleNamespace(perf_counter=time.perf_counter, monotonic=lambda: next(ticks))
    monkeypatch.setattr(engine_module, "time", clock)
    settings = (
        "train.steps=5",
        "train.checkpoint_every=0",
        "train.keep_checkpoints=10",
        "train.eval_every=0",
    )
    timed = train(make_config("model.objective=mae", *settings, "train.checkpoint_minutes=3"), tmp_path / "a")
    assert [c.name for c in list_checkpoints(timed.run_dir)] == [f"step_0000000{i}" for i in (2, 4, 5)]
    untimed = make_config("model.objective=mae", *settings, "train.checkpoint_minutes=0")
    assert [c.name for c in list_checkpoints(train(untimed, tmp_path / "b").run_dir)] == ["step_00000005"]
