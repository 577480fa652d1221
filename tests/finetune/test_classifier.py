import pytest
import torch
from torch import nn

from infomug.finetune.classifier import Classifier, backbone_of, set_drop_path
from infomug.finetune.loop import optimizer_groups
from infomug.finetune.settings import Recipe

from .conftest import tiny_encoder


def test_logits_have_one_head_per_label_and_the_backbone_is_a_copy():
    encoder = tiny_encoder()
    classifier = Classifier(backbone_of(encoder), {"a": 3, "b": 5})
    logits = classifier(torch.randn(4, 3, 16, 16))
    assert {k: tuple(v.shape) for k, v in logits.items()} == {"a": (4, 3), "b": (4, 5)}
    with torch.no_grad():
        classifier.backbone.blocks[0].mlp.fc1.weight.add_(1.0)
    assert not torch.equal(classifier.backbone.blocks[0].mlp.fc1.weight, encoder.vit.blocks[0].mlp.fc1.weight)


def test_full_fine_tuning_reaches_every_trainable_parameter():
    classifier = Classifier(backbone_of(tiny_encoder()), {"a": 3})
    classifier.train_only_last(None)
    loss = classifier(torch.randn(4, 3, 16, 16))["a"].logsumexp(dim=1).sum()
    loss.backward()
    trainable = {n for n, p in classifier.named_parameters() if p.requires_grad}
    missing = [n for n, p in classifier.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert "backbone.pos_embed" not in trainable  # the encoder's fixed sine-cosine positions stay fixed
    assert not any(n.startswith("backbone.norm.") for n in trainable)  # unused by the mean-pooled head
    assert "backbone.patch_embed.proj.weight" in trainable


def test_partial_fine_tuning_trains_only_the_last_blocks_and_keeps_frozen_blocks_in_eval():
    classifier = Classifier(backbone_of(tiny_encoder()), {"a": 3}, drop_path=0.5)
    classifier.train_only_last(1)
    trainable = {n for n, p in classifier.named_parameters() if p.requires_grad}
    assert all(n.startswith(("backbone.blocks.1.", "fc_norm.", "heads.")) for n in trainable)
    assert any(n.startswith("backbone.blocks.1.") for n in trainable)
    classifier.train()
    assert not classifier.backbone.blocks[0].training and classifier.backbone.blocks[1].training
    x = torch.randn(2, 3, 16, 16)
    classifier.eval()
    assert torch.allclose(classifier.forward_from(classifier.frozen_prefix(x))["a"], classifier(x)["a"])
    with pytest.raises(ValueError, match="last 0..2 blocks"):
        classifier.train_only_last(3)


def test_drop_path_rises_linearly_to_the_last_block():
    vit = backbone_of(tiny_encoder())
    set_drop_path(vit, 0.2)
    assert isinstance(vit.blocks[0].drop_path1, nn.Identity)
    assert vit.blocks[1].drop_path1.drop_prob == pytest.approx(0.2)
    with pytest.raises(ValueError, match="drop_path"):
        set_drop_path(vit, 1.0)


def test_layer_decay_scales_blocks_geometrically_and_heads_at_one():
    classifier = Classifier(backbone_of(tiny_encoder()), {"a": 3})
    groups = optimizer_groups(classifier, Recipe(layer_decay=0.5))
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    # timm's rule: the stem at decay^depth, block i at decay^(depth - 1 - i), the last block and heads at 1.
    assert scale_of[id(classifier.backbone.patch_embed.proj.weight)] == pytest.approx(0.25)
    assert scale_of[id(classifier.backbone.blocks[0].mlp.fc1.weight)] == pytest.approx(0.5)
    assert scale_of[id(classifier.backbone.blocks[1].mlp.fc1.weight)] == pytest.approx(1.0)
    assert scale_of[id(classifier.heads["a"].weight)] == 1.0
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay[id(classifier.heads["a"].bias)] == 0.0 and decay[id(classifier.heads["a"].weight)] > 0


def test_backbone_of_refuses_a_module_that_is_not_a_vit():
    with pytest.raises(ValueError, match="VisionTransformer"):
        backbone_of(nn.Linear(3, 3))


def test_a_label_with_one_class_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        Classifier(backbone_of(tiny_encoder()), {"a": 1})


def test_a_batchnorm_head_standardises_each_dimension_over_the_batch():
    classifier = Classifier(backbone_of(tiny_encoder()), {"a": 3}, head_norm="batchnorm")
    classifier.train()
    tokens = torch.randn(16, 17, 32) * torch.logspace(-1, 2, 32)  # dimensions on very different scales
    pooled = tokens[:, 1:].mean(dim=1)
    normed = classifier.fc_norm(pooled)
    assert torch.allclose(normed.std(dim=0, unbiased=False), torch.ones(32), atol=1e-3)
    with pytest.raises(ValueError, match="head_norm"):
        Classifier(backbone_of(tiny_encoder()), {"a": 3}, head_norm="groupnorm")
