"""``model.init_from``: a run starts from another run's encoder, an export or a timm state dict, loaded
strictly and safely; a resumed run keeps its own weights; bad sources are errors that say what is wrong."""

import argparse
import hashlib
import json
import shutil

import pytest
import safetensors.torch
import torch

from infomug.models import get_config, save_timm_encoder
from infomug.objectives import build_objective
from infomug.train import CheckpointError, latest_checkpoint, load_config, train
from infomug.train.engine import TrainingRun
from infomug.train.init_from import INIT_RECORD_FILE, init_encoder_from, read_encoder_weights

SOURCE_STEPS = ("model.objective=mae", "train.steps=2", "train.eval_every=0", "train.sample_every=0")


@pytest.fixture(scope="module")
def source_run(tiny_run, tmp_path_factory):
    """The run folder of a 2-step tiny MAE run: the weights other runs start from."""
    run_dir = tmp_path_factory.mktemp("source") / "run"
    train(load_config(None, [*tiny_run, *SOURCE_STEPS]), run_dir, progress=False)
    return run_dir


def _encoder_of_checkpoint(run_dir) -> dict[str, torch.Tensor]:
    stored = safetensors.torch.load_file(latest_checkpoint(run_dir) / "model.safetensors")
    return {k.removeprefix("encoder.vit."): v for k, v in stored.items() if k.startswith("encoder.vit.")}


def _assert_same(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def test_a_run_initialised_from_another_runs_checkpoint_starts_with_its_encoder(
    source_run, tiny_run, tmp_path
):
    config = load_config(None, [*tiny_run, *SOURCE_STEPS, f"model.init_from={source_run}"])
    run = TrainingRun(config, tmp_path / "run", torch.device("cpu"), None, progress=False)
    expected = _encoder_of_checkpoint(source_run)
    _assert_same(run.model.encoder.vit.state_dict(), expected)
    # Only the encoder: the pixel decoder starts from MAE's initialisation, not the source's weights.
    source_decoder = safetensors.torch.load_file(latest_checkpoint(source_run) / "model.safetensors")
    decoder = run.model.pixel_decoder.state_dict()
    assert any(
        not torch.equal(value, source_decoder[f"pixel_decoder.{key}"])
        for key, value in decoder.items()
        if value.dtype.is_floating_point and value.std() > 0
    )
    record = json.loads((tmp_path / "run" / INIT_RECORD_FILE).read_text())
    weights = latest_checkpoint(source_run) / "model.safetensors"
    assert record["kind"] == "infomug checkpoint" and (record["step"], record["objective"]) == (2, "mae")
    assert record["file"] == str(weights.resolve())
    assert record["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f"init_from: {source_run}" in (tmp_path / "run" / "config.yaml").read_text()
    # Every form of the path names the same weights; another objective takes the same encoder.
    for form in (source_run / "checkpoints", latest_checkpoint(source_run), weights):
        _assert_same(read_encoder_weights(form)[0], expected)
    mug = build_objective(get_config(config.model, objective="mug"))
    init_encoder_from(mug, weights)
    _assert_same(mug.encoder.vit.state_dict(), expected)


def test_a_resumed_run_restores_its_own_weights_not_init_from(source_run, tiny_run, tmp_path):
    source = shutil.copytree(source_run, tmp_path / "source")
    config = load_config(
        None,
        [
            *tiny_run,
            *SOURCE_STEPS,
            "train.checkpoint_every=1",
            "train.keep_checkpoints=10",
            f"model.init_from={source}",
        ],
    )
    whole = train(config, tmp_path / "whole", progress=False)
    shutil.rmtree(source)  # a resume must not read init_from again (it would fail now)
    first = whole.run_dir / "checkpoints" / "step_00000001"
    resumed = train(config, tmp_path / "resumed", resume=first, progress=False)
    assert resumed.resumed_from == 1 and not (tmp_path / "resumed" / INIT_RECORD_FILE).exists()
    expected = safetensors.torch.load_file(whole.checkpoint / "model.safetensors")
    actual = safetensors.torch.load_file(resumed.checkpoint / "model.safetensors")
    _assert_same(actual, expected)


def test_exports_and_timm_state_dicts_load_and_a_classifier_head_is_dropped(tmp_path):
    config = get_config("mae_vit_tiny_patch4_32", img_size=16, depth=2, embed_dim=32, num_heads=2)
    torch.manual_seed(0)
    source = build_objective(config).encoder
    expected = source.vit.state_dict()
    save_timm_encoder(source, tmp_path / "export", mean=(0.5,) * 3, std=(0.25,) * 3)
    for form in (tmp_path / "export", tmp_path / "export" / "config.json"):
        target = build_objective(config)
        assert init_encoder_from(target, form)["kind"] == "infomug export"
        _assert_same(target.encoder.vit.state_dict(), expected)

    # A timm classifier checkpoint, nested as MAE and timm's training scripts save it.
    head = {"head.weight": torch.zeros(10, 32), "head.bias": torch.zeros(10)}
    torch.save({"model": {**expected, **head}}, tmp_path / "classifier.pth")
    target = build_objective(config)
    record = init_encoder_from(target, tmp_path / "classifier.pth")
    assert record["kind"] == "state dict" and record["dropped"] == ["head.weight", "head.bias"]
    _assert_same(target.encoder.vit.state_dict(), expected)


def test_bad_sources_are_clear_errors_and_leave_the_model_untouched(source_run, tiny_run, tmp_path):
    config = get_config("mae_vit_tiny_patch4_32", img_size=16, depth=2, embed_dim=32, num_heads=2)
    model = build_objective(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FileNotFoundError, match="model.init_from: no such file or folder"):
        init_encoder_from(model, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="model.init_from: no checkpoint in"):
        init_encoder_from(model, tmp_path / "empty")
    # The source run is 64 wide (the tiny run's model.embed_dim=64): the error names the shapes.
    with pytest.raises(
        ValueError, match=r"shape mismatch: .*cls_token \(file \[1, 1, 64\], model \[1, 1, 32\]\)"
    ):
        init_encoder_from(model, source_run)
    deeper = build_objective(get_config(config, depth=3, embed_dim=64))
    with pytest.raises(ValueError, match=r"missing from the file: blocks\.2\..*embed_dim, depth"):
        init_encoder_from(deeper, source_run)
    extra = {**model.encoder.vit.state_dict(), "mask_token": torch.zeros(1, 1, 32)}
    safetensors.torch.save_file(extra, tmp_path / "mae_full.safetensors")
    with pytest.raises(ValueError, match="not in the model: mask_token"):
        init_encoder_from(model, tmp_path / "mae_full.safetensors")
    # A pickle of other objects than tensors (MAE's checkpoints hold an argparse.Namespace) is refused.
    torch.save(
        {"model": dict(model.encoder.vit.state_dict()), "args": argparse.Namespace(lr=1)}, tmp_path / "a.pth"
    )
    with pytest.raises(ValueError, match=r"weights_only=True"):
        init_encoder_from(model, tmp_path / "a.pth")
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key

    # Through train: the error comes before any step, and names the config key.
    bad = load_config(None, [*tiny_run, *SOURCE_STEPS, f"model.init_from={tmp_path / 'nowhere'}"])
    with pytest.raises(FileNotFoundError, match="model.init_from"):
        train(bad, tmp_path / "run", progress=False)
    assert latest_checkpoint(tmp_path / "run") is None
    with pytest.raises(ValueError, match="model.init_from must be str"):
        load_config(None, [*tiny_run, "model.init_from=3"])
