"""Export: the encoder loads strictly into `timm.create_model` and gives identical features."""

import json

import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from infomug.models import MaskedViTEncoder, load_timm_encoder, read_timm_kwargs, save_timm_encoder


def test_timm_loads_the_export_strictly_with_identical_features(tmp_path):
    torch.manual_seed(0)
    encoder = MaskedViTEncoder(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)
    path = save_timm_encoder(encoder, tmp_path / "encoder.safetensors", extra_metadata={"step": "7"})
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["step"] == "7"
    kwargs = json.loads(metadata["timm_kwargs"])
    assert kwargs == read_timm_kwargs(path) and kwargs["num_classes"] == 0
    # The documented recipe, with no infomug code involved.
    model = timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs)
    model.load_state_dict(load_file(str(path)), strict=True)
    images = torch.randn(2, 3, 16, 16)
    encoder.eval()
    model.eval()
    assert torch.equal(model.forward_features(images), encoder.forward_features(images))
    assert torch.equal(load_timm_encoder(path).forward_features(images), encoder.forward_features(images))


def test_non_exports_are_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an infomug"):
        read_timm_kwargs(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="MaskedViTEncoder"):
        save_timm_encoder(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")
