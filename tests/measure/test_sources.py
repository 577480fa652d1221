"""Loading what is measured: checkpoints in every path form, timm models with local weights, any module,
and the random-init anchor."""

import hashlib
import json
import shutil

import pytest
import safetensors.torch
import torch
from torch import nn

from infomug.data import DataConfig
from infomug.measure.sources import (
    data_config_of,
    fixed_input_size,
    from_module,
    load_checkpoint,
    load_model,
    load_timm,
    module_fingerprint,
    random_init_like,
)
from infomug.models import save_timm_encoder
from infomug.models.encoder import MaskedViTEncoder
from infomug.train import CheckpointError, latest_checkpoint, read_checkpoint_info

TINY_VIT = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=0)


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in module.state_dict().items()}


def test_every_path_form_loads_the_same_checkpoint(tiny_checkpoint, tmp_path):
    step_dir = latest_checkpoint(tiny_checkpoint)
    forms = [tiny_checkpoint, tiny_checkpoint / "checkpoints", step_dir, step_dir / "model.safetensors"]
    loaded = [load_checkpoint(form) for form in forms]
    stored = safetensors.torch.load_file(step_dir / "model.safetensors")
    raw = (step_dir / "model.safetensors").read_bytes()
    length = int.from_bytes(raw[:8], "little")
    canonical_header = json.dumps(json.loads(raw[8 : 8 + length]), sort_keys=True).encode()
    expected_fingerprint = hashlib.sha256(canonical_header + raw[8 + length :]).hexdigest()[:16]
    for model in loaded:
        assert model.step == 4
        assert model.objective_name == "mug"
        assert model.source == str(step_dir.resolve())
        assert model.name == f"{tiny_checkpoint.name}@step 4"
        assert model.fingerprint == expected_fingerprint
        assert model.run_config == read_checkpoint_info(step_dir).config
        assert model.encoder is model.objective.encoder
        assert not model.objective.training and not model.encoder.training
        for key, value in model.objective.state_dict().items():
            if key in stored:
                assert torch.equal(value, stored[key]), key
        # The run's own trained BPE, not a new one: every caption of its world encodes within the vocab.
        ids = model.tokenizer.encode("a red circle in the top left")
        assert ids and max(ids) < model.run_config["model"]["vocab_size"]
    assert load_checkpoint(step_dir, name="mine").name == "mine"
    elsewhere = shutil.copytree(step_dir, tmp_path / "exported")  # a step folder outside a run
    moved = load_checkpoint(elsewhere / "model.safetensors")
    assert (moved.name, moved.fingerprint) == ("exported@step 4", expected_fingerprint)


def test_loading_a_checkpoint_leaves_the_global_rng_alone(tiny_checkpoint):
    before = torch.get_rng_state()
    load_checkpoint(tiny_checkpoint)
    assert torch.equal(torch.get_rng_state(), before)


def test_missing_truncated_and_foreign_checkpoints_give_clear_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nowhere")

    truncated = tmp_path / "truncated" / "step_00000004"
    shutil.copytree(latest_checkpoint(tiny_checkpoint), truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(truncated)

    foreign = tmp_path / "foreign" / "model.safetensors"
    foreign.parent.mkdir()
    safetensors.torch.save_file({"weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(CheckpointError, match="not an infomug checkpoint"):
        load_checkpoint(foreign)
    assert issubclass(CheckpointError, ValueError)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_load_timm_round_trips_a_saved_state_dict(tmp_path, suffix):
    torch.manual_seed(0)
    original = load_timm("vit_tiny_patch16_224", **TINY_VIT).encoder
    weights = tmp_path / f"vit{suffix}"
    if suffix == ".safetensors":
        safetensors.torch.save_file(original.state_dict(), weights)
    else:
        torch.save({"model": original.state_dict()}, weights)  # MAE-style nesting is unwrapped

    loaded = load_timm("vit_tiny_patch16_224", weights=weights, **TINY_VIT)
    assert loaded.source == "timm:vit_tiny_patch16_224"
    assert loaded.objective is None and loaded.run_config is None and loaded.step is None
    assert not loaded.encoder.training
    for key, value in original.state_dict().items():
        assert torch.equal(loaded.encoder.state_dict()[key], value), key
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encoder(images), original.eval()(images), rtol=0, atol=0)
    again = load_timm("vit_tiny_patch16_224", weights=weights, **TINY_VIT)
    assert again.fingerprint == loaded.fingerprint
    assert data_config_of(loaded) is None


def test_load_timm_refuses_downloads_and_weights_that_do_not_fit(tmp_path):
    with pytest.raises(ValueError, match="never downloads"):
        load_timm("vit_tiny_patch16_224", pretrained=True, **TINY_VIT)
    # A ValueError (the CLI's clear error), not timm's RuntimeError.
    with pytest.raises(ValueError, match="timm has no model named 'vit_nonexistent'"):
        load_timm("vit_nonexistent")
    weights = tmp_path / "vit.safetensors"
    safetensors.torch.save_file(load_timm("vit_tiny_patch16_224", **TINY_VIT).encoder.state_dict(), weights)
    wider = {**TINY_VIT, "embed_dim": 64}
    with pytest.raises(
        ValueError, match=r"shape mismatch: .*cls_token \(file \[1, 1, 32\], model \[1, 1, 64\]\)"
    ):
        load_timm("vit_tiny_patch16_224", weights=weights, **wider)
    deeper = {**TINY_VIT, "depth": 3}
    with pytest.raises(ValueError, match=r"missing from the file: blocks\.2\."):
        load_timm("vit_tiny_patch16_224", weights=weights, **deeper)
    with pytest.raises(FileNotFoundError):
        load_timm("vit_tiny_patch16_224", weights=tmp_path / "absent.pth", **TINY_VIT)
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ValueError, match=r"\.safetensors, \.pt"):
        load_timm("vit_tiny_patch16_224", weights=tmp_path / "weights.txt", **TINY_VIT)


def test_an_infomug_export_loads_by_its_config_in_every_spec_form(tmp_path):
    torch.manual_seed(0)
    encoder = MaskedViTEncoder(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2).eval()
    folder = tmp_path / "export"
    weights = save_timm_encoder(encoder, folder, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    specs = [
        f"timm:{folder}",
        f"timm:local-dir:{folder}",  # timm's own spelling
        f"timm:{folder / 'config.json'}",
        f"timm:{weights}",
        f"timm:vit_base_patch16_224:{weights}",  # no shape mismatch: the config gives img_size, width...
    ]
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = encoder.forward_features(images)
        loaded = [load_model(spec) for spec in specs]
        for model in loaded:
            assert model.name == "vit_base_patch16_224 (export/model.safetensors)"
            assert fixed_input_size(model.encoder) == 16
            assert torch.equal(model.encoder.forward_features(images), expected)
    assert len({model.fingerprint for model in loaded}) == 1
    fresh = random_init_like(loaded[0])
    assert fixed_input_size(fresh.encoder) == 16 and fresh.fingerprint != loaded[0].fingerprint
    with pytest.raises(ValueError, match="describes a vit_base_patch16_224, not a vit_small_patch16_224"):
        load_model(f"timm:vit_small_patch16_224:{weights}")
    alone = tmp_path / "alone.safetensors"
    safetensors.torch.save_file(encoder.vit.state_dict(), alone)
    with pytest.raises(ValueError, match="name its architecture"):
        load_model(f"timm:{alone}")


def test_from_module_fingerprint_follows_the_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    first = from_module(net, name="mlp")
    assert (first.name, first.source, first.objective, first.step) == ("mlp", "module", None, None)
    assert from_module(net).fingerprint == first.fingerprint
    assert len(first.fingerprint) == 16 and int(first.fingerprint, 16) >= 0
    with torch.no_grad():
        net[0].weight[0, 0] += 1e-3
    assert from_module(net).fingerprint != first.fingerprint
    # Same bytes under another dtype or name are other weights.
    assert module_fingerprint(net.double()) != module_fingerprint(net.float())


def _differs_everywhere_but_fixed(original: nn.Module, fresh: nn.Module, fixed: set[str]) -> None:
    old, new = original.state_dict(), fresh.state_dict()
    assert old.keys() == new.keys()
    for key in old:
        assert old[key].shape == new[key].shape, key
        if key in fixed:
            assert torch.equal(old[key], new[key]), key
        elif old[key].numel() > 1 and old[key].dtype.is_floating_point and old[key].std() > 0:
            assert not torch.equal(old[key], new[key]), key


def test_random_init_of_a_checkpoint_keeps_the_architecture_and_the_global_rng(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint)
    before = _state(model.objective)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    fresh = random_init_like(model, seed=1)
    assert torch.equal(torch.get_rng_state(), rng)
    assert fresh.name == f"{model.name} (random init)"
    assert (fresh.objective_name, fresh.step, fresh.run_config) == ("mug", 4, model.run_config)
    assert isinstance(fresh.encoder, MaskedViTEncoder) and not fresh.encoder.training
    # The sine-cosine positions are fixed, not learnt: they are the same in both.
    _differs_everywhere_but_fixed(
        model.objective, fresh.objective, {"encoder.vit.pos_embed", "decoder.pos_embed"}
    )
    for key, value in model.objective.state_dict().items():
        assert torch.equal(value, before[key])  # the trained model is untouched
    assert fresh.fingerprint != model.fingerprint
    assert random_init_like(model, seed=1).fingerprint == fresh.fingerprint
    assert random_init_like(model, seed=2).fingerprint != fresh.fingerprint


def test_random_init_of_timm_and_plain_modules():
    trained = load_timm("vit_tiny_patch16_224", **TINY_VIT)
    fresh = random_init_like(trained, seed=0)
    assert fresh.timm_kwargs == trained.timm_kwargs and fresh.source == trained.source
    _differs_everywhere_but_fixed(trained.encoder, fresh.encoder, set())

    class WithRawParameter(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 3)
            self.norm = nn.LayerNorm(3)
            self.scale = nn.Parameter(torch.full((3,), 5.0))

    module = WithRawParameter()
    with torch.no_grad():
        module.norm.weight.fill_(7.0)
    fresh = random_init_like(from_module(module), seed=0)
    assert torch.equal(fresh.encoder.norm.weight, torch.ones(3))  # LayerNorm.reset_parameters
    assert fresh.encoder.scale.abs().max() < 0.2  # no initialiser: N(0, 0.02^2), not the trained 5.0
    assert torch.equal(module.norm.weight, torch.full((3,), 7.0))


def test_load_model_specs_and_data_config(tiny_checkpoint):
    model = load_model(str(tiny_checkpoint))
    assert model.objective_name == "mug"
    config = data_config_of(model)
    assert isinstance(config, DataConfig)
    assert (config.source, config.image_size, config.world.eval_size) == ("world", 16, 256)
    torch.manual_seed(5)
    rng = torch.get_rng_state()
    timm_model = load_model("timm:vit_tiny_patch16_224")
    assert timm_model.source == "timm:vit_tiny_patch16_224" and len(timm_model.encoder.blocks) == 12
    assert timm_model.name == "vit_tiny_patch16_224 (random init, no weights)"  # not read as pretrained
    # No weights: a seeded random init, the same on every call (so the cache and the numbers repeat),
    # drawn without touching the caller's RNG.
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(6)
    assert load_model("timm:vit_tiny_patch16_224").fingerprint == timm_model.fingerprint
    with pytest.raises(ValueError, match="names no timm architecture"):
        load_model("timm:")


def test_fixed_input_size(tiny_checkpoint):
    assert fixed_input_size(load_checkpoint(tiny_checkpoint).encoder) == 16  # MaskedViTEncoder's vit
    assert fixed_input_size(load_timm("vit_tiny_patch16_224", **TINY_VIT).encoder) == 32
    dynamic = load_timm("vit_tiny_patch16_224", dynamic_img_size=True, **TINY_VIT).encoder
    assert fixed_input_size(dynamic) is None
    assert fixed_input_size(nn.Sequential(nn.Flatten(), nn.Linear(3, 2))) is None


def test_checkpoint_fingerprint_ignores_the_order_of_safetensors_metadata(tmp_path):
    from infomug.measure.sources import _file_fingerprint

    weights = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4)}
    first, second, other = tmp_path / "1.safetensors", tmp_path / "2.safetensors", tmp_path / "3.safetensors"
    safetensors.torch.save_file(weights, first, metadata={"x": "1", "y": "2", "z": "3"})
    safetensors.torch.save_file(
        {**weights, "b": torch.zeros(4)}, other, metadata={"x": "1", "y": "2", "z": "3"}
    )
    # The same file with its header's metadata in another order (safetensors writes a hash map's order).
    raw = first.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + length])
    metadata = header.pop("__metadata__")
    reordered = {"__metadata__": dict(reversed(list(metadata.items()))), **header}
    text = json.dumps(reordered, separators=(",", ":")).encode().ljust(length)
    assert len(text) == length and text != raw[8 : 8 + length]
    second.write_bytes(raw[:8] + text + raw[8 + length :])
    assert safetensors.torch.load_file(second)["a"].equal(weights["a"])
    assert _file_fingerprint(first) == _file_fingerprint(second)
    assert _file_fingerprint(first) != _file_fingerprint(other)
    truncated = tmp_path / "4.safetensors"
    truncated.write_bytes(raw[:5])
    assert len(_file_fingerprint(truncated)) == 16


def test_a_checkpoints_tokenizer_is_its_own_verified_file(tiny_checkpoint, tmp_path):
    from infomug.train.checkpoint_folders import CheckpointError

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint, run)
    step = run / "checkpoints" / "step_00000004"
    tokenizer = step / "tokenizer.json"
    assert load_checkpoint(step).tokenizer is not None
    # A symbolic link (to anything) is refused, naming it.
    outside = tmp_path / "elsewhere.json"
    shutil.copy(tokenizer, outside)
    tokenizer.unlink()
    tokenizer.symlink_to(outside)
    with pytest.raises(CheckpointError, match="tokenizer.json is a symbolic link"):
        load_checkpoint(step)
    # A tokenizer changed after the checkpoint was written fails its checksum.
    tokenizer.unlink()
    tokenizer.write_text(outside.read_text().replace('"', ' "', 1))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(step)
