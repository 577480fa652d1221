"""Export: the encoder loads strictly into `timm.create_model` with identical features, and its
``config.json`` gives timm's data pipeline the input size and normalisation the model was trained with."""

import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from timm.data import create_transform, resolve_data_config

from infomug.data import eval_transform
from infomug.models import (
    MaskedViTEncoder,
    find_timm_config,
    load_timm_encoder,
    read_timm_kwargs,
    save_timm_encoder,
)

MEAN, STD = (0.21, 0.32, 0.43), (0.11, 0.22, 0.33)


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return MaskedViTEncoder(
        img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0
    ).eval()


def test_timm_loads_the_export_strictly_with_identical_features(encoder, tmp_path):
    path = save_timm_encoder(
        encoder, tmp_path / "encoder.safetensors", extra_metadata={"step": "7"}, mean=MEAN, std=STD
    )
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["step"] == "7"
    kwargs = json.loads(metadata["timm_kwargs"])
    assert kwargs == read_timm_kwargs(path) and kwargs["num_classes"] == 0
    # The file alone, with no infomug code involved.
    model = timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs).eval()
    model.load_state_dict(load_file(str(path)), strict=True)
    images = torch.randn(2, 3, 16, 16)
    assert torch.equal(model.forward_features(images), encoder.forward_features(images))
    assert torch.equal(load_timm_encoder(path).forward_features(images), encoder.forward_features(images))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["infomug"]["weights"] == "encoder.safetensors" and config["infomug"]["step"] == "7"


def test_timm_data_config_from_the_export_rebuilds_the_eval_pipeline(encoder, tmp_path):
    weights = save_timm_encoder(encoder, tmp_path / "export", mean=MEAN, std=STD)
    assert weights == tmp_path / "export" / "model.safetensors"
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["architecture"] == "vit_base_patch16_224"
    assert config["model_args"]["img_size"] == 16 and config["model_args"]["patch_size"] == 4
    # What a timm user writes, from config.json alone.
    model = timm.create_model(
        config["architecture"],
        pretrained=False,
        pretrained_cfg_overlay=config["pretrained_cfg"],
        **config["model_args"],
    ).eval()
    model.load_state_dict(load_file(weights), strict=True)
    data_config = resolve_data_config(model=model)
    assert tuple(data_config["input_size"]) == (3, 16, 16)
    assert tuple(data_config["mean"]) == MEAN and tuple(data_config["std"]) == STD
    assert (data_config["interpolation"], data_config["crop_pct"]) == ("bicubic", 1.0)
    transform = create_transform(**data_config)

    pixels = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    timm_input = transform(image)
    # The same tensor as infomug's eval transform (an image already at the model's size is only
    # normalised; float32 rounding of the two normalisations aside).
    torch.testing.assert_close(timm_input, eval_transform(16, MEAN, STD)(image), rtol=0, atol=1e-6)
    with torch.no_grad():
        expected = encoder.forward_features(timm_input[None])
        assert torch.equal(model.forward_features(timm_input[None]), expected)
        # timm's own loader of a model folder: architecture, preprocessing and weights from the export.
        local = timm.create_model(f"local-dir:{tmp_path / 'export'}", pretrained=True).eval()
        assert torch.equal(local.forward_features(timm_input[None]), expected)
    assert resolve_data_config(model=local)["input_size"] == (3, 16, 16)
    # A photograph of another size comes out at the model's.
    assert create_transform(**data_config)(Image.new("RGB", (60, 40))).shape == (3, 16, 16)


def test_one_export_per_folder_and_files_without_a_config(encoder, tmp_path):
    save_timm_encoder(encoder, tmp_path / "a.safetensors", mean=MEAN, std=STD)
    save_timm_encoder(encoder, tmp_path / "a.safetensors", mean=MEAN, std=STD)  # a re-export is fine
    with pytest.raises(ValueError, match="already describes a.safetensors"):
        save_timm_encoder(encoder, tmp_path / "b.safetensors", mean=MEAN, std=STD)
    config, weights = find_timm_config(tmp_path)
    assert weights == tmp_path / "a.safetensors" and config["pretrained_cfg"]["mean"] == list(MEAN)
    assert find_timm_config(tmp_path / "config.json")[1] == weights

    alone = tmp_path / "alone"
    alone.mkdir()
    save_file(encoder.vit.state_dict(), str(alone / "w.safetensors"))
    assert find_timm_config(alone / "w.safetensors") is None
    with pytest.raises(FileNotFoundError, match="no config.json"):
        find_timm_config(alone)


def test_without_statistics_the_config_says_imagenet(encoder, tmp_path, caplog):
    save_timm_encoder(encoder, tmp_path / "export")
    config = json.loads((tmp_path / "export" / "config.json").read_text())
    assert config["pretrained_cfg"]["mean"] == [0.485, 0.456, 0.406]
    assert "ImageNet" in caplog.text


def test_non_exports_are_refused(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an infomug"):
        read_timm_kwargs(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="MaskedViTEncoder"):
        save_timm_encoder(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_args": {}}')
    with pytest.raises(ValueError, match="not a timm config"):
        find_timm_config(tmp_path / "bad")
