"""MUG with lambda_L = 0 is MAE: same init under one seed, same mask, identical loss and gradients."""

import torch

from infomug.objectives import MAEObjective, MUGObjective


def test_mug_without_caption_weight_equals_mae_exactly(tiny_config):
    torch.manual_seed(123)
    mae = MAEObjective(tiny_config.replace(objective="mae"))
    torch.manual_seed(123)
    mug = MUGObjective(tiny_config.replace(caption_loss_weight=0.0))
    mug_parameters = dict(mug.named_parameters())
    for name, parameter in mae.named_parameters():
        assert torch.equal(parameter, mug_parameters[name]), name

    generator = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randn(4, 3, 16, 16, generator=generator),
        "tokens": torch.randint(0, 300, (4, 16), generator=generator),
        "lengths": torch.tensor([16, 9, 3, 2]),
    }
    out_mae = mae(batch, generator=torch.Generator().manual_seed(7))
    out_mug = mug(batch, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out_mae["loss"], out_mug["loss"])
    assert torch.equal(out_mae["mask"], out_mug["mask"]) and torch.equal(out_mae["pred"], out_mug["pred"])
    assert out_mug["loss_caption"] > 0  # the caption branch ran; its weight is what is zero
    out_mae["loss"].backward()
    out_mug["loss"].backward()
    for name, parameter in mae.named_parameters():
        if parameter.requires_grad:
            assert torch.equal(parameter.grad, mug_parameters[name].grad), name


def test_the_caption_term_reaches_the_encoder(tiny_config):
    torch.manual_seed(0)
    mug = MUGObjective(tiny_config)
    generator = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.randn(4, 3, 16, 16, generator=generator),
        "tokens": torch.randint(0, 300, (4, 16), generator=generator),
        "lengths": torch.tensor([16, 9, 3, 2]),
    }
    mug(batch, generator=torch.Generator().manual_seed(7))["loss_caption"].backward()
    assert mug.encoder.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in mug.pixel_decoder.parameters())
