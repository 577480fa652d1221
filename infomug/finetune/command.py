"""``infomug finetune``: the argparse shell over `infomug.finetune.finetune`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from infomug.cli_help import with_examples

MODES_HELP = "comma-separated modes: linear, partial, full (default all three)"


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _budgets(text: str) -> tuple[int, ...]:
    budgets = []
    for part in _comma_list(text):
        if part == "all":
            budgets.append(0)
            continue
        try:
            budgets.append(int(part.replace("_", "")))
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"a label budget is a count or 'all', got {part!r}") from error
    return tuple(budgets)


def add_finetune_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` subcommand to ``commands``."""
    parser = commands.add_parser(
        "finetune",
        help="transfer by fine-tuning: linear, partial and full (MAE's recipe), against from-scratch",
        description="Fine-tune each model on each task in linear, partial and full mode at each label budget"
        " over several seeds, the learning rate (L2 penalty for linear) chosen on a validation split, a"
        " from-scratch reference of the same architecture beside them. Writes finetune.json, finetune.md"
        " and finetune.png into --out; rerunning the same command resumes.",
        **with_examples(
            "infomug finetune --ckpt runs/mae --ckpt runs/clip --out runs/finetune",
            "infomug finetune --ckpt runs/mae --task digits --mode linear,full --labels 1000,all --seeds 5",
        ),
    )
    parser.add_argument("--ckpt", action="append", default=[], metavar="CKPT", help="run folder (repeatable)")
    parser.add_argument(
        "--timm",
        action="append",
        default=[],
        metavar="NAME:WEIGHTS|EXPORT",
        help="a timm ViT by name with a local .safetensors/.pt weights file, or an `infomug export` folder"
        " (its config.json gives the architecture; nothing is downloaded)",
    )
    parser.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="TASK",
        help="world_captioned, world_uncaptioned, shifted_world, digits, folder:PATH or csv:PATH[:COLUMN]"
        " (repeatable; default the four built-in tasks)",
    )
    parser.add_argument("--mode", type=_comma_list, default=None, help=MODES_HELP)
    parser.add_argument(
        "--labels", type=_budgets, default=None, help="label budgets, e.g. 1000,all (default 1000,all)"
    )
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 3)")
    parser.add_argument("--no-scratch", action="store_true", help="leave out the from-scratch reference")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of infomug.finetune.FinetuneSettings, e.g. full.steps=600, full.lr_grid=[1e-3],"
        " partial.blocks=1, train_size=5000",
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder (default RUN/finetune)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_finetune(args: argparse.Namespace) -> int:
    """Run ``infomug finetune``; print the report's location."""
    from .api import finetune
    from .report_files import MARKDOWN_FILE
    from .settings import build_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    specs = [*args.ckpt, *(f"timm:{name}" for name in args.timm)]
    if not specs:
        raise ValueError("give a model: --ckpt RUN (repeatable) or --timm NAME:WEIGHTS")
    if args.out is None and not args.ckpt:
        raise ValueError("give --out REPORT (the report folder) when fine-tuning timm models")
    out = args.out or Path(args.ckpt[0]) / "finetune"
    settings = build_settings(
        args.set,
        tasks=tuple(args.task) or None,
        modes=args.mode,
        label_budgets=args.labels,
        seeds=args.seeds,
        from_scratch=False if args.no_scratch else None,
    )
    finetune(specs, settings, out=out, progress=not args.no_progress, device=args.device)
    print(f"report: {out / MARKDOWN_FILE} (every fit: {out / 'finetune.json'}; plot: {out / 'finetune.png'})")
    return 0
