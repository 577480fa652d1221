import math

import numpy as np
import torch

from infomug.finetune import loop
from infomug.finetune.classifier import Classifier, backbone_of
from infomug.finetune.loop import LabelledImages, Normaliser, fit_classifier
from infomug.finetune.settings import Recipe
from infomug.finetune.tasks import Augmentation

from .conftest import square_task, tiny_encoder


def _splits(task):
    n = task.train_images.shape[0]
    train = LabelledImages.take(task.train_images, task.train_labels, np.arange(0, n - 40))
    val = LabelledImages.take(task.train_images, task.train_labels, np.arange(n - 40, n))
    test = LabelledImages.take(task.test_images, task.test_labels, np.arange(task.test_images.shape[0]))
    return train, val, test


NORMALISER = Normaliser.of((0.2, 0.2, 0.2), (0.3, 0.3, 0.3), Augmentation())


def _fit(blocks=None, steps=120, lr=3e-3, seed=0, augmentation=None):
    task = square_task()
    classifier = Classifier(backbone_of(tiny_encoder()), {"quadrant": 4, "tint": 3}, drop_path=0.0)
    classifier.train_only_last(blocks)
    normaliser = NORMALISER if augmentation is None else Normaliser.of((0.2,) * 3, (0.3,) * 3, augmentation)
    recipe = Recipe(steps=steps, batch_size=32, layer_decay=0.9)
    return fit_classifier(classifier, *_splits(task), normaliser, recipe, lr=lr, seed=seed, progress=False)


def test_full_fine_tuning_learns_an_easy_task_from_random_init():
    outcome = _fit()
    # Chance is 25% and 33%; a working loop separates quadrant and tint almost perfectly in 120 steps.
    assert min(outcome.test_accuracy.values()) > 0.9, outcome
    assert min(outcome.val_accuracy.values()) > 0.9
    assert outcome.steps == 120 and not outcome.diverged and outcome.images_per_second > 0


def test_partial_fine_tuning_with_cached_prefix_learns_too_and_is_reproducible():
    first, second = _fit(blocks=1, steps=80), _fit(blocks=1, steps=80)
    assert first.test_accuracy == second.test_accuracy and first.final_loss == second.final_loss
    assert first.final_loss < math.log(4) / 2 + math.log(3) / 2  # below chance-level cross-entropy


def test_the_callers_random_state_is_untouched():
    classifier = Classifier(backbone_of(tiny_encoder()), {"quadrant": 4, "tint": 3}, drop_path=0.1)
    splits = _splits(square_task())
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    fit_classifier(
        classifier, *splits, NORMALISER, Recipe(steps=3, batch_size=8), 1e-3, seed=0, progress=False
    )
    assert torch.equal(torch.rand(3), expected)


def test_a_non_finite_loss_stops_the_fit_and_marks_it_diverged(monkeypatch):
    calls = []

    def exploding(logits, labels, smoothing):
        calls.append(1)
        value = loop.F.cross_entropy(logits["quadrant"], labels["quadrant"])
        return value * (math.inf if len(calls) == 3 else 1.0)

    monkeypatch.setattr(loop, "_loss", exploding)
    outcome = _fit(steps=10)
    assert outcome.diverged and outcome.steps == 2
    assert all(math.isnan(v) for v in outcome.test_accuracy.values())


def test_augmentation_changes_what_the_model_sees_but_keeps_shapes():
    normaliser = Normaliser.of((0.0,) * 3, (1.0,) * 3, Augmentation(crop_scale=(0.3, 0.5), hflip=True))
    images = square_task().train_images[:8]
    plain, augmented = normaliser(images), normaliser(images, augment=True)
    assert augmented.shape == plain.shape and not torch.allclose(augmented, plain)
    assert torch.allclose(plain, images.float() / 255)
