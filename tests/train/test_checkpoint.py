import json
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from infomug import __version__
from infomug.train.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    load_model_weights,
    load_train_state,
    read_checkpoint_info,
    save_checkpoint,
)
from infomug.train.checkpoint_folders import (
    CheckpointError,
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    resolve_checkpoint,
)
from infomug.train.checksums import read_checksums, write_checksums

CONFIG = {"model": {"name": "tied", "dim": 8}, "optim": {"lr": 1e-2, "betas": [0.9, 0.95]}, "seed": None}


class TiedNet(nn.Module):
    """Token embedding tied to the output projection, as a caption decoder ties them."""

    def __init__(self, vocab: int = 16, dim: int = 8, extra: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight
        self.extra = nn.Linear(dim, dim) if extra else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.mix(self.embed(tokens))))


class RunsCode:
    """A pickle that would create a marker file when loaded without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


class Custom:
    pass


def _step(model: TiedNet, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 16, (4, 5), generator=generator)
    loss = nn.functional.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def _trained(seed: int = 0) -> tuple[TiedNet, torch.optim.AdamW, dict]:
    torch.manual_seed(seed)
    model = TiedNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    _step(model, optimizer, seed=1)
    train_state = {
        "optimizer": optimizer.state_dict(),
        "step": 1,
        "data": {"epoch": 0, "position": 4},
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
    }
    return model, optimizer, train_state


def _save(run: Path, step: int, **kwargs) -> Path:
    model, _, train_state = _trained()
    return save_checkpoint(run, step, model, train_state, CONFIG, **kwargs)


def _names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_round_trip_is_bit_exact_and_resumes_the_same_trajectory(tmp_path):
    model, optimizer, train_state = _trained()
    folder = save_checkpoint(tmp_path, 1, model, train_state, CONFIG)
    assert folder == tmp_path / "checkpoints" / "step_00000001"

    torch.manual_seed(123)
    restored = TiedNet()
    info = load_model_weights(restored, tmp_path)
    assert info.step == 1
    for key, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    assert restored.head.weight is restored.embed.weight, "loading must keep the tie"

    state = load_train_state(folder)
    assert state["step"] == 1 and state["data"] == {"epoch": 0, "position": 4}
    assert torch.equal(state["rng"]["torch"], train_state["rng"]["torch"])
    assert state["rng"]["python"] == train_state["rng"]["python"]
    restored_optimizer = torch.optim.AdamW(restored.parameters(), lr=1e-2)
    restored_optimizer.load_state_dict(state["optimizer"])

    _step(model, optimizer, seed=2)
    _step(restored, restored_optimizer, seed=2)
    for (key, value), restored_value in zip(
        model.state_dict().items(), restored.state_dict().values(), strict=True
    ):
        assert torch.equal(restored_value, value), key


def test_metadata_and_config_round_trip(tmp_path):
    folder = _save(tmp_path, 250)
    info = read_checkpoint_info(folder / "model.safetensors")
    assert info.path == folder
    assert info.step == 250
    assert info.config == CONFIG
    assert info.infomug_version == __version__
    assert info.metadata["format"] == FORMAT
    assert info.metadata["format_version"] == str(FORMAT_VERSION)
    assert json.loads(info.metadata["config"]) == CONFIG
    assert read_checkpoint_info(tmp_path) == info


def test_real_objective_round_trip(tmp_path, tiny_config):
    from infomug.objectives import build_objective

    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build_objective(tiny_config.replace(objective="mug"))

    model, other = build(0), build(1)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True)
    )
    save_checkpoint(tmp_path, 3, model, {"step": 3}, CONFIG)
    load_model_weights(other, tmp_path)
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key

    # A MUG checkpoint does not fit the small tied model: missing and unexpected keys are named.
    with pytest.raises(
        CheckpointError, match=r"missing from the checkpoint: embed\.weight.*not in the model"
    ):
        load_model_weights(TiedNet(), tmp_path)


def test_wrapped_model_saves_the_inner_module(tmp_path):
    import torch.distributed as torch_dist

    model, _, train_state = _trained()
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        save_checkpoint(tmp_path / "ddp", 1, nn.parallel.DistributedDataParallel(model), train_state, CONFIG)
        wrapped = nn.parallel.DistributedDataParallel(TiedNet())
        load_model_weights(wrapped, tmp_path / "ddp")
    finally:
        torch_dist.destroy_process_group()
    assert torch.equal(wrapped.module.mix.weight, model.mix.weight)

    save_checkpoint(tmp_path / "compiled", 1, torch.compile(model), train_state, CONFIG)
    restored = TiedNet()
    load_model_weights(restored, tmp_path / "compiled")  # keys without DDP's or compile's prefixes
    assert torch.equal(restored.mix.weight, model.mix.weight)


def test_latest_and_best_pointers(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert best_checkpoint(tmp_path) is None
    assert list_checkpoints(tmp_path) == []
    _save(tmp_path, 1, is_best=True)
    _save(tmp_path, 2)
    _save(tmp_path, 3)
    checkpoints = tmp_path / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step_00000003"
    assert latest_checkpoint(tmp_path) == checkpoints / "step_00000003"
    assert latest_checkpoint(checkpoints) == checkpoints / "step_00000003"
    assert best_checkpoint(tmp_path) == checkpoints / "step_00000001"


def test_a_save_cut_between_the_pointers_never_leaves_best_behind_latest(tmp_path, monkeypatch):
    import infomug.train.checkpoint as checkpoint_module

    _save(tmp_path, 1, keep_last=1, is_best=True)
    write_pointer, written = checkpoint_module.write_pointer, []

    def killed_after_one_pointer(ckpt_dir, pointer, name):
        if written:
            raise KeyboardInterrupt("killed")
        write_pointer(ckpt_dir, pointer, name)
        written.append(pointer)

    monkeypatch.setattr(checkpoint_module, "write_pointer", killed_after_one_pointer)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 2, keep_last=1, is_best=True)
    monkeypatch.undo()
    # `best` moves first: `latest` still names step 1, which a resumed run continues from, saving step 2
    # again. Had `latest` moved first, it would name step 2 (whose train state records it as the best)
    # while `best` named step 1, and the next pruning could delete step 2, the real best.
    assert written == ["best"]
    assert latest_checkpoint(tmp_path).name == "step_00000001"
    assert best_checkpoint(tmp_path).name == "step_00000002"
    assert _names(list_checkpoints(tmp_path)) == ["step_00000001", "step_00000002"]


def test_pruning_keeps_the_newest_and_the_best(tmp_path):
    for step in range(1, 6):
        _save(tmp_path, step * 10, keep_last=2, is_best=step == 2)
    assert _names(list_checkpoints(tmp_path)) == ["step_00000020", "step_00000040", "step_00000050"]
    assert best_checkpoint(tmp_path).name == "step_00000020"
    assert latest_checkpoint(tmp_path).name == "step_00000050"


def test_saving_an_earlier_step_keeps_the_folder_latest_names(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step, keep_last=1)
    _save(tmp_path, 2, keep_last=1)  # resumed from an older checkpoint given explicitly
    assert latest_checkpoint(tmp_path).name == "step_00000002"
    assert _names(list_checkpoints(tmp_path)) == ["step_00000002", "step_00000003"]


def test_resaving_an_existing_step_replaces_it(tmp_path):
    model, _, train_state = _trained()
    save_checkpoint(tmp_path, 5, model, train_state, CONFIG)
    with torch.no_grad():
        model.mix.weight.add_(1.0)
    folder = save_checkpoint(tmp_path, 5, model, {**train_state, "step": 99}, CONFIG)
    assert _names(list_checkpoints(tmp_path)) == ["step_00000005"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["latest", "step_00000005"]
    restored = TiedNet()
    load_model_weights(restored, folder)
    assert torch.equal(restored.mix.weight, model.mix.weight)
    assert load_train_state(folder)["step"] == 99


def test_failed_replace_keeps_the_old_folder_of_that_step(tmp_path, monkeypatch):
    model, _, train_state = _trained()
    folder = save_checkpoint(tmp_path, 5, model, train_state, CONFIG)
    rename = os.rename

    def failing_rename(source, target):
        if Path(source).name == f"step_00000005.tmp-{os.getpid()}":  # the new folder, not the old one
            raise OSError("rename failed")
        rename(source, target)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="rename failed"):
        save_checkpoint(tmp_path, 5, TiedNet(), {"step": 99}, CONFIG)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["latest", "step_00000005"]
    assert load_train_state(tmp_path)["step"] == 1
    restored = TiedNet()
    load_model_weights(restored, tmp_path)
    assert torch.equal(restored.mix.weight, model.mix.weight)


def test_stale_tmp_folder_is_ignored_then_removed(tmp_path):
    first = _save(tmp_path, 1)
    checkpoints = tmp_path / "checkpoints"
    stale = checkpoints / "step_00000009.tmp-424242"
    shutil.copytree(first, stale)  # a killed writer that got as far as writing every file
    (checkpoints / "latest").unlink()
    assert _names(list_checkpoints(tmp_path)) == ["step_00000001"]
    assert latest_checkpoint(tmp_path) == first
    _save(tmp_path, 2)
    assert not stale.exists()
    assert _names(list_checkpoints(tmp_path)) == ["step_00000001", "step_00000002"]


def test_failed_write_leaves_latest_untouched(tmp_path, monkeypatch):
    first = _save(tmp_path, 1)

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        _save(tmp_path, 2)
    assert sorted(p.name for p in first.parent.iterdir()) == ["latest", "step_00000001"]
    assert latest_checkpoint(tmp_path) == first


def test_latest_naming_a_deleted_folder_falls_back_with_a_warning(tmp_path, caplog):
    _save(tmp_path, 1)
    second = _save(tmp_path, 2)
    shutil.rmtree(second)
    with caplog.at_level(logging.WARNING, logger="infomug.train.checkpoint"):
        assert latest_checkpoint(tmp_path).name == "step_00000001"
        assert resolve_checkpoint(tmp_path).name == "step_00000001"
    assert "step_00000002, which is missing" in caplog.text
    assert "falling back" in caplog.text


def test_missing_latest_falls_back_with_a_warning(tmp_path, caplog):
    _save(tmp_path, 1)
    _save(tmp_path, 2)
    (tmp_path / "checkpoints" / "latest").unlink()
    with caplog.at_level(logging.WARNING, logger="infomug.train.checkpoint"):
        assert latest_checkpoint(tmp_path).name == "step_00000002"
    assert "latest does not exist; falling back" in caplog.text


def test_resolve_checkpoint_accepts_every_form(tmp_path):
    folder = _save(tmp_path, 7)
    for form in (folder, folder / "model.safetensors", folder / "train_state.pt", folder.parent, tmp_path):
        assert resolve_checkpoint(form) == folder
        assert resolve_checkpoint(str(form)) == folder
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        resolve_checkpoint(tmp_path / "nope")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint in .*empty_run"):
        resolve_checkpoint(empty)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        resolve_checkpoint(tmp_path / "checkpoints" / "latest")


def test_extra_files_are_copied(tmp_path):
    tokenizer = tmp_path / "tok.json"
    tokenizer.write_text('{"vocab": ["a", "b"]}')
    folder = _save(tmp_path / "run", 1, extra_files={"tokenizer.json": tokenizer})
    assert (folder / "tokenizer.json").read_text() == tokenizer.read_text()


@pytest.mark.parametrize("damage", ["cut_in_half", "garbage"])
def test_corrupt_model_file(tmp_path, damage):
    folder = _save(tmp_path, 1)
    file = folder / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2] if damage == "cut_in_half" else os.urandom(len(data)))
    with pytest.raises(CheckpointError, match=r"model\.safetensors is truncated or corrupt"):
        read_checkpoint_info(folder)
    with pytest.raises(CheckpointError, match=r"model\.safetensors is truncated or corrupt"):
        load_model_weights(TiedNet(), folder)


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}])
def test_foreign_safetensors_is_refused(tmp_path, metadata):
    folder = tmp_path / "export"
    folder.mkdir()
    # A plain state-dict export (timm and transformers write metadata {"format": "pt"}).
    state = {"mix.weight": torch.zeros(8, 8)}
    safetensors.torch.save_file(state, folder / "model.safetensors", metadata=metadata)
    with pytest.raises(CheckpointError, match="is not an infomug checkpoint"):
        read_checkpoint_info(folder / "model.safetensors")


def test_other_format_version_is_refused(tmp_path):
    folder = tmp_path / "step_00000001"
    folder.mkdir()
    metadata = {
        "format": FORMAT,
        "format_version": "2",
        "infomug_version": "9.0",
        "step": "1",
        "config": "{}",
    }
    safetensors.torch.save_model(TiedNet(), str(folder / "model.safetensors"), metadata=metadata)
    with pytest.raises(
        CheckpointError, match=r"format version 2 \(written by infomug 9\.0\).*reads version 1"
    ):
        load_model_weights(TiedNet(), folder)


def test_weights_that_do_not_fit_are_refused_and_leave_the_model_untouched(tmp_path):
    _save(tmp_path, 1)
    wider = TiedNet(dim=12)
    before = {key: value.clone() for key, value in wider.state_dict().items()}
    with pytest.raises(
        CheckpointError, match=r"shape mismatch for .*mix\.weight \(checkpoint \[8, 8\], model"
    ):
        load_model_weights(wider, tmp_path)
    with pytest.raises(CheckpointError, match="config differs from the model's"):
        load_model_weights(wider, tmp_path, strict=False)
    for key, value in wider.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_non_strict_load_allows_missing_keys(tmp_path):
    model, _, train_state = _trained()
    save_checkpoint(tmp_path, 1, model, train_state, CONFIG)
    larger = TiedNet(extra=True)
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: extra\.weight, extra\.bias"):
        load_model_weights(larger, tmp_path)
    load_model_weights(larger, tmp_path, strict=False)
    assert torch.equal(larger.mix.weight, model.mix.weight)


@pytest.mark.parametrize("damage", ["cut_in_half", "garbage"])
def test_corrupt_train_state(tmp_path, damage):
    folder = _save(tmp_path, 1)
    file = folder / "train_state.pt"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2] if damage == "cut_in_half" else os.urandom(len(data)))
    with pytest.raises(CheckpointError, match=r"train_state\.pt is truncated or corrupt"):
        load_train_state(folder)


@pytest.mark.parametrize("payload", ["runs_code", "custom_class"])
def test_train_state_with_code_is_refused_not_run(tmp_path, payload):
    folder = _save(tmp_path, 1)
    marker = tmp_path / "pwned"
    evil = {"optimizer": RunsCode(marker) if payload == "runs_code" else Custom(), "step": 1}
    torch.save(evil, folder / "train_state.pt")
    write_checksums(folder, read_checksums(folder))  # forged whole: the unpickler is what must refuse it
    with pytest.raises(CheckpointError, match="refused .*objects other than tensors.*would execute code"):
        load_train_state(folder)
    assert not marker.exists()


def test_missing_files(tmp_path):
    folder = _save(tmp_path, 1)
    (folder / "train_state.pt").unlink()
    with pytest.raises(CheckpointError, match=r"has no train_state\.pt"):
        load_train_state(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"has no model\.safetensors"):
        read_checkpoint_info(folder)
    with pytest.raises(CheckpointError, match=r"has no model\.safetensors"):
        load_model_weights(TiedNet(), folder)
    assert list_checkpoints(tmp_path) == []


def test_save_refuses_bad_arguments_before_writing(tmp_path):
    model, _, train_state = _trained()
    with pytest.raises(TypeError, match=r"train_state\['rng'\]\['numpy'\] is a numpy\.ndarray"):
        save_checkpoint(tmp_path, 1, model, {"rng": {"numpy": np.zeros(3)}}, CONFIG)
    with pytest.raises(TypeError, match="config must be JSON-serialisable"):
        save_checkpoint(tmp_path, 1, model, train_state, {"path": Path("/x")})
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        save_checkpoint(tmp_path, -1, model, train_state, CONFIG)
    with pytest.raises(ValueError, match="keep_last must be an integer >= 1"):
        save_checkpoint(tmp_path, 1, model, train_state, CONFIG, keep_last=0)
    with pytest.raises(FileNotFoundError, match="no such file"):
        save_checkpoint(tmp_path, 1, model, train_state, CONFIG, extra_files={"tok.json": tmp_path / "nope"})
    with pytest.raises(ValueError, match="plain file name"):
        save_checkpoint(tmp_path, 1, model, train_state, CONFIG, extra_files={"../tok.json": __file__})
    assert not (tmp_path / "checkpoints").exists()
