"""Benchmark: method="auto", kNN, copula and neural estimators on one closed-form grid; speed targets.

Run:  python experiments/bench_neural.py            (about 6 minutes on 2 CPU cores)
      python experiments/bench_neural.py --quick    (a smaller grid and N, a smoke run)
      python experiments/bench_neural.py --part speed   (only part 2)

Part 1 draws N = 5,000 pairs from each distribution of a grid with closed-form I(X; Y): Gaussians with
1 to 50 dimensions per side (sparse and dense correlation, up to ~4 nats), Student-t (heavy tails and
dependence through a shared scale), and MI-preserving transforms (per-coordinate and a spiral). Every
method sees the same arrays. The last rows give each method's mean absolute error over the grid.

Part 2 times the estimators on N = 10,000 pairs of 192-dimensional features (a ViT-Tiny width):
each neural bound, and the noisy-channel estimator on the 192-dimensional features alone.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
import torch

import estimators
from estimators.neural import BOUNDS
from estimators.samplers import (
    GaussianSampler,
    Sampler,
    Spiral,
    StudentTSampler,
    TransformedSampler,
    asinh,
    half_cube,
    normal_cdf,
)


def grid() -> list[tuple[str, Sampler]]:
    sparse, dense = GaussianSampler.sparse, GaussianSampler.dense

    def both(base: Sampler, transform) -> TransformedSampler:
        return TransformedSampler(base, transform, transform)

    return [
        ("gaussian 1+1, rho 0.9", sparse(1, 1, 0.9)),
        ("gaussian 2+2 sparse, rho 0.6", sparse(2, 2, 0.6)),
        ("student-t 2+2, dof 3, rho 0.6", StudentTSampler(sparse(2, 2, 0.6).covariance, 2, 3)),
        ("spiral(0.5) of gaussian 2+2", both(sparse(2, 2, 0.6), Spiral(2, 0.5))),
        ("gaussian 5+5 sparse, rho 0.8", sparse(5, 5, 0.8)),
        ("student-t 3+3, dof 3, identity", StudentTSampler(np.eye(6), 3, 3)),
        ("gaussian 25+25, 5 pairs rho 0.5", sparse(25, 25, 0.5, n_interacting=5)),
        ("gaussian 25+25, 8 pairs rho 0.8", sparse(25, 25, 0.8, n_interacting=8)),
        ("gaussian 25+25 dense 0.2", dense(25, 25, 0.2)),
        ("gaussian 50+50, 10 pairs rho 0.6", sparse(50, 50, 0.6, n_interacting=10)),
        ("gaussian 50+50 dense 0.1", dense(50, 50, 0.1)),
        ("half-cube of 25+25, 5 pairs 0.5", both(sparse(25, 25, 0.5, n_interacting=5), half_cube)),
        ("normal-cdf of 50+50, 10 pairs 0.6", both(sparse(50, 50, 0.6, n_interacting=10), normal_cdf)),
        ("asinh of 25+25 dense 0.2", both(dense(25, 25, 0.2), asinh)),
        ("spiral(0.5) of 25+25, 5 pairs 0.6", both(sparse(25, 25, 0.6, n_interacting=5), Spiral(25, 0.5))),
        ("student-t 25+25, dof 5, identity", StudentTSampler(np.eye(50), 25, 5)),
        (
            "student-t 50+50, dof 10, 10 pairs 0.6",
            StudentTSampler(sparse(50, 50, 0.6, 10).covariance, 50, 10),
        ),
    ]


METHODS = ("auto", "ksg", "copula", "infonce", "smile", "nwj")
LINEAR_CRITIC = {"layers": 0, "learning_rate": 1e-3, "patience": 20}


def accuracy(n: int, quick: bool) -> None:
    cases = grid()[::3] if quick else grid()
    errors: dict[str, list[float]] = {method: [] for method in METHODS}
    seconds: dict[str, float] = {method: 0.0 for method in METHODS}
    print(f"\n## Accuracy on the closed-form grid, N = {n:,} (values in nats; auto's choice in brackets)\n")
    print("| case | truth | " + " | ".join(METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for name, sampler in cases:
        x, y = sampler.sample(n, rng=0)
        truth = sampler.mutual_information()
        cells = []
        for method in METHODS:
            start = time.perf_counter()
            options = {"batch_size": min(256, n // 5)} if method in BOUNDS else {}
            result = estimators.estimate(x, y, method=method, **options)
            seconds[method] += time.perf_counter() - start
            value = result.params.get("finite_value", result.value) if method == "ksg" else result.value
            errors[method].append(abs(value - truth))
            cell = f"{value:.3f}"
            if method == "auto":
                cell += f" [{result.method}]"
            cells.append(cell)
        print(f"| {name} | {truth:.3f} | " + " | ".join(cells) + " |", flush=True)
    print(
        "| **mean absolute error** | | " + " | ".join(f"**{np.mean(errors[m]):.3f}**" for m in METHODS) + " |"
    )
    print("| total seconds | | " + " | ".join(f"{seconds[m]:.0f}" for m in METHODS) + " |")


def speed(n: int, dim: int) -> None:
    sampler = GaussianSampler.sparse(dim, dim, 0.5, n_interacting=20)
    x, y = sampler.sample(n, rng=1)
    truth = sampler.mutual_information()
    print(f"\n## Speed: N = {n:,} pairs of {dim}-dimensional features (truth {truth:.3f} nats)\n")
    print("| estimator | estimate | stderr | seconds | steps trained |")
    print("|---|---|---|---|---|")
    runs = [(bound, bound, {}) for bound in BOUNDS]
    runs.append(("infonce, linear critic (layers=0, lr 1e-3, patience 20)", "infonce", LINEAR_CRITIC))
    for label, bound, options in runs:
        result = estimators.neural_mi(x, y, bound, **options)
        print(
            f"| {label} | {result.value:.3f} | {result.stderr:.3f} | {result.seconds:.1f} |"
            f" {result.params['steps_trained']} |",
            flush=True,
        )
    for relative in (1.0, 3.0, 10.0):
        result = estimators.noisy_channel_mi(x, relative_sigma=relative)
        bracket = f"[{result.params['kt_lower']:.3f}, {result.params['kt_upper']:.3f}]"
        print(
            f"| noisy channel on x, sigma = {relative} x scale (KT bracket {bracket}) | {result.value:.3f} |"
            f" {result.stderr:.3f} | {result.seconds:.1f} | |",
            flush=True,
        )
    for method in ("copula", "ksg"):
        result = estimators.estimate(x, y, method=method)
        print(f"| {method} | {result.value:.3f} | {result.stderr:.3f} | {result.seconds:.1f} | |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller grid and N (a smoke run)")
    parser.add_argument("--part", choices=("all", "accuracy", "speed"), default="all")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, python"
        f" {platform.python_version()}, torch {torch.__version__}"
    )
    if args.part in ("all", "accuracy"):
        accuracy(1000 if args.quick else 5000, args.quick)
    if args.part in ("all", "speed"):
        speed(2000 if args.quick else 10_000, 192)
    print(f"\nlog(256) = {math.log(256):.3f} nats: InfoNCE's ceiling at the default batch size")


if __name__ == "__main__":
    main()
