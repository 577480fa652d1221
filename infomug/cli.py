"""The ``infomug`` command line: a thin argparse shell over the library.

Subcommands today: ``mi`` (mutual information between two saved arrays) and ``entropy``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import estimators
from estimators.api import ENTROPY_METHODS, MI_METHOD_HELP, MI_METHODS

from . import __version__
from .arrays import load_array


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, nargs="+", help="neighbours for kNN methods (several: averaged)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for jitter and error-bar splits (default 0)"
    )
    parser.add_argument("--no-uncertainty", action="store_true", help="skip the standard error (faster)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the estimate as JSON here")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``infomug`` command."""
    parser = argparse.ArgumentParser(
        prog="infomug", description="Information measurements for representations (values in nats and bits)."
    )
    parser.add_argument("--version", action="version", version=f"infomug {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    methods = "; ".join(f"{name}: {text}" for name, text in MI_METHOD_HELP.items())
    mi = commands.add_parser(
        "mi",
        help="mutual information between two saved arrays",
        description="Estimate I(X; Y) between paired rows of two arrays. Arrays: PATH.npy, PATH.npz[:KEY],"
        " PATH.csv|.tsv|.txt[:COL,COL,...] (columns by header name or 0-based number).",
    )
    mi.add_argument("x", help="samples of X, [N] or [N, dx]")
    mi.add_argument("y", help="samples of Y, [N] or [N, dy], row i paired with row i of X")
    mi.add_argument("--method", default="ksg", choices=sorted(MI_METHODS), help=methods)
    mi.add_argument("--algorithm", type=int, choices=(1, 2), help="KSG algorithm (ksg methods only)")
    _add_common_options(mi)

    entropy = commands.add_parser("entropy", help="entropy of one saved array")
    entropy.add_argument("x", help="samples, [N] or [N, d]")
    entropy.add_argument("--method", default="kl", choices=sorted(ENTROPY_METHODS))
    _add_common_options(entropy)
    return parser


def _options(function: object, args: argparse.Namespace) -> dict:
    accepted = inspect.signature(function).parameters
    requested = {"seed": args.seed, "uncertainty": not args.no_uncertainty}
    if args.k is not None:
        requested["k"] = args.k[0] if len(args.k) == 1 else tuple(args.k)
    if getattr(args, "algorithm", None) is not None:
        requested["algorithm"] = args.algorithm
    unknown = [name for name in requested if name not in accepted and name not in ("seed", "uncertainty")]
    if unknown:
        raise ValueError(f"method {args.method!r} does not take --{unknown[0]}")
    return {name: value for name, value in requested.items() if name in accepted}


def _run_mi(args: argparse.Namespace) -> estimators.Estimate:
    function = MI_METHODS[args.method]
    if args.algorithm is not None and function is not estimators.ksg_mi:
        raise ValueError(f"method {args.method!r} does not take --algorithm")
    x, y = load_array(args.x), load_array(args.y)
    return estimators.estimate(x, y, method=args.method, **_options(function, args))


def _run_entropy(args: argparse.Namespace) -> estimators.Estimate:
    function = ENTROPY_METHODS[args.method]
    return estimators.estimate_entropy(load_array(args.x), method=args.method, **_options(function, args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``infomug`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        result = _run_mi(args) if args.command == "mi" else _run_entropy(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"infomug {args.command}: error: {error}", file=sys.stderr)
        return 2
    print(result)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0
