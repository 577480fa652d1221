"""``infomug measure``: the argparse shell over `infomug.measure.measure`."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from infomug.cli_help import with_examples

if TYPE_CHECKING:  # the measure stack is imported only when the command runs
    from infomug.measure.results import Report

BUDGET_SETTINGS_HELP = (
    "a budget setting, e.g. images=2000, channel_sigmas=0.1,1.0, caption_layers=all, uncertainty=false"
    " (repeatable; see infomug.measure.Budget)"
)


def add_measure_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``measure`` subcommand to ``commands``."""
    parser = commands.add_parser(
        "measure",
        help="how much each layer of an encoder knows, and how well it transfers",
        description="Extract features of each layer of one or more checkpoints on the same eval data and"
        " report I(T; label), I(X; T_sigma), H(T), effective rank, I(T; caption), the decoders' bounds and"
        " linear-probe / k-NN accuracy, every number with its estimator, settings and uncertainty."
        " Writes measure.json, measure.md and plots into --out.",
        **with_examples(
            "infomug measure --ckpt runs/mae --ckpt runs/clip --out runs/mae_vs_clip",
            "infomug measure --ckpt runs/mug --layers last --images 2000 --budget-set uncertainty=false",
            "infomug measure --timm vit_small_patch16_224:weights.pth --data csv --set eval_path=val.tsv",
        ),
    )
    parser.add_argument(
        "--ckpt",
        action="append",
        default=[],
        metavar="CKPT",
        help="a run folder, step folder or model.safetensors (repeatable: side by side)",
    )
    parser.add_argument(
        "--timm",
        action="append",
        default=[],
        metavar="NAME[:WEIGHTS]|EXPORT",
        help="a timm model by name, with weights from a .safetensors/.pt file, or an `infomug export` folder"
        " (its config.json gives the architecture; nothing is downloaded)",
    )
    parser.add_argument(
        "--data",
        help="eval data source (world, digits, webdataset, csv, coco, imagefolder); default: the data the"
        " first checkpoint trained on",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a data setting as data.KEY of `infomug train`, e.g. eval_path=val.csv or world.eval_size=20000",
    )
    parser.add_argument("--split", default="eval", choices=("train", "eval"), help="split to measure on")
    parser.add_argument(
        "--layers",
        default="all",
        help="all | last | block indices 0,3,5 | module names to hook (default all)",
    )
    parser.add_argument(
        "--pool",
        default="token",
        help="token (class token, default) | avg (mean of patch tokens) | both (each layer read both ways,"
        " named LAYER:token and LAYER:avg)",
    )
    parser.add_argument("--budget", default="quick", choices=("quick", "full"), help="time vs accuracy")
    parser.add_argument(
        "--images", type=int, help="eval images to use (default: the budget's, 10,000 quick, 20,000 full)"
    )
    parser.add_argument(
        "--budget-set", action="append", default=[], metavar="KEY=VALUE", help=BUDGET_SETTINGS_HELP
    )
    anchors = parser.add_mutually_exclusive_group()
    anchors.add_argument(
        "--anchors",
        dest="anchors",
        action="store_true",
        default=True,
        help="measure the anchors every model is read against (the default): a random-init copy of the"
        " first model, the raw pixels, and the labels one-hot (oracle)",
    )
    anchors.add_argument("--no-anchors", dest="anchors", action="store_false", help="leave the anchors out")
    parser.add_argument("--out", type=Path, metavar="REPORT", help="report folder (default: RUN/measure)")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="feature cache (default: REPORT/features)")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto (default)")
    parser.add_argument("--seed", type=int, default=0, help="seeds splits, noise, masks and critics")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--transfer",
        choices=("readouts", "finetune"),
        default="readouts",
        help="readouts: frozen linear probe and k-NN (default); finetune: also `infomug finetune` every"
        " model (linear, partial, full against from-scratch) into OUT/finetune",
    )
    parser.add_argument(
        "--finetune-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a fine-tuning setting with --transfer finetune, e.g. tasks=[digits] or full.steps=150",
    )


def _budget_overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {"seed": args.seed}
    if args.images is not None:
        overrides["images"] = args.images
    overrides.update(parse_budget_settings(args.budget_set))
    return overrides


def parse_budget_settings(texts: list[str]) -> dict:
    """``["images=2000", "channel_sigmas=0.1,1.0"]`` as `Budget` field values of the right types.

    Raises:
        ValueError: for an unknown setting or a value of the wrong type, naming it.
    """
    from infomug.measure.budget import Budget

    overrides: dict = {}
    fields = Budget.__dataclass_fields__
    for text in texts:
        key, separator, raw = text.partition("=")
        if not separator or key not in fields:
            raise ValueError(f"--budget-set expects KEY=VALUE with KEY one of {sorted(fields)}, got {text!r}")
        kind = type(getattr(Budget(), key))
        if kind is tuple:
            try:
                overrides[key] = tuple(float(v) for v in raw.split(","))
            except ValueError as error:
                raise ValueError(
                    f"--budget-set {key} must be numbers separated by commas, got {raw!r}"
                ) from error
        elif kind is bool:
            if raw.lower() not in ("true", "false"):
                raise ValueError(f"--budget-set {key} must be true or false, got {raw!r}")
            overrides[key] = raw.lower() == "true"
        else:
            try:
                overrides[key] = kind(raw)
            except ValueError as error:
                raise ValueError(f"--budget-set {key} must be {kind.__name__}, got {raw!r}") from error
    return overrides


def default_out(ckpt: str) -> Path:
    """``RUN/measure`` for a checkpoint inside a run folder ``RUN``, else ``measure`` here."""
    path = Path(ckpt)
    from infomug.train.checkpoint_folders import CHECKPOINTS_DIR

    for folder in (path, *path.parents):
        if (folder / CHECKPOINTS_DIR).is_dir():
            return folder / "measure"
    return Path("measure")


def run_measure(args: argparse.Namespace) -> int:
    """Run ``infomug measure``; return the exit status (errors raise, the CLI turns them into status 2)."""
    from infomug.measure.api import measure, measure_device
    from infomug.measure.budget import get_budget
    from infomug.train.distributed import init_distributed, shutdown_distributed

    rank = int(os.environ.get("RANK", 0))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.ERROR,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    specs = [*args.ckpt, *(f"timm:{name}" for name in args.timm)]
    if not specs:
        raise ValueError("give a model: --ckpt RUN (repeatable) or --timm NAME[:WEIGHTS]")
    if args.out is None and not args.ckpt:
        raise ValueError("give --out REPORT (the report folder) when measuring timm models")
    out = args.out or default_out(args.ckpt[0])
    budget = get_budget(args.budget, **_budget_overrides(args))
    finetune_settings = None
    if args.transfer == "finetune":  # checked before the measurement, not after it
        from infomug.finetune import build_settings

        finetune_settings = build_settings(args.finetune_set)
    device = measure_device(args.device)
    # Under torchrun every process joins (nccl on its GPU, gloo on CPUs); on one process nothing happens.
    initialised = init_distributed(device)
    try:
        report = measure(
            specs,
            args.data,
            layers=args.layers,
            pool=args.pool,
            budget=budget,
            split=args.split,
            data_overrides=args.set,
            anchors=args.anchors,
            out=out,
            cache_dir=args.cache,
            device=device,
            progress=False if args.no_progress else None,
        )
    finally:
        if initialised:
            shutdown_distributed()
    if report is not None:
        for line in summary_lines(report):
            print(line)
        print(f"report: {out / 'measure.md'} (all numbers: {out / 'measure.json'}; plots: {out}/*.png)")
    if finetune_settings is not None and rank == 0:
        from infomug.finetune import finetune
        from infomug.finetune.report_files import append_to_measure_report

        transfer = finetune(
            specs, finetune_settings, out=out / "finetune", progress=not args.no_progress, device=device
        )
        if transfer is not None:
            append_to_measure_report(transfer, out / "measure.md")
        print(f"fine-tuning: {out / 'finetune' / 'finetune.md'} (its tables also close measure.md)")
    return 0


def summary_lines(report: Report) -> list[str]:
    """A few lines for the terminal: per model, the last layer's headline numbers (usable information
    from the fresh decoders), then the probe readouts."""
    lines = []
    for model in report.models:
        if not model.layers:
            continue
        layer = model.layers[-1]
        information = layer.information
        parts = []
        for key, title in (("image", "I_V(T -> image)"), ("caption", "I(T; caption)")):
            if key in information:
                estimate = information[key]
                mark = ">= " if estimate.kind == "lower_bound" else "= "
                parts.append(f"{title} {mark}{estimate.value:.2f} +- {estimate.stderr:.2f}")
        if "factors_mean" in information:
            mean = information["factors_mean"]
            parts.append(f"mean I(T; label) >= {mean.value:.3f} +- {mean.stderr:.3f} (MLP decoders)")
        if parts:
            lines.append(f"{model.name} [{layer.layer}]: " + ", ".join(parts) + " nats")
    sigma = report.settings["plane_sigma"]
    for model in report.models:
        if not model.layers:
            continue
        layer = model.layers[-1]
        # The kNN estimate is left out of a row when the probe's logits give it nothing to work on.
        knn = [
            row["knn_on_probe_logits"].value
            for row in layer.label_information.values()
            if "knn_on_probe_logits" in row
        ]
        probe = [row["linear_probe"].value for row in layer.transfer.values() if "linear_probe" in row]
        channel = layer.channel_at(sigma)
        parts = []
        if knn:
            parts.append(f"probe-logit I(T; label) >= {sum(knn) / len(knn):.3f} nats over {len(knn)} labels")
        if probe:
            parts.append(f"mean linear-probe accuracy {100 * sum(probe) / len(probe):.1f}%")
        if channel is not None:
            parts.append(f"noisy channel at sigma {sigma:g} (diagnostic) = {channel.value:.3f} nats")
        lines.append(f"  readouts {model.name} [{layer.layer}]: " + ", ".join(parts))
    return lines
