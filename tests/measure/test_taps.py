"""Layer specs, pooling, and the two taps: the timm feature API and forward hooks must agree exactly."""

import numpy as np
import pytest
import timm
import torch
from torch import nn

from infomug.measure.sources import from_module
from infomug.measure.taps import (
    POOLS,
    HookTap,
    IntermediatesTap,
    encoder_depth,
    make_tap,
    parse_layers,
    parse_pools,
    pool_output,
)
from infomug.models.encoder import MaskedViTEncoder

TINY_VIT = dict(img_size=32, patch_size=8, depth=3, embed_dim=32, num_heads=2, num_classes=0)


@pytest.fixture(scope="module")
def encoder() -> MaskedViTEncoder:
    torch.manual_seed(0)
    return MaskedViTEncoder(img_size=16, patch_size=4, embed_dim=32, depth=3, num_heads=2).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, [0, 1, 2, 3, 4, 5]),
        ("all", [0, 1, 2, 3, 4, 5]),
        (" ALL ", [0, 1, 2, 3, 4, 5]),
        ("last", [5]),
        ("0,3,5", [0, 3, 5]),
        ("5, 0 ,3", [0, 3, 5]),
        ("-1", [5]),
        ("-6,0,-1,5", [0, 5]),
        ([2, -1, 2], [2, 5]),
        ((0,), [0]),
        (np.arange(0, 6, 3), [0, 3]),
        ([np.int64(-1)], [5]),
    ],
)
def test_parse_layers(spec, expected):
    assert parse_layers(spec, depth=6) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("6", "index 6 is out of range for depth 6"),
        ("-7", "index -7 is out of range for depth 6"),
        ("0,x", r"'x' is not a block index.*depth 6"),
        ("", "is not a block index"),
        ([], "names no block"),
        ([1.5], "is not a block index"),
        ([np.float32(2.7)], "is not a block index"),  # not silently truncated to block 2
        ([True], "is not a block index"),
    ],
)
def test_parse_layers_errors_name_the_spec_and_depth(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_layers(spec, depth=6)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        parse_layers("all", depth=0)


def test_encoder_depth():
    assert encoder_depth(MaskedViTEncoder(img_size=16, patch_size=4, embed_dim=32, depth=3, num_heads=2)) == 3
    assert encoder_depth(timm.create_model("vit_tiny_patch16_224", pretrained=False, **TINY_VIT)) == 3
    with pytest.raises(ValueError, match="tap it by module names"):
        encoder_depth(nn.Sequential(nn.Linear(2, 2)))


def test_pool_output_shapes_and_values():
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float64).reshape(2, 4, 3)
    assert torch.equal(pool_output(tokens, "token"), tokens[:, 0].float())
    assert torch.equal(pool_output(tokens, "avg"), tokens[:, 1:].mean(1).float())
    assert torch.equal(pool_output(tokens, "avg", num_prefix_tokens=2), tokens[:, 2:].mean(1).float())
    assert pool_output(tokens, "token").dtype == torch.float32
    flat = torch.randn(2, 7)
    assert torch.equal(pool_output(flat, "token"), flat) and torch.equal(pool_output(flat, "avg"), flat)
    maps = torch.randn(2, 5, 3, 4)
    for pool in ("token", "avg"):
        torch.testing.assert_close(pool_output(maps, pool), maps.mean(dim=(2, 3)))
    assert torch.equal(pool_output((flat, torch.zeros(1)), "avg"), flat)  # first tensor of a tuple
    assert torch.equal(pool_output([None, flat], "avg"), flat)


@pytest.mark.parametrize(
    "output, pool, kwargs, message",
    [
        (torch.zeros(2), "token", {}, r"shape \(2,\)"),
        (torch.zeros(2, 3, 4, 5, 6), "token", {}, r"shape \(2, 3, 4, 5, 6\)"),
        ({"x": torch.zeros(2, 3)}, "token", {}, "type dict"),
        ((None,), "token", {}, "type NoneType"),
        (torch.zeros(2, 3, 4), "max", {}, "pool must be one of"),
        (torch.zeros(2, 3, 4), "token", {"num_prefix_tokens": 0}, "needs a class token"),
        (torch.zeros(2, 1, 4), "avg", {}, "needs patch tokens"),
    ],
)
def test_pool_output_errors(output, pool, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pool_output(output, pool, **kwargs)


def _manual_block_output(encoder: MaskedViTEncoder, images: torch.Tensor, index: int) -> torch.Tensor:
    vit = encoder.vit
    patches = vit.patch_embed(images) + vit.pos_embed[:, 1:]
    cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(images.shape[0], -1, -1)
    tokens = vit.norm_pre(torch.cat([cls, patches], dim=1))
    return vit.blocks[: index + 1](tokens)


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_intermediates_tap_matches_hooks_and_a_manual_forward(encoder, images, pool):
    tap = IntermediatesTap(encoder, [0, 2], pool)
    assert tap.names == ["block_0", "block_2"]
    features = tap(images)
    hooks = HookTap(encoder, ["vit.blocks.0", "vit.blocks.2"], pool)
    hooked = hooks(images)
    with torch.no_grad():
        for index, name in ((0, "block_0"), (2, "block_2")):
            assert features[name].shape == (5, 32) and features[name].dtype == torch.float32
            assert torch.equal(features[name], hooked[f"vit.blocks.{index}"])
            manual = pool_output(_manual_block_output(encoder, images, index), pool)
            torch.testing.assert_close(features[name], manual, rtol=0, atol=1e-6)
        # Raw block outputs (norm=False): the last block is not forward_features' normed output...
        last = IntermediatesTap(encoder, [2], pool)(images)["block_2"]
        assert not torch.allclose(last, pool_output(encoder.forward_features(images), pool))
        # ...which is what a hook on the final norm reads.
        normed = HookTap(encoder, ["vit.norm"], pool)(images)["vit.norm"]
        torch.testing.assert_close(
            normed, pool_output(encoder.forward_features(images), pool), rtol=0, atol=0
        )


@pytest.mark.parametrize("reg_tokens", [0, 2])
@pytest.mark.parametrize("pool", ["token", "avg"])
def test_intermediates_tap_on_timm_vits_puts_prefix_tokens_first(pool, reg_tokens):
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, reg_tokens=reg_tokens, **TINY_VIT
    ).eval()
    images = torch.randn(3, 3, 32, 32)
    model = from_module(vit)
    tap = make_tap(model, "0,-1", pool)
    assert isinstance(tap, IntermediatesTap) and tap.names == ["block_0", "block_2"]
    hooks = make_tap(model, ["blocks.0", "blocks.2"], pool)
    assert isinstance(hooks, HookTap) and hooks.num_prefix_tokens == 1 + reg_tokens
    features, hooked = tap(images), hooks(images)
    for index in (0, 2):
        assert torch.equal(features[f"block_{index}"], hooked[f"blocks.{index}"])
    with torch.no_grad():
        tokens = vit.blocks[:1](vit.norm_pre(vit._pos_embed(vit.patch_embed(images))))
    expected = tokens[:, 0] if pool == "token" else tokens[:, 1 + reg_tokens :].mean(1)
    torch.testing.assert_close(features["block_0"], expected, rtol=0, atol=1e-6)


def test_hook_tap_on_a_plain_conv_net_and_hook_cleanup():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.Flatten(),
        nn.Linear(6 * 7 * 7, 5),
    ).eval()
    images = torch.randn(2, 3, 16, 16)
    tap = HookTap(net, ["1", "4"], pool="avg")
    features = tap(images)
    with torch.no_grad():
        assert torch.equal(features["1"], net[:2](images).mean(dim=(2, 3)))
        assert torch.equal(features["4"], net(images))
    assert list(features) == ["1", "4"] and features["1"].shape == (2, 4)
    assert all(not module._forward_hooks for module in net.modules())

    failing = HookTap(net, ["0"], forward=lambda module, x: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing(images)
    assert all(not module._forward_hooks for module in net.modules())

    with pytest.raises(ValueError, match=r"no module named \['fc'\]; valid names include \['0', '1'"):
        HookTap(net, ["fc"])
    unused = nn.ModuleDict({"used": nn.Linear(2, 2), "spare": nn.Linear(2, 2)})
    with pytest.raises(ValueError, match=r"modules \['spare'\] did not run"):
        HookTap(unused, ["spare"], forward=lambda m, x: m["used"](x))(torch.zeros(1, 2))


def test_hook_tap_custom_forward_and_select(encoder, images):
    tap = HookTap(encoder, ["vit.blocks.0", "vit.blocks.1"], forward=lambda m, x: m.forward_features(x))
    part = tap.select(["vit.blocks.1"])
    assert part.names == ["vit.blocks.1"]
    assert torch.equal(part(images)["vit.blocks.1"], tap(images)["vit.blocks.1"])
    sub = IntermediatesTap(encoder, [0, 1, 2]).select(["block_2", "block_0"])
    assert sub.names == ["block_0", "block_2"] and sub.indices == [0, 2]


def test_make_tap_choices(encoder):
    model = from_module(encoder)
    assert make_tap(model, None, "token").names == ["block_0", "block_1", "block_2"]
    assert make_tap(model, "last", "avg").names == ["block_2"]
    assert make_tap(model, [0, -1], "token").names == ["block_0", "block_2"]
    # numpy integers are block indices, not module names to hook
    assert make_tap(model, np.array([0, 2]), "token").names == ["block_0", "block_2"]
    by_name = make_tap(model, "vit.blocks.1,vit.norm", "token")
    assert isinstance(by_name, HookTap) and by_name.names == ["vit.blocks.1", "vit.norm"]
    assert isinstance(make_tap(model, ["vit.blocks.0"], "token"), HookTap)
    with pytest.raises(ValueError, match="pool must be one of"):
        make_tap(model, "all", "max")
    with pytest.raises(ValueError, match="out of range for depth 3"):
        make_tap(model, "3", "token")

    net = from_module(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    numbered = make_tap(net, "0,2", "token")  # nn.Sequential's module names are integers
    assert isinstance(numbered, HookTap) and numbered.names == ["0", "2"]
    with pytest.raises(ValueError, match="has no forward_intermediates.*pass module names"):
        make_tap(net, "all", "token")
    with pytest.raises(ValueError, match="pass module names"):
        make_tap(net, None, "token")


# -- raw tokens, the final-norm readout, both pools ----------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("token", ["token"]),
        ("avg", ["avg"]),
        ("token,avg", ["token", "avg"]),
        (" AVG , token ", ["avg", "token"]),
        ("both", ["token", "avg"]),
        ("token,token", ["token"]),
        (["avg", "token"], ["avg", "token"]),
    ],
)
def test_parse_pools(spec, expected):
    assert parse_pools(spec) == expected


@pytest.mark.parametrize("spec", ["max", "token,max", "", []])
def test_parse_pools_rejects_unknown_or_empty_specs(spec):
    with pytest.raises(ValueError, match="pool"):
        parse_pools(spec)
    with pytest.raises(ValueError, match=r"'max' is unknown"):
        parse_pools("token,max")
    assert POOLS == ("token", "avg")  # existing callers check `pool in POOLS`


@pytest.mark.parametrize("pool", ["token", "avg", "both"])
def test_call_is_pool_tokens_of_tokens_for_both_taps(encoder, images, pool):
    for tap in (
        IntermediatesTap(encoder, [0, 2], pool, final_norm=True),
        HookTap(encoder, ["vit.blocks.1"], pool),
    ):
        raw = tap.tokens(images)
        assert list(raw) == tap.layers
        for tokens in raw.values():
            # [B, 1 + L, D], class token first, detached float32.
            assert tokens.shape == (5, 17, 32) and tokens.dtype == torch.float32 and not tokens.requires_grad
        pooled, called = tap.pool_tokens(raw), tap(images)
        assert list(pooled) == list(called) == tap.names
        for name in tap.names:
            assert torch.equal(pooled[name], called[name])
    assert (
        IntermediatesTap(encoder, [0]).num_prefix_tokens
        == HookTap(encoder, ["vit.blocks.0"]).num_prefix_tokens
        == 1
    )


def test_block_tokens_are_the_raw_block_outputs(encoder, images):
    raw = IntermediatesTap(encoder, [1]).tokens(images)["block_1"]
    with torch.no_grad():
        torch.testing.assert_close(raw, _manual_block_output(encoder, images, 1), rtol=0, atol=1e-6)


def test_tokens_of_conv_maps_and_vectors():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    ).eval()
    images = torch.randn(2, 3, 6, 6)
    tap = HookTap(net, ["1", "3"], pool="both")
    raw = tap.tokens(images)
    with torch.no_grad():
        maps = net[:2](images)
        # [B, C, H, W] -> [B, H * W, C], row-major over space.
        assert raw["1"].shape == (2, 36, 4) and torch.equal(raw["1"][:, 7], maps[:, :, 1, 1])
        assert raw["3"].shape == (2, 5) and torch.equal(raw["3"], net(images))
    assert tap.spatial_maps == {"1"}
    features = tap(images)
    # A map has no class token: both pools average over space, as pool_output does with the map.
    for pool in ("token", "avg"):
        torch.testing.assert_close(features[f"1:{pool}"], maps.mean(dim=(2, 3)), rtol=0, atol=1e-6)
        assert torch.equal(features[f"3:{pool}"], raw["3"])


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_final_norm_is_forward_features_not_the_last_block(encoder, images, pool):
    model = from_module(encoder)
    tap = make_tap(model, "all,norm", pool)
    assert isinstance(tap, IntermediatesTap) and tap.names == ["block_0", "block_1", "block_2", "final_norm"]
    features = tap(images)
    with torch.no_grad():
        normed = encoder.forward_features(images)
    torch.testing.assert_close(features["final_norm"], pool_output(normed, pool), rtol=0, atol=1e-6)
    torch.testing.assert_close(tap.tokens(images)["final_norm"], normed, rtol=0, atol=1e-6)
    assert not torch.allclose(features["final_norm"], features["block_2"], atol=1e-3)
    # The blocks are read as without the norm token; "norm" alone and "last,norm" work too.
    for name, value in make_tap(model, "all", pool)(images).items():
        torch.testing.assert_close(features[name], value, rtol=0, atol=1e-6)
    alone = make_tap(model, "norm", pool)
    assert alone.names == ["final_norm"] and alone.indices == []
    torch.testing.assert_close(alone(images)["final_norm"], features["final_norm"], rtol=0, atol=1e-6)
    assert make_tap(model, "last,norm", pool).names == ["block_2", "final_norm"]
    assert make_tap(model, [0, "norm"], pool).names == ["block_0", "final_norm"]
    assert make_tap(model, "last", pool).names == ["block_2"]  # raw block outputs stay the default
    assert tap.select(["final_norm"]).names == ["final_norm"]
    assert tap.select(["block_1"]).names == ["block_1"]


@pytest.mark.parametrize("reg_tokens", [0, 2])
def test_final_norm_on_a_timm_vit(reg_tokens):
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, reg_tokens=reg_tokens, **TINY_VIT
    ).eval()
    images = torch.randn(3, 3, 32, 32)
    tap = make_tap(from_module(vit), "0,norm", "both")
    assert tap.names == ["block_0:token", "block_0:avg", "final_norm:token", "final_norm:avg"]
    features = tap(images)
    with torch.no_grad():
        normed = vit.forward_features(images)
        tokens = vit.blocks[:1](vit.norm_pre(vit._pos_embed(vit.patch_embed(images))))
    prefix = 1 + reg_tokens
    torch.testing.assert_close(features["final_norm:token"], normed[:, 0], rtol=0, atol=1e-6)
    torch.testing.assert_close(features["final_norm:avg"], normed[:, prefix:].mean(1), rtol=0, atol=1e-6)
    torch.testing.assert_close(features["block_0:avg"], tokens[:, prefix:].mean(1), rtol=0, atol=1e-6)
    assert tap.tokens(images)["final_norm"].shape == (3, prefix + 16, 32)  # 4 x 4 patches


def test_both_pools_name_each_layer_twice_and_match_single_pools(encoder, images):
    model = from_module(encoder)
    tap = make_tap(model, "0,2", "both")
    assert tap.names == ["block_0:token", "block_0:avg", "block_2:token", "block_2:avg"]
    assert tap.layers == ["block_0", "block_2"] and tap.pool == "token,avg"
    features = tap(images)
    for pool in ("token", "avg"):
        single = make_tap(model, "0,2", pool)
        assert single.names == ["block_0", "block_2"]  # one pool: names as before
        for layer, value in single(images).items():
            assert torch.equal(features[f"{layer}:{pool}"], value)
    assert make_tap(model, "0,2", "avg,token").names[:2] == ["block_0:avg", "block_0:token"]
    assert (
        tap.layer_of("block_2:avg") == "block_2"
        and make_tap(model, "0", "avg").layer_of("block_0") == "block_0"
    )
    with pytest.raises(KeyError, match="not one of this tap's feature names"):
        tap.layer_of("block_2")
    # select takes feature names (what extract.py passes) or layer names.
    assert tap.select(["block_2:avg"]).names == ["block_2:token", "block_2:avg"]
    assert tap.select(["block_0"]).indices == [0]
    hooks = make_tap(model, "vit.blocks.0,vit.norm", "both")
    assert isinstance(hooks, HookTap) and hooks.names == [
        "vit.blocks.0:token",
        "vit.blocks.0:avg",
        "vit.norm:token",
        "vit.norm:avg",
    ]
    assert hooks.select(["vit.norm:token"]).names == ["vit.norm:token", "vit.norm:avg"]
    with pytest.raises(ValueError, match="pool must be one of"):
        make_tap(model, "all", "token,max")
