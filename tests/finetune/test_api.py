"""The protocol end to end on tiny encoders and an easy in-memory task, and its honesty rules."""

import json
import math

import numpy as np
import pytest
from torch import nn

from infomug.finetune import api, build_settings, finetune
from infomug.finetune.classifier import Classifier, backbone_of
from infomug.finetune.loop import LabelledImages, Normaliser, fit_classifier
from infomug.finetune.results import FinetuneReport, Fit
from infomug.finetune.settings import Recipe
from infomug.finetune.tasks import Augmentation
from infomug.measure.sources import from_module

from .conftest import square_task, tiny_encoder

FAST = (
    "linear.weight_decay_grid=[0.001]",
    "linear.max_iter=200",
    "partial.steps=20",
    "partial.blocks=1",
    "partial.lr_grid=[0.003]",
    "full.steps=20",
    "full.batch_size=32",
    "full.lr_grid=[0.001,0.003]",
    "val_fraction=0.2",
)


def _settings(*extra, **values):
    values = {"label_budgets": (60, 0), "seeds": 2, **values}
    return build_settings([*FAST, *extra], **values)


def test_every_cell_is_run_and_the_scratch_reference_only_in_linear_and_full(task, model, tmp_path):
    report = finetune([model], _settings(), out=tmp_path, progress=False, tasks=[task])
    cells = report.cells()
    keys = {(c.model, c.mode, c.budget) for c in cells}
    scratch = next(m for m in report.models if m.scratch)
    assert {(m, b) for name, m, b in keys if name == "tiny"} == {
        (m, b) for m in ("linear", "partial", "full") for b in (60, 0)
    }
    assert {(m, b) for name, m, b in keys if name == scratch.name} == {
        (m, b) for m in ("linear", "full") for b in (60, 0)
    }
    full_60 = next(c for c in cells if c.model == "tiny" and c.mode == "full" and c.budget == 60)
    assert len(full_60.grid) == 2 and full_60.test.n == 2 and full_60.train_images == 60
    assert (tmp_path / "finetune.md").read_text().count("## squares") == 1
    assert (tmp_path / "finetune.png").stat().st_size > 0
    assert json.loads((tmp_path / "finetune.json").read_text())["schema"] == 1


def test_the_grid_is_searched_on_the_first_seed_and_the_other_seeds_reuse_its_choice(task, model):
    report = finetune([model], _settings(), progress=False, tasks=[task])
    fits = [f for f in report.fits if f.model_key == model.fingerprint and f.mode == "full" and f.budget == 0]
    assert sorted(f.hyper["lr"] for f in fits if f.seed == 0) == [0.001, 0.003]
    (other,) = [f for f in fits if f.seed == 1]
    best = max((f for f in fits if f.seed == 0), key=lambda f: f.val_mean)
    assert other.hyper == best.hyper


def test_the_choice_reads_validation_never_test(task, model):
    """Scrambling the test labels changes every test accuracy and no choice."""
    settings = _settings(seeds=1)
    honest = finetune([model], settings, progress=False, tasks=[task])
    scrambled = square_task()
    rng = np.random.default_rng(1)
    scrambled.test_labels = {k: rng.permutation(v) for k, v in scrambled.test_labels.items()}
    other = finetune([model], settings, progress=False, tasks=[scrambled])
    assert [c.chosen for c in honest.cells()] == [c.chosen for c in other.cells()]
    assert [c.grid for c in honest.cells()] == [c.grid for c in other.cells()]
    assert [c.test.mean for c in honest.cells()] != [c.test.mean for c in other.cells()]


def test_selection_follows_validation_when_test_would_prefer_another_value():
    def fit(lr, val, test, seed=0):
        return Fit("m", "t", "full", 0, seed, {"lr": lr}, {"a": val}, {"a": test}, 10, 5, 5, 1, 1.0)

    report = FinetuneReport(
        settings={}, fits=[fit(1e-3, 0.9, 0.1), fit(3e-3, 0.5, 0.99), fit(1e-3, 0.8, 0.2, 1)]
    )
    report.models = [api.ModelEntry("m", "m", "x")]
    report.tasks = {"t": {}}
    (cell,) = report.cells()
    assert cell.chosen == {"lr": 1e-3}
    assert cell.test.mean == pytest.approx(0.15) and cell.test.n == 2
    assert api._chosen(report, "m", "t", "full", 0, [{"lr": 1e-3}, {"lr": 3e-3}]) == {"lr": 1e-3}


def test_an_encoder_trained_on_the_labels_reaches_near_perfect_accuracy(task):
    """The oracle check: a backbone first trained with the task's labels, then fine-tuned by the protocol."""
    train = LabelledImages.take(task.train_images, task.train_labels, np.arange(task.train_images.shape[0]))
    test = LabelledImages.take(task.test_images, task.test_labels, np.arange(task.test_images.shape[0]))
    supervised = Classifier(backbone_of(tiny_encoder(3)), {"quadrant": 4, "tint": 3})
    normaliser = Normaliser.of((0.2,) * 3, (0.3,) * 3, Augmentation())
    fit_classifier(
        supervised, train, test, test, normaliser, Recipe(steps=150, batch_size=32), 3e-3, 0, progress=False
    )
    oracle = from_module(supervised.backbone, name="trained on the labels")
    settings = _settings(
        "full.lr_grid=[0.001]", label_budgets=(0,), seeds=1, modes=("linear", "full"), from_scratch=False
    )
    report = finetune([oracle], settings, progress=False, tasks=[task])
    for cell in report.cells():
        assert cell.test.mean > 0.95, (cell.mode, cell.per_label)


def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(task, model, tmp_path, monkeypatch):
    settings = _settings(seeds=1, modes=("linear", "full"), label_budgets=(0,))
    whole = finetune([model], settings, out=tmp_path / "whole", progress=False, tasks=[task])
    path = tmp_path / "cut" / "finetune.json"
    path.parent.mkdir()
    cut = FinetuneReport.read(tmp_path / "whole" / "finetune.json")
    cut.fits = cut.fits[:2]  # as if killed after the second fit
    cut.write(path)
    runs = []
    original = api._fit
    monkeypatch.setattr(api, "_fit", lambda *a, **k: runs.append(a[6]) or original(*a, **k))
    resumed = finetune([model], settings, out=tmp_path / "cut", progress=False, tasks=[task])
    assert len(runs) == len(whole.fits) - 2
    assert [c.test.mean for c in resumed.cells()] == [c.test.mean for c in whole.cells()]
    runs.clear()
    finetune([model], settings, out=tmp_path / "cut", progress=False, tasks=[task])
    assert runs == []  # nothing left to do


def test_bad_inputs_are_named(task, model, tmp_path):
    finetune([model], _settings(seeds=1, modes=("linear",)), out=tmp_path, progress=False, tasks=[task])
    with pytest.raises(ValueError, match="other settings"):
        finetune([model], _settings(seeds=2, modes=("linear",)), out=tmp_path, progress=False, tasks=[task])
    (tmp_path / "finetune.json").write_text("{truncated")
    with pytest.raises(ValueError, match="not valid JSON"):
        finetune([model], _settings(seeds=1, modes=("linear",)), out=tmp_path, progress=False, tasks=[task])
    with pytest.raises(ValueError, match="VisionTransformer"):
        finetune([from_module(nn.Linear(3, 3))], _settings(), progress=False, tasks=[task])
    with pytest.raises(ValueError, match="32-px images"):
        finetune([model], _settings(), progress=False, tasks=[_resized(task)])
    with pytest.raises(ValueError, match="at least one model"):
        finetune([], _settings(), progress=False, tasks=[task])


def _resized(task):
    import torch.nn.functional as F

    task.train_images = F.interpolate(task.train_images.float(), size=32).byte()
    task.test_images = F.interpolate(task.test_images.float(), size=32).byte()
    return task


def test_settings_reject_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="nonsense"):
        build_settings(["full.nonsense=1"])
    with pytest.raises(ValueError, match="modes"):
        build_settings(modes=("fine",))
    with pytest.raises(ValueError, match="label budgets"):
        build_settings(label_budgets=(1,))
    assert build_settings(["full.steps=7"]).full.steps == 7
    assert math.isclose(build_settings().full.layer_decay, 0.75)


def test_a_plain_timm_vit_is_fine_tuned_with_its_own_learned_positions(task):
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=0)
    settings = _settings(seeds=1, label_budgets=(0,), modes=("full",))
    report = finetune([from_module(vit, name="timm vit")], settings, progress=False, tasks=[task])
    names = {c.model for c in report.cells()}
    assert names == {"timm vit", "ViT 32x2 h2 p4 16px (from scratch)"}
    assert vit.pos_embed.requires_grad  # the caller's model is untouched by freezing and copying
