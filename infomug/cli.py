"""The ``infomug`` command line: a thin argparse shell over the library.

Subcommands today: ``train`` (pre-train an encoder with MAE, MUG, CLIP or SimCLR into a run folder;
resumable; the same command under ``torchrun``), ``export`` (a run's encoder as a plain timm model with
timm's ``config.json``), ``measure`` (per layer of one or more checkpoints:
what the features know of input, labels and captions, and how they transfer), ``finetune`` (linear,
partial and full fine-tuning on named tasks against a from-scratch reference), ``mi`` (mutual
information between two saved arrays), ``entropy`` (of one), ``channel`` (I(X; f(X) + sigma Z) of saved
features of a deterministic encoder) and ``data`` (survey a dataset: usable and bad samples, captions,
the embedded world's factor entropies, a grid of samples).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import estimators
from estimators.api import ENTROPY_METHOD_HELP, ENTROPY_METHODS, MI_METHOD_HELP, MI_METHODS

from . import __version__
from .ablation.command import add_ablate_parser, run_ablate
from .arrays import load_array
from .cli_help import with_examples
from .finetune.command import add_finetune_parser, run_finetune
from .measure.command import add_measure_parser, run_measure
from .run_lock import FolderInUse

ARRAYS_HELP = (
    "Arrays: PATH.npy, PATH.npz[:KEY], PATH.csv|.tsv|.txt[:COL,COL,...] (columns by header name or"
    " 0-based number)."
)


def _parse_option(text: str) -> tuple[str, Any]:
    key, separator, raw = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    for convert in (int, float):
        try:
            return key, convert(raw)
        except ValueError:
            pass
    return key, raw


def _add_common_options(parser: argparse.ArgumentParser, knn: bool = True) -> None:
    if knn:
        parser.add_argument("--k", type=int, nargs="+", help="neighbours for kNN methods (several: averaged)")
    parser.add_argument("--seed", type=int, default=0, help="seed for jitter, splits and noise (default 0)")
    parser.add_argument("--no-uncertainty", action="store_true", help="skip the standard error (faster)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON here")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``infomug`` command."""
    parser = argparse.ArgumentParser(
        prog="infomug",
        description="Information measurements for representations (values in nats and bits).",
        **with_examples(
            "infomug train --out runs/mug",
            "infomug measure --ckpt runs/mug --out runs/mug/measure",
            "infomug train --help   # each command's options and examples",
        ),
    )
    parser.add_argument("--version", action="version", version=f"infomug {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="pre-train an encoder (mae, mug, clip, simclr) into a run folder",
        description="Train from a YAML config plus dotted overrides; with no option, the MUG CPU preset on"
        " the embedded world. A run folder that holds checkpoints resumes with the config it was trained"
        " with (give no --config or --set, or the same ones again: a setting that differs is refused); to"
        " change optim.* or the loop's settings (train.steps, intervals, device, precision), name the"
        " checkpoint: --resume RUN --out RUN --set train.steps=N. Ctrl-C or SIGTERM writes a checkpoint at"
        " the next step boundary and exits (status 130, 143). Under `torchrun --nproc_per_node=N -m"
        " infomug train ...` the same command trains with DDP.",
        **with_examples(
            "infomug train --config experiments/configs/mae_cpu.yaml --set train.steps=200 --out runs/mae",
            "infomug train --resume runs/mae --out runs/mae --set train.steps=400   # continue, longer",
            "torchrun --nproc_per_node=2 -m infomug train --config experiments/configs/mug_cpu.yaml"
            " --out runs/mug2",
        ),
    )
    train.add_argument(
        "--config",
        type=Path,
        metavar="YAML",
        help="run config (default: with no --set either, that of the checkpoint resumed or of the run"
        " folder; else the built-in defaults)",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, e.g. optim.lr=3e-4 or model.preset=mae_vit_tiny_patch4_32 (repeatable)",
    )
    train.add_argument(
        "--out", type=Path, metavar="RUN", help="run folder (default: runs/<objective>-<date>-<time>)"
    )
    resume = train.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        type=Path,
        metavar="CKPT",
        help="resume from this checkpoint or run: with no --config or --set, with its config; else only"
        " optim.* and the loop's settings (steps, intervals, device, precision...) may differ from it",
    )
    resume.add_argument(
        "--no-resume", action="store_true", help="refuse to continue a run folder that holds checkpoints"
    )
    train.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")

    methods = "; ".join(f"{name}: {text}" for name, text in MI_METHOD_HELP.items())
    mi = commands.add_parser(
        "mi",
        help="mutual information between two saved arrays",
        description=f"Estimate I(X; Y) between paired rows of two arrays. {ARRAYS_HELP}",
        **with_examples(
            "infomug mi X.npy Y.npy --method ksg --k 3 5 7",
            "infomug mi table.csv:a,b table.csv:label --method ross",
            "infomug mi X.npy Y.npy --method infonce --option batch_size=128 --json mi.json",
        ),
    )
    mi.add_argument("x", help="samples of X, [N] or [N, dx]")
    mi.add_argument("y", help="samples of Y, [N] or [N, dy], row i paired with row i of X")
    mi.add_argument("--method", default="auto", choices=sorted(MI_METHODS), help=methods)
    mi.add_argument("--algorithm", type=int, choices=(1, 2), help="KSG algorithm (ksg methods only)")
    mi.add_argument(
        "--option",
        type=_parse_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting of the method, e.g. batch_size=128 for neural bounds (repeatable)",
    )
    _add_common_options(mi)

    entropy = commands.add_parser(
        "entropy",
        help="entropy of one saved array",
        description=f"Estimate the entropy of the rows of one array (nats). {ARRAYS_HELP}",
        **with_examples(
            "infomug entropy X.npy --method kl --k 3", "infomug entropy labels.npy --method discrete"
        ),
    )
    entropy.add_argument("x", help="samples, [N] or [N, d]")
    entropy_methods = "; ".join(f"{name}: {text}" for name, text in ENTROPY_METHOD_HELP.items())
    entropy.add_argument(
        "--method",
        default="kl",
        choices=sorted(ENTROPY_METHODS),
        help=f"{entropy_methods} (default kl)",
    )
    _add_common_options(entropy)

    channel = commands.add_parser(
        "channel",
        help="I(X; f(X) + sigma Z) of saved encoder features",
        description="Information through a Gaussian noise channel on the outputs f(x_i) of a deterministic"
        f" encoder: a property of sigma, so give it. {ARRAYS_HELP}",
        **with_examples(
            "infomug channel features.npy --relative-sigma 0.1 1 10",
            "infomug channel features.npz:block_5 --sigma 0.5 --json channel.json",
        ),
    )
    channel.add_argument("features", help="encoder outputs, [N, d]")
    level = channel.add_mutually_exclusive_group(required=True)
    level.add_argument("--sigma", type=float, nargs="+", help="noise std in the features' units")
    level.add_argument(
        "--relative-sigma", type=float, nargs="+", help="noise std as a multiple of the feature scale"
    )
    _add_common_options(channel, knn=False)

    data = commands.add_parser(
        "data",
        help="survey a dataset before training on it",
        description="Read a dataset as training would and report usable and bad samples (by reason),"
        " how many carry a caption (so which objectives it serves: mae and simclr need none), caption"
        " lengths and examples and, for the embedded world, each factor's entropy and the"
        " information captions carry about it (nats). Sources: world, digits (embedded), webdataset,"
        " csv, coco, imagefolder (give PATH).",
        **with_examples(
            "infomug data world --grid world.png",
            "infomug data imagefolder ~/photos --limit 200",
            "infomug data csv pairs.tsv --set image_root=images --json survey.json",
        ),
    )
    data.add_argument("source", help="world | digits | webdataset | csv | coco | imagefolder")
    data.add_argument("path", nargs="?", help="shard pattern, CSV/TSV, COCO JSON or image-folder root")
    data.add_argument("--split", default="train", choices=("train", "eval"))
    data.add_argument("--limit", type=int, default=1000, help="most samples to read (default 1000)")
    data.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a data setting (as data.KEY of `infomug train`), e.g. image_root=imgs,"
        " csv_caption_key=caption, world.irrelevant_caption_fraction=0.5 (repeatable)",
    )
    data.add_argument("--grid", type=Path, metavar="PNG", help="save the first 16 samples with captions here")
    data.add_argument("--json", type=Path, metavar="PATH", help="also write the survey as JSON here")
    export = commands.add_parser(
        "export",
        help="write a run's encoder as a plain timm model (weights + timm's config.json)",
        description="Write the encoder of a checkpoint as a timm VisionTransformer: model.safetensors and"
        " timm's config.json (architecture, model_args, pretrained_cfg with the input size and the"
        " normalisation the run trained with), loadable with timm.create_model('local-dir:FOLDER',"
        " pretrained=True), and by `infomug measure --timm FOLDER` and `infomug finetune --timm FOLDER`.",
        **with_examples(
            "infomug export runs/mae --out runs/mae/export",
            "infomug export runs/mae/checkpoints/step_00001000 --out exports/mae_1000",
        ),
    )
    export.add_argument(
        "ckpt", type=Path, help="a run folder (its latest checkpoint), step folder or model.safetensors"
    )
    export.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FOLDER",
        help="export folder (model.safetensors + config.json), or a .safetensors file (config.json"
        " beside it)",
    )
    add_measure_parser(commands)
    add_finetune_parser(commands)
    add_ablate_parser(commands)
    return parser


def _takes(function: Callable[..., Any], name: str) -> bool:
    parameters = inspect.signature(function).parameters  # follows __wrapped__
    return name in parameters and parameters[name].kind is not inspect.Parameter.VAR_KEYWORD


def _options(function: Callable[..., Any], args: argparse.Namespace) -> dict[str, Any]:
    requested: dict[str, Any] = {"seed": args.seed}
    flags = {"seed": "--seed"}
    if args.no_uncertainty:
        requested["uncertainty"], flags["uncertainty"] = False, "--no-uncertainty"
    if getattr(args, "k", None) is not None:
        requested["k"], flags["k"] = (args.k[0] if len(args.k) == 1 else tuple(args.k)), "--k"
    if getattr(args, "algorithm", None) is not None:
        requested["algorithm"], flags["algorithm"] = args.algorithm, "--algorithm"
    for name, flag in flags.items():
        if not _takes(function, name):
            raise ValueError(f"method {args.method!r} does not take {flag}")
    requested.update(dict(getattr(args, "option", [])))
    return requested


def _run_mi(args: argparse.Namespace) -> list[estimators.Estimate]:
    function = MI_METHODS[args.method]
    if args.algorithm is not None and args.method not in ("ksg", "ksg1"):
        raise ValueError(f"method {args.method!r} does not take --algorithm")
    x, y = load_array(args.x), load_array(args.y)
    return [estimators.estimate(x, y, method=args.method, **_options(function, args))]


def _run_entropy(args: argparse.Namespace) -> list[estimators.Estimate]:
    function = ENTROPY_METHODS[args.method]
    return [estimators.estimate_entropy(load_array(args.x), method=args.method, **_options(function, args))]


def _run_channel(args: argparse.Namespace) -> list[estimators.Estimate]:
    features = load_array(args.features)
    options = {"seed": args.seed, "uncertainty": not args.no_uncertainty}
    if args.sigma is not None:
        return [estimators.noisy_channel_mi(features, sigma=level, **options) for level in args.sigma]
    return [
        estimators.noisy_channel_mi(features, relative_sigma=level, **options)
        for level in args.relative_sigma
    ]


def _run_data(args: argparse.Namespace) -> int:
    # Imported here so that the estimator commands do not pay for the data stack.
    from .data import DataConfig, build_dataset
    from .data.survey import iter_samples, save_sample_grid, survey_dataset
    from .models import OBJECTIVE_NAMES
    from .train.config import apply_overrides
    from .train.engine import CAPTION_OBJECTIVES
    from .train.typed import build_dataclass

    for text in args.set:
        if text.partition("=")[0] in ("source", "path"):
            raise ValueError(f"give {text.partition('=')[0]} as a positional argument, not with --set")
    values = apply_overrides({"source": args.source, "path": args.path}, args.set)
    try:
        config = build_dataclass(DataConfig, values)
    except ValueError as error:
        if str(error).startswith("unknown config key"):
            raise ValueError(f"unknown data setting: {error}") from error
        raise
    # Samples without a caption are read, not skipped, so the survey can say which objectives they serve.
    dataset = build_dataset(config, split=args.split, augmentation="eval", require_captions=False)
    name = f"{args.source} {args.path}" if args.path else args.source
    survey = survey_dataset(
        dataset,
        f"{name} ({args.split})",
        limit=args.limit,
        objectives=OBJECTIVE_NAMES,
        caption_objectives=CAPTION_OBJECTIVES,
    )
    print(survey)
    if args.grid is not None:
        samples = list(iter_samples(dataset, 16))
        save_sample_grid(samples, args.grid, dataset.mean, dataset.std)
        print(f"grid of {len(samples)} samples: {args.grid}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(survey.to_dict(), indent=2) + "\n")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from .models.export import CONFIG_FILE
    from .train.export import export_checkpoint

    weights = export_checkpoint(args.ckpt, args.out)
    folder = weights.parent
    print(f"encoder: {weights}\ntimm config: {folder / CONFIG_FILE}")
    print(
        f"load it: timm.create_model('local-dir:{folder}', pretrained=True); infomug measure --timm {folder}"
    )
    return 0


def _run_train(args: argparse.Namespace) -> int:
    import logging
    import os
    import time

    from .train import TrainingDiverged, TrainingInterrupted, config_from_files, latest_checkpoint, train
    from .train.write_errors import describe_write_error

    # torchrun's environment, read here because the process group is created (and gone) inside train.
    rank, processes = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    # Other processes would repeat every line of the main one: they report errors only.
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.ERROR,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    resume = args.resume if args.resume is not None else not args.no_resume
    config = config_from_files(args.config, args.set, args.out, resume)
    out = args.out
    if out is None:
        if processes > 1:
            raise ValueError("give --out under torchrun (every process must name the same run folder)")
        out = Path("runs") / f"{config.model.objective}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        result = train(config, out, resume=resume, progress=False if args.no_progress else None)
    except FileNotFoundError:
        raise  # main's message: a config, checkpoint or data file named wrongly
    except OSError as error:
        if rank == 0:
            print(
                f"infomug train: error: {describe_write_error(error, out)}; {_resumable(out)}",
                file=sys.stderr,
            )
        return 2
    except TrainingDiverged as error:
        if rank == 0:  # every process stops at the same step, with the same message
            print(f"infomug train: {error}", file=sys.stderr)
        return 3
    except TrainingInterrupted as stopped:
        if rank == 0:  # every process stopped at the same step
            print(f"\ninfomug train: {stopped}", file=sys.stderr)
        return stopped.exit_status
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the first step
        if rank == 0:
            latest = latest_checkpoint(out)
            kept = f"the latest checkpoint is {latest}" if latest else "no checkpoint was written yet"
            print(f"\ninfomug train: interrupted; {kept}. Run the same command to resume.", file=sys.stderr)
        return 130
    if rank == 0:
        losses = {k: round(v, 4) for k, v in result.train_metrics.items() if k.startswith("loss")}
        print(f"run folder: {result.run_dir}")
        print(f"steps: {result.steps}  last checkpoint: {result.checkpoint}  train {losses}")
        if result.eval_metrics is not None:
            loss = result.eval_metrics["eval_loss"]
            print(f"eval loss: {loss:.4f}  best checkpoint: {result.best_checkpoint}")
    return 0


def _resumable(run_dir: Path) -> str:
    """What a failed write left to resume from (the checkpoints before it are written whole or not at all)."""
    from .train import latest_checkpoint

    try:
        latest = latest_checkpoint(run_dir)
    except OSError:
        latest = None
    if latest is None:
        return "no checkpoint was written yet; once that is fixed, run the same command to start again"
    return f"the latest checkpoint, {latest}, is intact: once that is fixed, run the same command to resume"


COMMANDS = {"mi": _run_mi, "entropy": _run_entropy, "channel": _run_channel}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``infomug`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "data":
            return _run_data(args)
        if args.command == "export":
            return _run_export(args)
        if args.command == "train":
            return _run_train(args)
        if args.command == "measure":
            return run_measure(args)
        if args.command == "finetune":
            return run_finetune(args)
        if args.command == "ablate":
            return run_ablate(args)
        results = COMMANDS[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, FolderInUse) as error:
        print(f"infomug {args.command}: error: {error}", file=sys.stderr)
        return 2
    for result in results:
        print(result)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = [result.to_dict() for result in results]
        args.json.write_text(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2) + "\n")
    return 0
