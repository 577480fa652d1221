"""The training engine: one run's set-up, step, evaluation, samples, checkpoints and loop (`TrainingRun`).

`infomug.train.trainer.train` builds a `TrainingRun` and calls `fit`.

A step is one optimizer update over ``train.batch_size`` images: ``accumulation_steps`` micro-batches on
each of ``world_size`` processes. Randomness that shapes the result (data order, augmentations, masks) is
drawn from generators seeded by (seed, step, ...), so a resumed run repeats an uninterrupted one bit for
bit on CPU, and a ``torchrun`` run sees the same global batches and masks as a single process.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, IterableDataset
from tqdm.auto import tqdm

from infomug import __version__, dist
from infomug.data import CaptionCollate, build_dataset
from infomug.objectives import OBJECTIVES, build_objective
from infomug.objectives.clip import MAX_LOGIT_SCALE

from .checkpoint import load_model_weights, load_train_state, save_checkpoint
from .checkpoint_folders import CheckpointError, best_checkpoint, step_folder
from .checksums import verify_file
from .config import RunConfig, config_to_dict, save_config
from .distributed import barrier, max_across_processes, mean_across_processes
from .init_from import INIT_RECORD_FILE, init_encoder_from
from .interrupt import StopSignals, TrainingInterrupted
from .loader import TrainBatches, eval_batches, first_samples
from .loss_plot import LOSS_PLOT_FILE, save_loss_plot
from .metrics import MetricsLog
from .optim import build_optimizer, learning_rate, set_learning_rate, set_optimizer_settings
from .rng import capture_rng_state, derive_seed, restore_rng_state, seed_everything
from .samples import save_training_samples
from .tensorboard_log import TensorBoardLog, require_tensorboard
from .tokenizer import TOKENIZER_FILE, run_tokenizer

logger = logging.getLogger(__name__)

TRAIN_STATE_VERSION = 1
SAMPLE_IMAGES = 8
CAPTION_OBJECTIVES = ("mug", "clip")
MASKED_OBJECTIVES = ("mae", "mug")
TRAIN_STATE_KEYS = ("version", "step", "position", "optimizer", "rng", "best")


class TrainingDiverged(RuntimeError):
    """A loss term, the gradient or a weight became non-finite; the run stopped, its last good checkpoint
    kept.

    A non-finite loss or gradient stops the run before the bad update; a weight an update made
    non-finite (checked when a checkpoint is due) stops it before that checkpoint is written.

    Attributes:
        step: the optimizer step (0-based) whose loss was non-finite, or whose update made a weight so.
        term: the first non-finite loss term (``"loss_caption"``, ...), ``"gradient norm"`` or
            ``"weight NAME"``.
        checkpoint: the last good checkpoint (None if none was written yet).
    """

    def __init__(self, step: int, term: str, value: float, checkpoint: Path | None) -> None:
        kept = f"last good checkpoint: {checkpoint}" if checkpoint else "no checkpoint was written yet"
        advice = "Lower optim.lr, raise optim.warmup_steps or set optim.grad_clip_norm"
        if checkpoint:
            advice += " and resume from the last good checkpoint (--resume, or train(resume=...))"
        stopped = (
            " after that step's update; no checkpoint of these weights was written"
            if term.startswith(("weight", "a weight"))
            else "; stopped before updating the weights"
        )
        super().__init__(f"training diverged at step {step}: {term} is {value}{stopped} ({kept}). {advice}.")
        self.step, self.term, self.checkpoint = step, term, checkpoint


@dataclass
class RunResult:
    """What a finished `train` call leaves behind.

    Attributes:
        run_dir: the run folder.
        steps: optimizer steps completed (``train.steps``).
        checkpoint: the last checkpoint folder.
        best_checkpoint: the checkpoint with the lowest eval loss (None if no eval ran at a checkpoint).
        train_metrics: the last logged training record (loss terms averaged over processes, nats).
        eval_metrics: the last eval record (None if no eval split).
        resumed_from: the step the run resumed from (None for a fresh run).
        seconds: wall time of this call.
        config: the resolved config.
    """

    run_dir: Path
    steps: int
    checkpoint: Path
    best_checkpoint: Path | None
    train_metrics: dict[str, Any]
    eval_metrics: dict[str, Any] | None
    resumed_from: int | None
    seconds: float
    config: RunConfig = field(repr=False)


def _micro_batch(config: RunConfig) -> int:
    processes, accumulation = dist.world_size(), config.train.accumulation_steps
    if config.train.batch_size % (processes * accumulation):
        raise ValueError(
            f"train.batch_size {config.train.batch_size} does not split into {processes} process(es) x"
            f" {accumulation} accumulation step(s)"
        )
    return config.train.batch_size // (processes * accumulation)


def _check_split_size(dataset: Dataset | IterableDataset, split: str, local_batch: int) -> None:
    """Refuse, before any training, a map-style split smaller than one global micro-batch."""
    if isinstance(dataset, IterableDataset):
        return  # its length is unknown: an epoch without a full batch is an error when it is read
    needed = local_batch * dist.world_size()
    if len(dataset) < needed:
        raise ValueError(
            f"the {split} split has {len(dataset)} samples, fewer than one global micro-batch of {needed}"
            f" (train.batch_size / train.accumulation_steps): enlarge the {split} split or lower"
            " train.batch_size"
        )


def _non_finite(model: nn.Module) -> list[str]:
    """The names of ``model``'s floating-point tensors that hold a NaN or an infinity."""
    state = {name: t for name, t in model.state_dict().items() if t.is_floating_point() and t.numel()}
    if not state:
        return []
    finite = torch.stack([torch.isfinite(t).all() for t in state.values()]).tolist()  # one sync
    return [name for name, ok in zip(state, finite, strict=True) if not ok]


def _to_device(batch: dict, device: torch.device) -> dict:
    moved = dict(batch)
    for key in ("image", "tokens", "lengths", "mask_noise"):
        if key in moved:
            moved[key] = moved[key].to(device, non_blocking=True)
    return moved


class TrainingRun:
    """The state of one training run (model, optimizer, data, logs); `fit` is the loop.

    Built by `infomug.train.trainer.train` after the config is resolved and the process group joined.
    """

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        device: torch.device,
        checkpoint: Path | None,
        progress: bool | None,
    ) -> None:
        self.config, self.run_dir, self.device, self.progress = config, run_dir, device, progress
        self.main = dist.is_main_process()
        self.objective = config.model.objective
        self.local_batch = _micro_batch(config)
        self.precision = config.train.precision
        if self.precision == "auto":
            self.precision = "bf16" if device.type == "cuda" else "fp32"
        if self.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, run_dir / "config.yaml")
        seed = config.train.seed
        seed_everything(derive_seed(seed, "init"))

        augmentation = "two_view" if self.objective == "simclr" else "pretrain"
        # An objective that reads no caption trains on image-only shards and CSVs too.
        captions = self.objective in CAPTION_OBJECTIVES
        self.train_data = build_dataset(config.data, "train", augmentation, require_captions=captions)
        if captions and not getattr(self.train_data, "has_captions", True):
            raise ValueError(
                f"model.objective={self.objective} reads captions but data source {config.data.source!r}"
                f" has none: train {', '.join(o for o in OBJECTIVES if o not in CAPTION_OBJECTIVES)}"
                " on it, or give captioned data"
            )
        _check_split_size(self.train_data, "train", self.local_batch)
        self.eval_data = None
        if config.data.synthetic or config.data.eval_path:
            evaluation = "two_view" if self.objective == "simclr" else "eval"
            self.eval_data = build_dataset(config.data, "eval", evaluation, require_captions=captions)
            _check_split_size(self.eval_data, "eval", self.local_batch)
        elif self.main:
            logger.warning("data.eval_path is not set: no eval loss, and checkpoints have no 'best'")
        self.tokenizer, self.tokenizer_file = None, None
        if self.objective in CAPTION_OBJECTIVES:
            self.tokenizer, self.tokenizer_file = self._tokenizer(checkpoint)
        self.collate = CaptionCollate(self.tokenizer, context_length=config.model.context_length)

        model = build_objective(config.model)
        if config.model.init_from is not None and checkpoint is None:
            # A resumed run restores its own weights below: init_from is read at a fresh start only.
            record = run_dir / INIT_RECORD_FILE if self.main else None
            init_encoder_from(model, config.model.init_from, record)
        if config.train.gradient_checkpointing:
            model.encoder.vit.set_grad_checkpointing(True)
        self.model = model.to(device)
        self.optimizer = build_optimizer(
            self.model,
            config.optim.lr,
            config.optim.weight_decay,
            tuple(config.optim.betas),
            config.optim.eps,
        )
        self.step, position = 0, {"epoch": 0, "batch": 0}
        self.best: dict[str, Any] = {"eval_loss": None, "step": None}
        self.last_checkpoint = checkpoint
        if checkpoint is not None:
            position = self._restore(checkpoint)
        self.resumed_from = self.step if checkpoint is not None else None
        self.wrapped: nn.Module = self.model
        if dist.is_distributed():
            device_ids = [device.index] if device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.model, device_ids=device_ids)
        self.batches = TrainBatches(
            self.train_data,
            self.collate,
            self.local_batch,
            seed,
            num_workers=config.train.num_workers,
            pin_memory=device.type == "cuda",
            **position,
        )
        self.log = MetricsLog(run_dir / "metrics.jsonl", resume_step=self.resumed_from, enabled=self.main)
        self.tensorboard: TensorBoardLog | None = None
        if config.train.tensorboard:
            require_tensorboard()  # on every process: none may go on to wait for one that stopped here
            if self.main:
                self.tensorboard = TensorBoardLog(run_dir, resume_step=self.resumed_from)

    # -- set-up -------------------------------------------------------------------------------------

    def _tokenizer(self, checkpoint: Path | None):
        settings = self.config.tokenizer
        name = settings.resolve(self.config.model.vocab_size)
        saved = checkpoint / TOKENIZER_FILE if checkpoint is not None else None
        if name == "bpe" and settings.path is None and saved is not None and saved.is_symlink():
            # Checked on every process, before anything is copied: a link may lead anywhere.
            raise CheckpointError(
                f"{saved} is a symbolic link (to {os.readlink(saved)}), not a file of the checkpoint:"
                " refused. Replace it with the tokenizer file itself, or set tokenizer.path"
            )
        if self.main and name == "bpe" and settings.path is None and saved is not None and saved.is_file():
            # The weights were trained with the checkpoint's tokenizer; resuming into another folder
            # would otherwise train a new BPE, which need not give the same ids.
            verify_file(checkpoint, TOKENIZER_FILE)
            shutil.copyfile(saved, self.run_dir / TOKENIZER_FILE)
        arguments = dict(
            name=name,
            vocab_size=self.config.model.vocab_size,
            run_dir=self.run_dir,
            dataset=self.train_data,
            path=settings.path,
            train_captions=settings.train_captions,
        )
        if self.main:
            result = run_tokenizer(**arguments, write=True)
        barrier()
        if not self.main:
            result = run_tokenizer(**arguments, write=False)
        return result

    def _restore(self, checkpoint: Path) -> dict[str, int]:
        load_model_weights(self.model, checkpoint)
        bad = _non_finite(self.model)
        if bad:
            raise CheckpointError(
                f"{checkpoint}: its weights are not finite ({', '.join(bad[:3])}"
                f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}): it cannot be resumed; resume"
                " from an earlier checkpoint (--resume, or train(resume=...))"
            )
        state = load_train_state(checkpoint)
        missing = [key for key in TRAIN_STATE_KEYS if key not in state]
        if missing:
            raise CheckpointError(
                f"{checkpoint}: the training state lacks {', '.join(missing)}: it was not written by"
                " infomug train"
            )
        if state["version"] != TRAIN_STATE_VERSION:
            raise CheckpointError(
                f"{checkpoint}: training state version {state['version']!r} (written by infomug"
                f" {state.get('infomug_version', '?')}); this infomug {__version__} reads version"
                f" {TRAIN_STATE_VERSION}"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        # The state dict brings the saved run's hyper-parameters; a resume may have changed them.
        optim = self.config.optim
        set_optimizer_settings(self.optimizer, optim.weight_decay, tuple(optim.betas), optim.eps)
        restore_rng_state(state["rng"])
        self.step = int(state["step"])
        self.best = dict(state["best"])
        if self.main:
            if state.get("world_size") != dist.world_size() and isinstance(self.train_data, IterableDataset):
                logger.warning("resuming a data stream on another number of processes: its order changes")
            logger.info("resumed from %s (step %d)", checkpoint, self.step)
        return {"epoch": int(state["position"]["epoch"]), "batch": int(state["position"]["batch"])}

    # -- one step -----------------------------------------------------------------------------------

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _mask_noise(self, step: int, micro: int, kind: str = "mask") -> torch.Tensor:
        # The noise of the whole global micro-batch is drawn once and sliced, so each image's mask is the
        # same however many processes share the batch.
        length = (self.config.model.img_size // self.config.model.patch_size) ** 2
        generator = torch.Generator().manual_seed(derive_seed(self.config.train.seed, kind, step, micro))
        noise = torch.rand(self.local_batch * dist.world_size(), length, generator=generator)
        rows = slice(dist.rank() * self.local_batch, (dist.rank() + 1) * self.local_batch)
        return noise[rows]

    def _prepare(self, batch: dict, step: int, micro: int, kind: str = "mask") -> dict:
        if self.objective in MASKED_OBJECTIVES:
            batch = {**batch, "mask_noise": self._mask_noise(step, micro, kind)}
        return _to_device(batch, self.device)

    def _train_step(self) -> tuple[float, float, dict[str, float]]:
        """One optimizer step; returns (seconds spent waiting for data, gradient norm, loss terms).

        The loss terms (nats) are averaged over the accumulated micro-batches and over processes.
        """
        accumulation = self.config.train.accumulation_steps
        waited = 0.0
        terms: dict[str, torch.Tensor] = {}
        for micro in range(accumulation):
            tick = time.perf_counter()
            batch = self._prepare(next(self.batches), self.step, micro)
            waited += time.perf_counter() - tick
            last = micro == accumulation - 1
            sync = contextlib.nullcontext() if last or self.wrapped is self.model else self.wrapped.no_sync()
            with sync:
                with self._autocast():
                    out = self.wrapped(batch)
                (out["loss"] / accumulation).backward()
            for name, value in out.items():
                if name.startswith("loss"):
                    terms[name] = terms.get(name, 0.0) + value.detach().float() / accumulation
        clip = self.config.optim.grad_clip_norm
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip else math.inf)
        # The terms are checked as well as the norm: a logged term that the total does not carry
        # (detached, or weighted by 0) can be non-finite while the gradient is fine.
        names = list(terms)
        values = torch.stack([terms[name] for name in names])
        if dist.is_distributed():
            # A term can go bad on one process only, and all must stop at the same step or the others
            # hang in the next collective (the norm, of all-reduced gradients, is the same everywhere).
            torch.distributed.all_reduce(values)
            values /= dist.world_size()
        host = torch.cat([norm.detach().float().reshape(1), values]).tolist()  # one sync per step
        norm_value, averaged = host[0], dict(zip(names, host[1:], strict=True))
        bad = [(name, value) for name, value in averaged.items() if not math.isfinite(value)]
        if bad or not math.isfinite(norm_value):
            # Name the term that went bad rather than the total it spoiled.
            bad = [item for item in bad if item[0] != "loss"] or bad
            term, value = bad[0] if bad else ("gradient norm", norm_value)
            self.optimizer.zero_grad(set_to_none=True)
            self.log.write({"kind": "event", "step": self.step, "event": "diverged", "term": term})
            raise TrainingDiverged(self.step, term, value, self.last_checkpoint)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.objective == "clip":
            # OpenCLIP clamps the learned temperature after each update: logits scaled by at most 100.
            with torch.no_grad():
                self.model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        return waited, norm_value, averaged

    # -- records, evaluation, samples, checkpoints --------------------------------------------------

    def _record(self, record: dict[str, Any]) -> None:
        """A train or eval record to ``metrics.jsonl``, and to TensorBoard when it is on."""
        self.log.write(record)
        if self.tensorboard is not None:
            self.tensorboard.write(record)

    @torch.no_grad()
    def _evaluate(self) -> dict[str, Any] | None:
        if self.eval_data is None:
            return None
        settings = self.config.train
        self.model.eval()
        totals: dict[str, float] = {}
        count = 0
        batches = eval_batches(
            self.eval_data,
            self.collate,
            self.local_batch,
            settings.eval_batches,
            derive_seed(settings.seed, "eval"),
        )
        try:
            for index, batch in enumerate(batches):
                with self._autocast():
                    out = self.model(self._prepare(batch, 0, index, kind="eval-mask"))
                for name, value in out.items():
                    if name.startswith("loss"):
                        totals[name] = totals.get(name, 0.0) + float(value)
                count += 1
        finally:
            self.model.train()
        if count == 0:
            if self.main:
                logger.warning("the eval split yielded no full batch of %d: eval skipped", self.local_batch)
            return None
        means = mean_across_processes({f"eval_{k}": v / count for k, v in totals.items()}, self.device)
        return {"kind": "eval", "step": self.step, "epoch": self.batches.epoch, **means}

    def _save_samples(self) -> None:
        if self.objective not in MASKED_OBJECTIVES or not self.main:
            return
        source = self.eval_data if self.eval_data is not None else self.train_data
        # The first images of the split, read by this process alone: eval_batches would need every
        # process, and a global batch of them.
        batch = first_samples(
            source, self.collate, SAMPLE_IMAGES, derive_seed(self.config.train.seed, "samples")
        )
        if batch is None:
            logger.warning(
                "the %s split yielded no image: no sample PNG",
                "eval" if source is self.eval_data else "train",
            )
            return
        images = batch["image"].to(self.device)
        path = self.run_dir / "samples" / f"step_{self.step:08d}.png"
        save_training_samples(
            self.model,
            images,
            path,
            source.mean,
            source.std,
            batch["captions"],
            self.tokenizer,
            seed=derive_seed(self.config.train.seed, "sample-mask"),
        )

    def _save_checkpoint(self, evaluation: dict[str, Any] | None) -> None:
        # The loss and gradient are checked at every step, the weights an update made of them only here:
        # a checkpoint is the last good one only if its weights are finite. Agreed on by every process.
        bad = _non_finite(self.model)
        if max_across_processes([float(bool(bad))], self.device)[0]:
            term, value = "a weight (on another process)", math.nan
            if bad:
                tensor = self.model.state_dict()[bad[0]]
                term, value = f"weight {bad[0]}", float(tensor[~torch.isfinite(tensor)].flatten()[0])
            self.log.write({"kind": "event", "step": self.step - 1, "event": "diverged", "term": term})
            raise TrainingDiverged(self.step - 1, term, value, self.last_checkpoint)
        is_best = False
        if evaluation is not None and evaluation["step"] == self.step:
            loss = evaluation["eval_loss"]
            if self.best["eval_loss"] is None or loss < self.best["eval_loss"]:
                self.best = {"eval_loss": loss, "step": self.step}
                is_best = True
        if self.main:
            state = {
                "version": TRAIN_STATE_VERSION,
                "step": self.step,
                "position": self.batches.position(),
                "optimizer": self.optimizer.state_dict(),
                "rng": capture_rng_state(),
                "best": dict(self.best),
                "world_size": dist.world_size(),
                "infomug_version": __version__,
            }
            extra = {"tokenizer.json": self.tokenizer_file} if self.tokenizer_file else None
            self.last_checkpoint = save_checkpoint(
                self.run_dir,
                self.step,
                self.model,
                state,
                config_to_dict(self.config),
                keep_last=self.config.train.keep_checkpoints,
                is_best=is_best,
                extra_files=extra,
            )
            save_loss_plot(self.run_dir / "metrics.jsonl", self.run_dir / LOSS_PLOT_FILE)
        barrier()
        if not self.main:
            self.last_checkpoint = step_folder(self.run_dir, self.step)
        self.checkpointed_at = time.monotonic()

    def _stop_and_overdue(self, signals: StopSignals) -> tuple[int | None, bool]:
        """(the stop signal received on any process or None, whether a time-based checkpoint is due).

        Under ``torchrun`` one all-reduce makes every process take the same decision at the same step: a
        signal may reach one process only, or each at another step, and clocks differ, yet a process that
        stopped or checkpointed alone would leave the others waiting in their next collective.
        """
        minutes = self.config.train.checkpoint_minutes
        overdue = bool(minutes) and time.monotonic() - self.checkpointed_at >= 60 * minutes
        received, overdue = max_across_processes([float(signals.received or 0), float(overdue)], self.device)
        return (int(received) or None), bool(overdue)

    # -- the loop -----------------------------------------------------------------------------------

    def fit(self, started: float) -> RunResult:
        """Train to ``train.steps``; return the `RunResult`.

        Raises:
            TrainingInterrupted: SIGINT or SIGTERM arrived; a checkpoint was written at the next step
                boundary (see `infomug.train.interrupt`).
            TrainingDiverged: a loss term or the gradient norm was non-finite.
        """
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        bar = tqdm(
            total=self.config.train.steps,
            initial=self.step,
            disable=not (self.main and show),
            desc="train",
            unit="step",
        )
        signals = StopSignals(abort_on_repeat=not dist.is_distributed())
        with signals, bar, contextlib.ExitStack() as closing:
            if self.tensorboard is not None:
                closing.callback(self.tensorboard.close)
            train_record, evaluation = self._loop(signals, bar, show, started)
        best = self.best["step"]
        return RunResult(
            run_dir=self.run_dir,
            steps=self.step,
            checkpoint=self.last_checkpoint,
            best_checkpoint=best_checkpoint(self.run_dir) if best is not None else None,
            train_metrics=train_record,
            eval_metrics=evaluation,
            resumed_from=self.resumed_from,
            seconds=time.perf_counter() - started,
            config=self.config,
        )

    def _loop(
        self, signals: StopSignals, bar: tqdm, show: bool, started: float
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The steps of `fit`; returns the last train record and the last eval record."""
        settings = self.config.train
        total = settings.steps
        totals: dict[str, float] = {}
        waited, norms, interval_steps, tick = 0.0, 0.0, 0, time.perf_counter()
        train_record: dict[str, Any] = {}
        evaluation: dict[str, Any] | None = None
        self.checkpointed_at = time.monotonic()
        self.model.train()
        while self.step < total:
            lr = learning_rate(
                self.step,
                total,
                self.config.optim.lr,
                self.config.optim.warmup_steps,
                self.config.optim.min_lr,
            )
            set_learning_rate(self.optimizer, lr)
            step_waited, norm, terms = self._train_step()
            for name, value in terms.items():
                totals[name] = totals.get(name, 0.0) + value
            waited += step_waited
            norms += norm
            interval_steps += 1
            self.step += 1
            bar.update(1)
            last = self.step == total
            stop, overdue = self._stop_and_overdue(signals)
            stop = None if last else stop  # the last step finishes the run anyway
            if stop is not None and self.main:
                logger.warning(
                    "%s received: writing a checkpoint at step %d, then stopping",
                    signal.Signals(stop).name,
                    self.step,
                )
            checkpoint = (
                (settings.checkpoint_every and self.step % settings.checkpoint_every == 0)
                or last
                or overdue
                or stop is not None
            )
            # Every checkpoint step gets a record, so a run resumed from any checkpoint leaves no
            # gap in metrics.jsonl.
            if self.step % settings.log_every == 0 or checkpoint:
                elapsed = time.perf_counter() - tick
                means = {name: value / interval_steps for name, value in totals.items()}
                train_record = {
                    "kind": "train",
                    "step": self.step,
                    "epoch": self.batches.epoch,
                    **means,
                    "lr": lr,
                    "grad_norm": norms / interval_steps,
                    "images_per_s": interval_steps * settings.batch_size / elapsed,
                    "data_fraction": waited / elapsed,
                    "seconds": time.perf_counter() - started,
                }
                self._record(train_record)
                bar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{lr:.2e}")
                if not show and self.main:
                    terms = " ".join(f"{k} {v:.4f}" for k, v in means.items())
                    logger.info(
                        "step %d/%d %s lr %.2e %.0f img/s",
                        self.step,
                        total,
                        terms,
                        lr,
                        train_record["images_per_s"],
                    )
                totals, waited, norms, interval_steps, tick = {}, 0.0, 0.0, 0, time.perf_counter()
            # Eval, samples and checkpoints are not training throughput: their time is left out.
            # A stopping run skips eval and samples: a pre-empted job has seconds left.
            paused = time.perf_counter()
            if stop is None and ((settings.eval_every and self.step % settings.eval_every == 0) or last):
                evaluation = self._evaluate() or evaluation
                if evaluation is not None and evaluation["step"] == self.step:
                    self._record(evaluation)
            if stop is None and settings.sample_every and (self.step % settings.sample_every == 0 or last):
                self._save_samples()
            if checkpoint:
                self._save_checkpoint(evaluation)
            if stop is not None:
                raise TrainingInterrupted(self.step, stop, self.last_checkpoint, self.run_dir)
            tick += time.perf_counter() - paused
        return train_record, evaluation
