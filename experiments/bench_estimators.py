"""Benchmark: accuracy and speed of infomug's KSG against scikit-learn and a naive O(N^2) reference.

Run:  python experiments/bench_estimators.py            (about 6 minutes on 2 CPU cores)
      python experiments/bench_estimators.py --quick    (smaller N, under a minute)
      python experiments/bench_estimators.py --crossover (KD-tree vs brute force by dimension)

Every case draws one sample from a Gaussian with closed-form I(X; Y) and runs every method on those
same arrays, so the "error" column compares methods on equal footing and the time ratios are measured
in the same run. The naive reference is written here, independently of the library, in plain numpy:
it computes every pairwise max-norm distance, so agreement to 1e-9 checks the library's neighbour
searches, tie conventions and digamma terms.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import digamma

import estimators
from estimators.samplers import GaussianSampler


def naive_ksg(x: np.ndarray, y: np.ndarray, k: int = 3, algorithm: int = 1, block: int = 256) -> float:
    """KSG mutual information (nats) by exhaustive max-norm distances; inputs are used as given.

    O(N^2 (dx + dy)) time, O(block * N) memory. Algorithm 1 counts strictly inside the joint k-th
    neighbour distance, algorithm 2 non-strictly inside each marginal's own radius (Kraskov 2004).
    """
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    n = len(x)
    total = 0.0
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        dx = np.abs(x[rows, None, :] - x[None, :, :]).max(axis=2)
        dy = np.abs(y[rows, None, :] - y[None, :, :]).max(axis=2)
        own = np.arange(rows.start, rows.stop)
        dx[own - start, own] = np.inf  # the point itself is nobody's neighbour
        dy[own - start, own] = np.inf
        joint = np.maximum(dx, dy)
        nearest = np.argsort(joint, axis=1, kind="stable")[:, :k]
        if algorithm == 1:
            radius = np.take_along_axis(joint, nearest[:, -1:], axis=1)
            n_x = (dx < radius).sum(axis=1)
            n_y = (dy < radius).sum(axis=1)
            total += (digamma(n_x + 1) + digamma(n_y + 1)).sum()
        else:
            radius_x = np.take_along_axis(dx, nearest, axis=1).max(axis=1, keepdims=True)
            radius_y = np.take_along_axis(dy, nearest, axis=1).max(axis=1, keepdims=True)
            n_x = (dx <= radius_x).sum(axis=1)
            n_y = (dy <= radius_y).sum(axis=1)
            total += (digamma(n_x) + digamma(n_y)).sum()
    correction = 1.0 / k if algorithm == 2 else 0.0
    return float(digamma(k) - correction + digamma(n) - total / n)


@dataclass
class Row:
    case: str
    method: str
    truth: float
    value: float
    stderr: float
    seconds: float
    note: str = ""


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def _standardized_and_jittered(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The arrays exactly as ksg_mi hands them to its neighbour search (same seed, same jitter)."""
    from estimators.preprocessing import DEFAULT_JITTER, add_jitter, make_generator, standardize

    generator = make_generator(0)
    tx, _ = standardize(torch.from_numpy(x))
    ty, _ = standardize(torch.from_numpy(y))
    return (
        add_jitter(tx, DEFAULT_JITTER, generator).numpy(),
        add_jitter(ty, DEFAULT_JITTER, generator).numpy(),
    )


def run_case(
    name: str, dim: int, n: int, pairs: int, correlation: float, naive: bool, errbar: bool
) -> list[Row]:
    sampler = GaussianSampler.sparse(dim, dim, correlation, n_interacting=pairs)
    truth = sampler.mutual_information()
    x, y = sampler.sample(n, rng=0)
    rows = []
    ours, seconds = _timed(estimators.ksg_mi, x, y, uncertainty=False)
    rows.append(
        Row(name, f"infomug ksg1 ({ours.params['backend']})", truth, ours.value, float("nan"), seconds)
    )
    if errbar:
        with_bar, seconds = _timed(estimators.ksg_mi, x, y)
        rows.append(Row(name, "infomug ksg1 + error bar", truth, with_bar.value, with_bar.stderr, seconds))
    if dim == 1:
        from sklearn.feature_selection import mutual_info_regression

        value, seconds = _timed(mutual_info_regression, x, y[:, 0], n_neighbors=3, random_state=0)
        rows.append(
            Row(
                name,
                "sklearn mutual_info_regression",
                truth,
                float(value[0]),
                float("nan"),
                seconds,
                "clips at 0, own jitter",
            )
        )
    if naive:
        xs, ys = _standardized_and_jittered(x, y)
        value, seconds = _timed(naive_ksg, xs, ys)
        gap = abs(value - ours.params.get("finite_value", ours.value))
        rows.append(
            Row(
                name,
                "naive numpy O(N^2) ksg1",
                truth,
                value,
                float("nan"),
                seconds,
                f"infomug - naive: {gap:.1e} in absolute value",
            )
        )
    return rows


def measure_memory(n: int, dim: int) -> tuple[float, float, float]:
    """Peak resident memory (GiB) of a fresh process before and during one estimate, and its seconds.

    Read from /proc/self/status (VmHWM), which starts afresh in a new program; getrusage's
    ru_maxrss would inherit this benchmark's own peak across fork and exec.
    """
    script = f"""
import time
import estimators
from estimators.samplers import GaussianSampler

def peak_gib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20

x, y = GaussianSampler.sparse({dim}, {dim}, 0.5, n_interacting=5).sample({n}, rng=0)
before = peak_gib()
start = time.perf_counter()
estimators.ksg_mi(x, y, uncertainty=False)
print(before, peak_gib(), time.perf_counter() - start)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, during, seconds = (float(value) for value in out.stdout.split()[-3:])
    return before, during, seconds


def crossover(n: int, dims: tuple[int, ...]) -> None:
    print(f"\nKD-tree vs brute force, N={n:,}, ksg1 point estimate, seconds")
    print("| joint dim | kdtree | brute | faster |")
    print("|---|---|---|---|")
    for dim in dims:
        x, y = GaussianSampler.sparse(dim, dim, 0.5).sample(n, rng=0)
        _, tree = _timed(estimators.ksg_mi, x, y, backend="kdtree", uncertainty=False)
        _, brute = _timed(estimators.ksg_mi, x, y, backend="brute", uncertainty=False)
        print(
            f"| {2 * dim} | {tree:.2f} | {brute:.2f} | {'kdtree' if tree < brute else 'brute'} |", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller N everywhere (a smoke run)")
    parser.add_argument("--crossover", action="store_true", help="only the KD-tree/brute crossover table")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads,"
        f" python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}"
    )
    if args.crossover:
        crossover(2000 if args.quick else 10_000, (1, 2, 3, 4, 5, 6, 8))
        crossover(5000 if args.quick else 50_000, (4, 5, 6))
        return
    scale = 10 if args.quick else 1
    cases = [  # (dim per side, N, interacting pairs, correlation, run naive, time the error bar)
        (1, 50_000 // scale, 1, 0.6, True, True),
        (25, 10_000 // scale, 5, 0.5, True, True),
        (25, 50_000 // scale, 5, 0.5, False, False),
    ]
    estimators.ksg_mi(*GaussianSampler.sparse(2, 2, 0.5).sample(500, rng=0))  # warm up thread pools
    rows = []
    for dim, n, pairs, correlation, naive, errbar in cases:
        shape = "1-D" if dim == 1 else f"{dim}+{dim}-D"
        name = f"{shape}, N={n:,}, {pairs} pair(s) rho={correlation}"
        print(f"running {name} ...", flush=True)
        rows += run_case(name, dim, n, pairs, correlation, naive, errbar)
    columns = ["case", "method", "truth (nats)", "estimate (nats)", "error", "stderr", "seconds"]
    print("\n| " + " | ".join([*columns, "time / infomug", "note"]) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    reference = {}
    for row in rows:
        reference.setdefault(row.case, row.seconds)
        stderr = "" if np.isnan(row.stderr) else f"{row.stderr:.4f}"
        print(
            f"| {row.case} | {row.method} | {row.truth:.4f} | {row.value:.4f} |"
            f" {row.value - row.truth:+.4f} | {stderr} | {row.seconds:.2f} |"
            f" {row.seconds / reference[row.case]:.2f} | {row.note} |"
        )
    n_mem, dim_mem = (100_000 // scale, 50)
    print(
        f"\nrunning the memory case (N={n_mem:,}, {dim_mem}+{dim_mem}-D) in fresh processes ...", flush=True
    )
    before, during, seconds = measure_memory(n_mem, dim_mem)
    print(
        f"peak RSS: {during:.2f} GiB during the estimate, {before:.2f} GiB before it (imports + data);"
        f" the estimate added {during - before:.2f} GiB and took {seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
