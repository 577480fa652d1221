"""Which config a run starts from: a file, overrides, the checkpoint it resumes or its folder's own config;
and what a resumed checkpoint allows to change."""

import logging

import pytest
from torch import nn

from infomug.train import config_from_files, config_to_dict, load_config, save_checkpoint, save_config
from infomug.train.resume import resolve_config


def _checkpoint(run_dir, config):
    return save_checkpoint(run_dir, 2, nn.Linear(2, 2), {"step": 2}, config_to_dict(config))


def test_overrides_apply_to_the_checkpoint_else_the_folder_config_else_the_defaults(tmp_path):
    assert config_from_files(None, [], tmp_path / "fresh") == load_config()
    assert config_from_files(None, ["optim.lr=0.5"], None).optim.lr == 0.5

    stopped = load_config(None, ["model.objective=mae", "train.steps=70"])
    save_config(stopped, tmp_path / "stopped" / "config.yaml")  # killed before its first checkpoint
    assert config_from_files(None, [], tmp_path / "stopped") == stopped
    assert config_from_files(None, ["optim.lr=0.5"], tmp_path / "stopped").train.steps == 70

    saved = load_config(None, ["model.objective=clip", "train.steps=90"])
    checkpoint = _checkpoint(tmp_path / "other", saved)
    save_config(stopped, tmp_path / "run" / "config.yaml")
    resumed = config_from_files(None, ["optim.lr=0.5"], tmp_path / "run", resume=checkpoint)
    assert resumed.model.objective == "clip" and resumed.train.steps == 90 and resumed.optim.lr == 0.5
    assert config_from_files(None, [], tmp_path / "other") == saved, "the folder's latest checkpoint"

    # A file is the base whenever it is given.
    save_config(stopped, tmp_path / "file.yaml")
    assert config_from_files(tmp_path / "file.yaml", [], tmp_path / "other") == stopped
    with pytest.raises(ValueError, match="already holds checkpoints"):
        config_from_files(None, [], tmp_path / "other", resume=False)


def test_a_named_checkpoint_may_change_the_optimiser_and_loop_settings_only(tmp_path, caplog):
    saved = load_config(None, ["train.steps=90"])
    checkpoint = _checkpoint(tmp_path / "run", saved)
    changed = load_config(None, ["train.steps=200", "optim.lr=1e-4", "train.log_every=5"])
    with caplog.at_level(logging.WARNING, logger="infomug.train.resume"):
        assert resolve_config(changed, checkpoint, tmp_path / "new", explicit=True) == changed
    assert "with changed settings: optim.lr, train.log_every, train.steps" in caplog.text

    with pytest.raises(ValueError, match=r"in: optim\.lr, train\.log_every, train\.steps\. Resuming a run"):
        resolve_config(changed, checkpoint, tmp_path / "run", explicit=False)
    for setting in ("model.depth=3", "data.world.size=100", "train.batch_size=32", "train.seed=1"):
        other = load_config(None, ["train.steps=90", setting])
        with pytest.raises(ValueError, match=rf"in: {setting.split('=')[0]}\. Only optim\.\*"):
            resolve_config(other, checkpoint, tmp_path / "new", explicit=True)
    assert resolve_config(None, checkpoint, tmp_path / "new", explicit=True) == saved
