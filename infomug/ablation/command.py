"""``infomug ablate``: the argparse shell over `infomug.ablation.run_sweep`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from infomug.cli_help import with_examples


def _shard(text: str) -> tuple[int, int]:
    index, separator, count = text.partition("/")
    try:
        if not separator:
            raise ValueError
        return int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 0/4), got {text!r}") from None


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_ablate_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``ablate`` subcommand to ``commands``."""
    parser = commands.add_parser(
        "ablate",
        help="the objective / lambda_L / caption-noise sweep: train, measure, aggregate over seeds",
        description="Train every variant of a sweep file once per seed on the same data and step budget,"
        " measure every checkpoint with `infomug measure`, and write ablation.md, ablation.json and plots"
        " (mean and 95% t-interval over seeds). Rerunning the same command resumes an interrupted sweep.",
        **with_examples(
            "infomug ablate --config experiments/configs/ablation_cpu.yaml --out runs/ablation_cpu",
            "infomug ablate --out runs/ablation_cpu --shard 0/2   # and --shard 1/2 in a second process",
            "infomug ablate --out runs/ablation_cpu --report      # rewrite the report from what is there",
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="YAML",
        help="sweep file (default experiments/configs/ablation_cpu.yaml; or that of an existing --out)",
    )
    parser.add_argument("--out", type=Path, metavar="SWEEP", help="sweep folder (default runs/<sweep name>)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run-config override for every run, e.g. train.steps=100 or data.path=/shards/{0..9}.tar",
    )
    parser.add_argument("--seeds", type=_seeds, metavar="0,1,2", help="training seeds (default the file's)")
    parser.add_argument(
        "--budget-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="measurement budget setting, e.g. images=2000 (repeatable; see infomug.measure.Budget)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the run config's")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GLOB",
        help="only runs whose name matches, e.g. 'mug*'",
    )
    parser.add_argument(
        "--shard", type=_shard, metavar="I/N", help="handle every N-th run from the I-th (parallel processes)"
    )
    parser.add_argument(
        "--report", action="store_true", help="only aggregate what the sweep folder holds into its report"
    )
    parser.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")


DEFAULT_CONFIG = Path("experiments/configs/ablation_cpu.yaml")


def run_ablate(args: argparse.Namespace) -> int:
    """Run the ``ablate`` subcommand; returns the exit status.

    Raises:
        ValueError: for bad settings, ``--report`` without ``--out``, or a spec that differs from the one
            ``--out`` holds (the CLI turns these into exit status 2).
        FileNotFoundError: for a missing sweep file, or ``--report`` on a folder that holds no sweep.
    """
    from infomug.measure.command import parse_budget_settings

    from .runner import SPEC_FILE, load_sweep_folder, run_sweep
    from .spec import load_spec

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.report:
        if args.out is None:
            raise ValueError("--report needs --out SWEEP")
        from .report import write_sweep_report

        load_sweep_folder(args.out)
        print(f"report: {write_sweep_report(args.out)}")
        return 0
    if args.config is None and args.out is not None and (args.out / SPEC_FILE).is_file():
        spec = load_sweep_folder(args.out)[0]  # resume the folder's own sweep
    else:
        spec = load_spec(args.config or DEFAULT_CONFIG)
    spec = spec.with_changes(args.set, args.seeds, **parse_budget_settings(args.budget_set))
    out = args.out or Path("runs") / spec.name
    written = run_sweep(
        spec,
        out,
        only=args.only,
        shard=args.shard,
        device=args.device,
        progress=False if args.no_progress else None,
    )
    if written is not None:
        print(f"report: {written}")
    else:
        print(f"sweep folder: {out} (report written once every run is measured; rerun to resume)")
    return 0
