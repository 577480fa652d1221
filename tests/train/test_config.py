"""RunConfig: YAML and dotted overrides, strict keys and types by dotted path, presets, ready configs."""

import json
import os
from pathlib import Path

import pytest
import yaml

from infomug.data.build import DataConfig
from infomug.data.world import WorldConfig
from infomug.models import ModelConfig, get_config
from infomug.train.config import (
    OptimConfig,
    RunConfig,
    TokenizerConfig,
    TrainConfig,
    apply_overrides,
    config_diff,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
# Run configs; the sweep files beside them (ablation_*.yaml) are tested in tests/ablation.
RUN_CONFIGS = sorted(path for path in CONFIGS.glob("*.yaml") if not path.name.startswith("ablation_"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_round_trip_through_plain_json_types():
    config = RunConfig()
    values = config_to_dict(config)
    assert json.loads(json.dumps(values)) == values  # plain types only: tuples became lists
    assert values["optim"]["betas"] == [0.9, 0.95]
    assert "preset" not in values["model"] and set(values["model"]) == set(ModelConfig().to_dict())
    assert config_from_dict(values) == config
    assert config_from_dict(None) == config == config_from_dict({})
    assert config_from_dict({"optim": None, "data": {"world": None}}) == config


def test_non_default_config_round_trips():
    config = config_from_dict(
        {
            "model": {"preset": "clip_vit_tiny_patch8_64", "depth": 2},
            "data": {
                "image_size": 64,
                "crop_scale": [0.3, 1],
                "label_keys": ["a", "b"],
                "world": {"image_size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]},
            },
            "optim": {"grad_clip_norm": 1.0, "betas": [0.8, 0.9]},
            "train": {"gradient_checkpointing": True},
        }
    )
    assert config.data.crop_scale == (0.3, 1.0) and isinstance(config.data.crop_scale[1], float)
    assert config.data.world.mean == (0.5, 0.5, 0.5)
    assert config_from_dict(config_to_dict(config)) == config


def test_yaml_file_plus_overrides(tmp_path):
    path = write(
        tmp_path,
        "optim:\n  lr: 3e-4\ntrain:\n  steps: 500\n  batch_size: 32\ndata:\n  world:\n    size: 1000\n",
    )
    config = load_config(
        path,
        [
            "train.steps=200",
            "train.device=cpu",
            "optim.grad_clip_norm=1",
            "data.crop_scale=[0.2, 1.0]",
            "data.world.mention_probabilities={shape: 0.5}",
            "tokenizer.path=null",
        ],
    )
    assert config.optim.lr == 3e-4 and isinstance(config.optim.lr, float)  # file value kept
    assert config.train.steps == 200 and config.train.batch_size == 32 and config.train.device == "cpu"
    assert config.optim.grad_clip_norm == 1.0 and isinstance(config.optim.grad_clip_norm, float)
    assert config.data.crop_scale == (0.2, 1.0)
    assert config.data.world.size == 1000 and config.data.world.mention_probabilities["shape"] == 0.5
    assert config.data.world.mention_probabilities["colour"] == 0.8  # WorldConfig fills the others
    assert load_config(None, ["optim.lr=1e-4"]).optim.lr == 1e-4


def test_yaml_exponent_strings_become_floats():
    # PyYAML (YAML 1.1) reads `3e-4` as the string "3e-4"; the loader must still see a float.
    assert yaml.safe_load("lr: 3e-4")["lr"] == "3e-4"
    config = config_from_dict({"optim": {"lr": "3e-4", "eps": "1e-6"}, "model": {"temperature": "5e-2"}})
    assert config.optim.lr == 3e-4 and config.optim.eps == 1e-6 and config.model.temperature == 0.05
    with pytest.raises(ValueError, match="optim.lr must be float, got str 'fast'"):
        config_from_dict({"optim": {"lr": "fast"}})
    with pytest.raises(ValueError, match="optim.lr must be a finite float"):
        config_from_dict({"optim": {"lr": "inf"}})


@pytest.mark.parametrize(
    "values, path, known",
    [
        ({"optimizer": {}}, "'optimizer'", "model, data, tokenizer, optim, train"),
        ({"optim": {"learning_rate": 1e-3}}, "'optim.learning_rate'", "lr, min_lr"),
        ({"data": {"world": {"sizes": 10}}}, "'data.world.sizes'", "seed, size, eval_size"),
        ({"model": {"embed_dims": 64}}, "'model.embed_dims'", "preset, objective, img_size"),
        ({"model": {"preset": "mae_vit_tiny_patch4_32", "dpeth": 2}}, "'model.dpeth'", "preset"),
    ],
)
def test_unknown_keys_are_named_by_dotted_path_with_the_known_keys(values, path, known):
    with pytest.raises(ValueError, match="unknown config key") as error:
        config_from_dict(values)
    assert path in str(error.value) and known in str(error.value)


def test_an_unknown_key_from_an_override_reads_like_one_from_a_file(tmp_path):
    with pytest.raises(ValueError) as from_override:
        load_config(None, ["train.stpes=5"])
    with pytest.raises(ValueError) as from_file:
        load_config(write(tmp_path, "train:\n  stpes: 5\n"))
    assert str(from_override.value) == str(from_file.value)
    assert "'train.stpes'" in str(from_file.value)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"train": {"steps": "100"}}, "train.steps must be int, got str '100'"),
        ({"train": {"steps": True}}, "train.steps must be int, got bool True"),
        ({"train": {"batch_size": 64.0}}, "train.batch_size must be int, got float 64.0"),
        ({"train": {"device": ["cpu"]}}, r"train.device must be str, got list \['cpu'\]"),
        ({"train": {"gradient_checkpointing": 1}}, "train.gradient_checkpointing must be bool, got int 1"),
        ({"optim": {"lr": True}}, "optim.lr must be float, got bool True"),
        ({"optim": {"betas": 0.9}}, r"optim.betas must be tuple\[float, float\], got float 0.9"),
        ({"optim": {"betas": [0.9, "x"]}}, r"optim.betas\[1\] must be float"),
        ({"data": {"label_keys": "digit"}}, r"data.label_keys must be list\[str\]"),
        ({"data": {"label_keys": ["a", 3]}}, r"data.label_keys\[1\] must be str, got int 3"),
        ({"data": {"world": {"mention_probabilities": {"shape": "high"}}}}, "mention_probabilities.shape"),
        ({"data": {"world": {"size": 1.5}}}, "data.world.size must be int"),
        ({"data": {"world": 3}}, "data.world must be a mapping of WorldConfig keys, got int 3"),
        ({"model": {"depth": 2.0}}, "model.depth must be int, got float 2.0"),
        ({"model": {"preset": 3}}, "model.preset must be str"),
        ({"tokenizer": {"name": None}}, "tokenizer.name must be str, got NoneType None"),
        ({"optim": 5}, "optim must be a mapping"),
    ],
)
def test_wrong_types_name_path_expected_type_and_value(values, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(values)


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ValueError, match="the config must be a mapping"):
        config_from_dict(["optim"])
    with pytest.raises(ValueError, match=r"run.yaml: the top level must be a mapping .* got list"):
        load_config(write(tmp_path, "- optim\n- train\n"))


@pytest.mark.parametrize(
    "betas, message", [([0.9], "must have 2 elements"), ([0.9, 0.95, 0.99], "got 3"), ([0.9, 1.0], "[0, 1)")]
)
def test_tuple_length_and_range(betas, message):
    with pytest.raises(ValueError, match=f"optim.*{message}".replace("[", r"\[").replace(")", r"\)")):
        config_from_dict({"optim": {"betas": betas}})


def test_data_crop_scale_and_world_mean_lengths_are_checked():
    with pytest.raises(ValueError, match="data.crop_scale must have 2 elements"):
        config_from_dict({"data": {"crop_scale": [0.2]}})
    with pytest.raises(ValueError, match="data.world.mean must have 3 elements"):
        config_from_dict({"data": {"world": {"mean": [0.5, 0.5]}}})


def test_preset_resolution_with_overrides():
    config = load_config(
        None,
        [
            "model.preset=mae_vit_tiny_patch8_64",
            "model.mask_ratio=0.5",
            "data.image_size=64",
            "data.world.image_size=64",
        ],
    )
    assert config.model == get_config("mae_vit_tiny_patch8_64", mask_ratio=0.5)
    assert config.model.objective == "mae" and config.model.img_size == 64 and config.model.patch_size == 8
    resolved = config_to_dict(config)
    assert "preset" not in resolved["model"] and resolved["model"]["mask_ratio"] == 0.5
    assert config_from_dict(resolved) == config
    # Without a preset the model section is plain ModelConfig fields over its defaults.
    assert config_from_dict({"model": {"objective": "clip"}}).model == ModelConfig(objective="clip")


def test_unknown_preset_and_invalid_model_values_are_prefixed():
    with pytest.raises(ValueError, match=r"model.preset: unknown preset 'mae_vit_huge'; known: clip_vit"):
        config_from_dict({"model": {"preset": "mae_vit_huge"}})
    with pytest.raises(ValueError, match="model: patch_size 5 does not divide img_size 32"):
        config_from_dict({"model": {"patch_size": 5}})


def test_image_size_mismatch_says_what_to_set():
    with pytest.raises(ValueError) as error:
        load_config(None, ["model.preset=mug_vit_tiny_patch8_64"])
    message = str(error.value)
    for part in (
        "data.image_size=32",
        "model.img_size=64",
        "set data.image_size=64",
        "data.world.image_size=64",
    ):
        assert part in message
    with pytest.raises(ValueError, match=r"set data.image_size=64 \(and data.digits.image_size=64\)"):
        load_config(None, ["model.img_size=64", "data.source=digits"])
    with pytest.raises(ValueError, match=r"set data.image_size=64$"):
        load_config(None, ["model.img_size=64", "data.source=csv", "data.path=pairs.csv"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=0", "optim: lr must be > 0"),
        ("optim.min_lr=0.01", r"optim: min_lr must be in \[0, lr=0.001\]"),
        ("optim.weight_decay=-0.1", "optim: weight_decay must be >= 0"),
        ("optim.eps=0", "optim: eps must be > 0"),
        ("optim.warmup_steps=-1", "optim: warmup_steps must be >= 0"),
        ("optim.grad_clip_norm=0", "optim: grad_clip_norm must be > 0 or null"),
        ("optim.warmup_steps=1000", "optim.warmup_steps=1000 must be < train.steps=1000"),
        ("train.accumulation_steps=5", "train: batch_size 64 must be divisible by accumulation_steps 5"),
        ("train.steps=0", "train: steps must be >= 1"),
        ("train.log_every=0", "train: log_every must be >= 1"),
        ("train.eval_every=-1", "train: eval_every must be >= 0"),
        ("train.num_workers=-1", "train: num_workers must be >= 0"),
        ("train.eval_batches=0", "train: eval_batches must be >= 1"),
        ("train.keep_checkpoints=0", "train: keep_checkpoints must be >= 1"),
        ("train.device=tpu", "train: device must be one of"),
        ("train.precision=fp16", "train: precision must be one of"),
        ("tokenizer.name=sentencepiece", "tokenizer: name must be one of"),
        ("tokenizer.train_captions=0", "tokenizer: train_captions must be >= 1"),
        ("tokenizer.name=clip", "tokenizer.name='clip' needs model.vocab_size >= 49408, got 512"),
        ("data.world.size=0", "data.world: size and eval_size must be >= 1"),
        ("data.source=webdataset", "data: data source 'webdataset' needs `path`"),
    ],
)
def test_invalid_values_are_named_with_their_section(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_zero_intervals_are_allowed_and_tokenizer_auto_resolves():
    config = load_config(None, ["train.eval_every=0", "train.sample_every=0", "train.checkpoint_every=0"])
    assert config.train.eval_every == config.train.sample_every == config.train.checkpoint_every == 0
    assert TokenizerConfig().resolve(512) == "bpe" and TokenizerConfig().resolve(49408) == "clip"
    assert TokenizerConfig(name="byte").resolve(49408) == "byte"
    with pytest.raises(ValueError, match="path is only read by the 'bpe' tokenizer"):
        TokenizerConfig(name="byte", path="tok.json")


def test_dataclasses_validate_when_built_directly():
    assert OptimConfig(betas=[0.5, 0.6]).betas == (0.5, 0.6)
    with pytest.raises(ValueError, match="batch_size 10 must be divisible by accumulation_steps 4"):
        TrainConfig(batch_size=10, accumulation_steps=4)
    with pytest.raises(ValueError, match="model.img_size=64"):
        RunConfig(model=ModelConfig(img_size=64, patch_size=8), data=DataConfig(world=WorldConfig()))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("optim.lr=3e-4", ("optim.lr", "3e-4")),
        ("train.gradient_checkpointing=true", ("train.gradient_checkpointing", True)),
        ("optim.grad_clip_norm=null", ("optim.grad_clip_norm", None)),
        ("optim.grad_clip_norm=", ("optim.grad_clip_norm", None)),
        ("data.crop_scale=[0.2, 1.0]", ("data.crop_scale", [0.2, 1.0])),
        (
            "data.world.mention_probabilities={shape: 0.5}",
            ("data.world.mention_probabilities", {"shape": 0.5}),
        ),
        (" train.steps = 20", ("train.steps", 20)),
        ("data.csv_separator=a=b", ("data.csv_separator", "a=b")),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("optim.lr", "no '='"),
        ("=3", "empty key"),
        ("optim..lr=3", "empty key"),
        ("optim.lr=[1, 2", "not valid YAML"),
    ],
)
def test_bad_overrides(text, message):
    with pytest.raises(ValueError, match=message):
        parse_override(text)


def test_apply_overrides_copies_and_creates_sections():
    values = {"optim": {"lr": 1.0}, "train": None}
    result = apply_overrides(values, ["optim.eps=1.0e-6", "train.steps=5", "data.world.seed=3"])
    assert result == {
        "optim": {"lr": 1.0, "eps": 1e-6},
        "train": {"steps": 5},
        "data": {"world": {"seed": 3}},
    }
    assert values == {"optim": {"lr": 1.0}, "train": None}  # the input is not modified
    with pytest.raises(ValueError, match="optim.lr is float 1.0, not a section"):
        apply_overrides(values, ["optim.lr.peak=2"])


def test_load_config_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match=r"run.yaml: YAML syntax error at line 3, column 8: mapping values"):
        load_config(write(tmp_path, "optim:\n  lr: 1.0e-3\n    eps: 2\n"))
    assert load_config(write(tmp_path, "# nothing but a comment\n")) == RunConfig()


def test_config_diff():
    base = RunConfig()
    other = load_config(
        None, ["optim.lr=3e-4", "data.world.mention_probabilities={shape: 0.1}", "train.seed=1"]
    )
    assert config_diff(base, base) == []
    assert config_diff(base, other) == [
        "data.world.mention_probabilities.shape",
        "optim.lr",
        "train.seed",
    ]
    assert config_diff(other, base) == config_diff(base, other)
    assert config_diff(base, load_config(None, ["optim.betas=[0.9, 0.99]"])) == ["optim.betas"]


def test_save_and_load_round_trip(tmp_path):
    config = load_config(
        CONFIGS / "simclr_vitb.yaml",
        ["optim.grad_clip_norm=1.5", "data.label_keys=[digit]", "optim.eps=1e-9"],
    )
    path = tmp_path / "run" / "config.yaml"
    save_config(config, path)
    assert load_config(path) == config
    assert "preset" not in path.read_text() and "model:\n  objective: simclr" in path.read_text()
    assert list(yaml.safe_load(path.read_text())) == ["model", "data", "tokenizer", "optim", "train"]
    save_config(RunConfig(), path)  # replaces the file in place, leaving no temporary behind
    assert load_config(path) == RunConfig()
    assert os.listdir(path.parent) == ["config.yaml"]


def test_save_config_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    save_config(RunConfig(), path)

    def broken_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_config(load_config(None, ["train.seed=7"]), path)
    assert load_config(path) == RunConfig() and os.listdir(tmp_path) == ["config.yaml"]


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda path: path.name)
def test_every_ready_config_loads(path):
    config = load_config(path)
    objective = path.name.split("_")[0]
    assert config.model.objective == objective
    if path.name.endswith("_vitb.yaml"):
        assert config.model == get_config(f"{objective}_vit_base_patch16_224")
        assert config.data.source == "webdataset" and config.data.image_size == 224
        assert config.tokenizer.resolve(config.model.vocab_size) == "clip"
        assert config.optim.lr == 2.4e-3 and config.optim.warmup_steps == 12500
        assert config.train.steps == 100000 and config.train.batch_size == 4096
        assert config.train.device == "cuda" and config.train.precision == "bf16"
    else:
        assert config.model == get_config(f"{objective}_vit_tiny_patch4_32")
        # The CPU configs are the defaults with another objective; SimCLR also reads with one loader
        # worker (its two augmented views are the slow part of its data; experiments/results/train.md).
        expected = {"mug": [], "simclr": ["model.objective", "train.num_workers"]}
        assert config_diff(config, RunConfig()) == expected.get(objective, ["model.objective"])


def test_the_ready_configs_cover_every_objective_at_both_scales():
    names = {path.name for path in RUN_CONFIGS}
    assert names == {f"{o}_{s}.yaml" for o in ("mae", "mug", "clip", "simclr") for s in ("cpu", "vitb")}


def test_mug_cpu_is_the_default_config():
    assert load_config(CONFIGS / "mug_cpu.yaml") == RunConfig()
