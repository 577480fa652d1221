"""One gradient fine-tune: AdamW with layer-wise lr decay, warmup + cosine, label smoothing, then accuracy.

The step is MAE's ``train_one_epoch`` for classification (He et al. 2022, ``engine_finetune.py``) without
mixup/cutmix (the embedded tasks' labels describe positions and colours, which mixing would blur). When
the frozen part of a partial fine-tune sees no augmentation, its output tokens are computed once and the
steps run only the trainable blocks: the same result, several times faster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from timm.optim import param_groups_layer_decay
from torchvision.transforms import v2
from tqdm.auto import tqdm

from infomug.train.optim import learning_rate

from .classifier import Classifier
from .settings import Recipe
from .tasks import Augmentation


@dataclass
class LabelledImages:
    """Images of one split with their labels.

    Attributes:
        images: ``[N, 3, S, S]`` uint8.
        labels: ``{label: [N] int64}``.
    """

    images: torch.Tensor
    labels: dict[str, torch.Tensor]

    @classmethod
    def take(cls, images: torch.Tensor, labels: Mapping[str, np.ndarray], rows: np.ndarray) -> LabelledImages:
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return cls(images[index], {name: torch.from_numpy(values)[index] for name, values in labels.items()})

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device) -> LabelledImages:
        return LabelledImages(self.images.to(device), {k: v.to(device) for k, v in self.labels.items()})


@dataclass
class Normaliser:
    """uint8 images -> normalised float32, with optional label-preserving augmentation per image."""

    mean: torch.Tensor  # [1, 3, 1, 1]
    std: torch.Tensor
    augmentation: Augmentation
    _transform: v2.Compose | None = field(default=None, repr=False)  # built on first use, at the image size

    @classmethod
    def of(cls, mean: tuple[float, ...], std: tuple[float, ...], augmentation: Augmentation) -> Normaliser:
        shape = (1, 3, 1, 1)
        return cls(torch.tensor(mean).view(shape), torch.tensor(std).view(shape), augmentation)

    def __call__(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        batch = images.float().div_(255.0)
        if augment and not self.augmentation.none:
            batch = torch.stack([self._augment(image) for image in batch])
        return (batch - self.mean.to(batch.device)) / self.std.to(batch.device)

    def _augment(self, image: torch.Tensor) -> torch.Tensor:
        if self._transform is None:
            size = image.shape[-1]
            steps: list[v2.Transform] = []
            if self.augmentation.crop_scale is not None:
                crop = v2.RandomResizedCrop(
                    size, scale=self.augmentation.crop_scale, interpolation=v2.InterpolationMode.BICUBIC
                )
                steps.append(crop)
            if self.augmentation.hflip:
                steps.append(v2.RandomHorizontalFlip())
            self._transform = v2.Compose(steps)
        return self._transform(image).clamp_(0.0, 1.0)


@dataclass
class FitOutcome:
    """What one fine-tune reached.

    Attributes:
        val_accuracy, test_accuracy: ``{label: accuracy in [0, 1]}`` (NaN when diverged).
        steps: optimizer steps taken.
        seconds: wall time, evaluation included.
        images_per_second: training images per second (forward + backward).
        final_loss: mean training loss over the last tenth of the steps, nats.
        diverged: the loss became NaN or infinite; the fit stopped there.
    """

    val_accuracy: dict[str, float]
    test_accuracy: dict[str, float]
    steps: int
    seconds: float
    images_per_second: float
    final_loss: float
    diverged: bool


def optimizer_groups(classifier: Classifier, recipe: Recipe) -> list[dict]:
    """AdamW groups with an ``lr_scale`` each: timm's layer-wise decay on the backbone, 1.0 for the heads."""
    groups = param_groups_layer_decay(
        classifier.backbone,
        weight_decay=recipe.weight_decay,
        no_weight_decay_list=classifier.backbone.no_weight_decay(),
        layer_decay=recipe.layer_decay,
    )
    head = [p for module in (classifier.fc_norm, classifier.heads) for p in module.parameters()]
    matrices = [p for p in head if p.ndim > 1]
    others = [p for p in head if p.ndim <= 1]
    groups += [
        {"params": matrices, "weight_decay": recipe.weight_decay, "lr_scale": 1.0},
        {"params": others, "weight_decay": 0.0, "lr_scale": 1.0},
    ]
    return [group for group in groups if group["params"]]


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of row indices: successive permutations, so every image is seen each epoch."""
    queue = torch.empty(0, dtype=torch.int64)
    while True:
        while queue.numel() < batch_size:
            queue = torch.cat([queue, torch.randperm(n, generator=generator)])
        yield queue[:batch_size]
        queue = queue[batch_size:]


def _loss(logits: Mapping[str, torch.Tensor], labels: Mapping[str, torch.Tensor], smoothing: float):
    terms = [F.cross_entropy(logits[name], labels[name], label_smoothing=smoothing) for name in logits]
    return torch.stack(terms).mean()


@torch.no_grad()
def accuracies(
    classifier: Classifier,
    inputs: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    batch_size: int,
    tokens: bool,
) -> dict[str, float]:
    """``{label: accuracy}`` of the classifier in eval mode on normalised images (or prefix tokens)."""
    classifier.eval()
    correct = {name: 0 for name in labels}
    for start in range(0, inputs.shape[0], batch_size):
        chunk = inputs[start : start + batch_size]
        logits = classifier.forward_from(chunk) if tokens else classifier(chunk)
        for name in labels:
            correct[name] += int(
                (logits[name].argmax(dim=1) == labels[name][start : start + batch_size]).sum()
            )
    return {name: count / inputs.shape[0] for name, count in correct.items()}


def _prefix_tokens(classifier: Classifier, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    classifier.eval()
    return torch.cat(
        [classifier.frozen_prefix(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    )


def fit_classifier(
    classifier: Classifier,
    train: LabelledImages,
    val: LabelledImages,
    test: LabelledImages,
    normaliser: Normaliser,
    recipe: Recipe,
    lr: float,
    seed: int,
    eval_batch_size: int = 256,
    progress: bool = True,
    description: str = "fine-tune",
) -> FitOutcome:
    """Fine-tune ``classifier`` in place for ``recipe.steps`` steps at peak ``lr``, then score val and test.

    Args:
        classifier: with `Classifier.train_only_last` already applied for a partial fine-tune.
        train, val, test: the fit's labelled images (val chooses the hyper-parameters, test is reported).
        normaliser: the images' normalisation and the task's augmentation.
        recipe: steps, batch size, layer decay, schedule, smoothing (``drop_path`` is the classifier's).
        lr: peak learning rate of the heads; block ``i`` gets ``lr * lr_scale``.
        seed: seeds the batch order and every random draw of the fit (the caller's RNG is untouched).

    Returns:
        The `FitOutcome`.

    Raises:
        ValueError: for an empty training set or a non-positive lr.
    """
    if len(train) < 1:
        raise ValueError("fine-tuning needs at least one training image")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    start = time.perf_counter()
    device = next(classifier.parameters()).device
    train, val, test = (split.to(device) for split in (train, val, test))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cached = classifier.frozen_blocks > 0 and normaliser.augmentation.none
        if cached:
            train_tokens = _prefix_tokens(classifier, normaliser(train.images), eval_batch_size)
        groups = optimizer_groups(classifier, recipe)
        optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
        warmup = int(recipe.warmup_fraction * recipe.steps)
        batches = _batches(len(train), recipe.batch_size, torch.Generator().manual_seed(seed))
        losses: list[float] = []
        diverged = False
        train_seconds = 0.0
        bar = tqdm(range(recipe.steps), desc=description, leave=False, disable=not progress)
        for step in bar:
            tick = time.perf_counter()
            classifier.train()
            rate = learning_rate(step, recipe.steps, lr, warmup, recipe.min_lr) if recipe.steps > 1 else lr
            for group in optimizer.param_groups:
                group["lr"] = rate * group["lr_scale"]
            rows = next(batches).to(device)
            labels = {name: values[rows] for name, values in train.labels.items()}
            if cached:
                logits = classifier.forward_from(train_tokens[rows])
            else:
                logits = classifier(normaliser(train.images[rows], augment=True))
            loss = _loss(logits, labels, recipe.label_smoothing)
            if not torch.isfinite(loss):
                diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            train_seconds += time.perf_counter() - tick
            if step % 20 == 0:
                bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{rate:.1e}")
        bar.close()
        steps = len(losses)
        if diverged:
            nan = {name: math.nan for name in train.labels}
            val_accuracy, test_accuracy = nan, dict(nan)
        else:
            val_accuracy = _score(classifier, val, normaliser, eval_batch_size)
            test_accuracy = _score(classifier, test, normaliser, eval_batch_size)
    tail = losses[-max(1, steps // 10) :] if losses else [math.nan]
    return FitOutcome(
        val_accuracy=val_accuracy,
        test_accuracy=test_accuracy,
        steps=steps,
        seconds=time.perf_counter() - start,
        images_per_second=steps * recipe.batch_size / train_seconds if train_seconds > 0 else math.nan,
        final_loss=float(np.mean(tail)),
        diverged=diverged,
    )


def _score(classifier: Classifier, split: LabelledImages, normaliser: Normaliser, batch_size: int) -> dict:
    inputs = normaliser(split.images)
    return accuracies(classifier, inputs, split.labels, batch_size, tokens=False)
