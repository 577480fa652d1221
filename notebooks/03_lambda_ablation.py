# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The λL ablation: does more information mean better transfer?
#
# MUG's claim (arXiv 2301.07088) is that a generative objective transfers better because it passes more
# information about the input, and that generating the caption as well as the pixels (λL > 0) widens
# that. The sweep `infomug ablate` trains one encoder per objective and seed on the same data and step
# budget — MAE (λL = 0), MUG at several λL, CLIP and SimCLR — measures each last checkpoint with
# `infomug measure`, and aggregates over seeds into `ablation.json` (mean and 95% Student-t interval per
# metric, Spearman correlations). A caption-noise check retrains MUG with irrelevant captions.
#
# Full mode (the default) reads the committed CPU sweep, `experiments/results/ablation/ablation.json`
# (the written reading of it is `experiments/results/ablation.md`). `INFOMUG_NOTEBOOK_MODE=smoke` runs a
# micro sweep in a temporary folder instead — a 16×16, width-32 model for 3 steps: MAE, MUG at
# λL = 0.1 and 1, CLIP, 2 seeds, and MUG (λL = 0.1) with all captions irrelevant — and reads *its*
# results: the same tables and plots, with numbers that mean nothing.

# %%
import math
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from scipy import stats

from infomug.ablation import run_sweep, spec_from_dict
from infomug.ablation.plots import (
    plot_caption_noise,
    plot_information_vs_transfer,
    plot_metric_vs_lambda,
    plot_per_factor,
)
from infomug.ablation.report import read_sweep_results
from infomug.ablation.stats import CONFIDENCE, EXACT_UP_TO
from infomug.checkout import repository_root
from infomug.train.tiny import TINY_MODEL_OVERRIDES

ROOT = repository_root()

MODE = os.environ.get("INFOMUG_NOTEBOOK_MODE", "full")
if MODE not in ("smoke", "full"):
    raise ValueError(f"INFOMUG_NOTEBOOK_MODE must be 'smoke' or 'full', got {MODE!r}")
SMOKE = MODE == "smoke"
SEED = 0
torch.manual_seed(SEED)
if SMOKE:
    torch.set_num_threads(1)
RESULTS = ROOT / "experiments" / "results" / "ablation" / "ablation.json"
print(f"mode: {MODE}")

# %% [markdown]
# ## 1 · The results
#
# A sweep is a YAML file (`experiments/configs/ablation_cpu.yaml`: base run config, shared overrides,
# named variants, seeds, caption noise, measurement settings); `spec_from_dict` builds the same thing
# from a dict. `run_sweep(spec, folder)` trains and measures every run (a rerun resumes) and writes the
# report; `read_sweep_results` reads `ablation.json` back.

# %%
if SMOKE:
    tiny = [
        *TINY_MODEL_OVERRIDES,
        "data.world.size=64",
        "data.world.eval_size=200",
        "tokenizer.train_captions=64",
        "train.batch_size=16",
        "train.steps=3",
        "train.log_every=1",
        "train.eval_every=0",
        "train.sample_every=0",
        "train.checkpoint_every=3",
        "train.keep_checkpoints=1",
        "train.device=cpu",
        "optim.warmup_steps=1",
    ]
    spec = spec_from_dict(
        {
            "name": "notebook_smoke",
            "overrides": tiny,
            "seeds": [0, 1],
            "variants": {
                "mae": ["model.preset=mae_vit_tiny_patch4_32"],
                "mug_0.1": ["model.caption_loss_weight=0.1"],
                "mug_1.0": ["model.caption_loss_weight=1.0"],
                "clip": ["model.preset=clip_vit_tiny_patch4_32"],
            },
            "caption_noise": {
                "setting": "world.irrelevant_caption_fraction",
                "fractions": [0.0, 1.0],
                "variants": ["mug_0.1"],
            },
            "measure": {
                "budget": "quick",
                "budget_set": {
                    "images": 200,
                    "channel_samples": 100,
                    "entropy_samples": 100,
                    "probe_max_iter": 50,
                    "caption_steps": 10,
                    "caption_batch": 32,
                    "decoder_samples": 64,
                    "uncertainty": False,
                    "usable_information": False,  # the sweep does not read the fresh decoders yet
                },
                "layers": "last",
            },
        }
    )
    workdir = tempfile.TemporaryDirectory(prefix="infomug_notebook_03_")  # removed when the kernel stops
    sweep = Path(workdir.name)
    print("report:", run_sweep(spec, sweep, progress=False))
    results = read_sweep_results(sweep)
else:
    if not RESULTS.is_file():
        raise FileNotFoundError(
            f"{RESULTS} is missing: run the sweep (infomug ablate --config"
            " experiments/configs/ablation_cpu.yaml --out runs/ablation_cpu, about an hour on 2 CPU cores),"
            f" copy its ablation.json to {RESULTS}, or run this notebook with INFOMUG_NOTEBOOK_MODE=smoke"
        )
    results = read_sweep_results(RESULTS)

# %% [markdown]
# What was run, on what, and anything the reader must know (runs that diverged or are missing, noise
# cells that reuse a main run because the objective reads no captions):

# %%
settings = results.settings
print(f"sweep {results.name!r}: variants {results.variants()}, seeds {results.spec['seeds']}")
print(f"measured layer: {results.layer}; reproduce with: {results.command}")
print(f"wall time: {results.wall_seconds.get('total', math.nan) / 60:.1f} min (train + measure)")
for note in results.notes:
    print("note:", note)

# %% [markdown]
# ## 2 · The headline table
#
# One row per variant of the main sweep: mean ± the half-width of the 95% Student-t interval over
# seeds (n − 1 degrees of freedom, so with few seeds it is wide: the factor is printed below the table;
# with one seed there is none). Accuracies are held-out linear-probe and k-NN accuracies, means over the
# world's discrete factors; I(T; label) is a lower bound (Ross kNN on probe logits), mean over factors,
# under the ceiling mean H(factor); I(X; T_σ) is the noisy channel at the sweep's plane σ (× each
# layer's feature scale in the committed results; absolute on whitened features in sweeps measured
# since), a geometry diagnostic, at most log N; RankMe is the effective rank, a proxy;
# I(T; caption) an InfoNCE lower bound with a bag-of-words text feature (at most log K).

# %%
plane = results.plane_key
columns = {
    "probe_acc/mean": "probe acc. %",
    "knn_acc/mean": "k-NN acc. %",
    "info/mean": "I(T; label) ≥",
    plane: f"I(X; T_σ), σ = {results.plane_sigma:g}" if plane else None,
    "effective_rank": "RankMe",
    "caption_info": "I(T; caption) ≥",
}
columns = {key: title for key, title in columns.items() if key is not None and results.has_metric(key)}


def cell(summary, key):
    """'mean ± half-width' in the metric's units (accuracies as percentages)."""
    if summary is None:
        return "—"
    scale = 100.0 if results.metric(key)["kind"] == "accuracy" else 1.0
    half = "" if math.isnan(summary.half_width) else f" ± {scale * summary.half_width:.2f}"
    return f"{scale * summary.mean:.2f}{half}"


rows = []
for group in results.groups():
    variant = group["variant"]
    weight = group["caption_loss_weight"]
    rows.append(
        [variant, group["objective"], "—" if weight is None else f"{weight:g}", str(group["n_seeds"])]
        + [cell(results.summary(variant, key), key) for key in columns]
    )
header = ["variant", "objective", "λL", "seeds", *columns.values()]
lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
display(Markdown("\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])))
for key in columns:
    metric = results.metric(key)
    extra = [f"{name} {metric[name]:.3g}" for name in ("ceiling", "baseline") if metric[name] is not None]
    print(f"{key}: {metric['label']} by {metric['method']}" + (f" ({', '.join(extra)})" if extra else ""))
for n in sorted({group["n_seeds"] for group in results.groups() if group["n_seeds"] >= 2}):
    quantile = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1))
    print(
        f"{n} seeds: half-width = {quantile:.2f} standard errors of the mean"
        f" = {quantile / math.sqrt(n):.2f} × the seeds' standard deviation"
    )

# %% [markdown]
# ## 3 · Each metric against λL
#
# MAE is λL = 0 and MUG's variants follow in increasing λL; CLIP and SimCLR, which have no λL, are the
# dashed horizontal bands. Bars are the 95% t-interval over seeds, dots the seeds themselves. The claim
# predicts transfer (top row) rising from MAE to MUG; a flat line, or intervals that overlap MAE's, do
# not support it at this budget.

# %%
keys = [
    key for key in ("probe_acc/mean", "knn_acc/mean", "info/mean", plane) if key and results.has_metric(key)
]
figure, axes = plt.subplots(2, 2, figsize=(10, 7.5))
for ax, key in zip(axes.flat, keys, strict=False):
    plot_metric_vs_lambda(results, key, ax=ax)
for ax in list(axes.flat)[len(keys) :]:
    ax.set_visible(False)
figure.tight_layout()

# %% [markdown]
# ## 4 · Information against transfer, with the rank correlation
#
# Every main-sweep run (each seed) is a point. Spearman's ρ asks whether runs that carry more
# information also transfer better, whatever the objective; with few runs only a large |ρ| with a small
# p-value says anything (the table says whether each p-value is an exact permutation one or scipy's
# t approximation). Runs of one variant differ only in their seed, so ρ over all runs can be driven by
# the differences between a few variants, and a p-value that treats every run as independent then
# overstates the evidence. Left: the input information I(X; T_σ), the quantity MUG's argument is about;
# right: the label information, which a probe reads almost directly, so a strong correlation there is
# expected and says less.

# %%
pairs = [(key, "probe_acc/mean") for key in (plane, "info/mean") if key and results.has_metric(key)]
figure, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4), squeeze=False)
for ax, (information, transfer) in zip(axes.flat, pairs, strict=True):
    plot_information_vs_transfer(results, information, transfer, ax=ax)
figure.tight_layout()

rows = [
    [
        r["information"],
        r["transfer"],
        f"{r['spearman']:.2f}",
        f"{r['p_value']:.3g}",
        "exact" if r["n"] <= EXACT_UP_TO else "t approx.",
        str(r["n"]),
    ]
    for r in results.correlations
]
header = ["information", "transfer", "Spearman ρ", "p", "p by", "runs"]
lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
display(Markdown("\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])))

# %% [markdown]
# ## 5 · Caption noise: the break check
#
# If MUG's gain comes from the captions, replacing them with other images' captions should take it away:
# as the fraction of irrelevant training captions grows, I(T; caption) (measured against the eval
# images' true captions) should fall towards what the pixel loss alone teaches, MAE's level, not to 0
# (the pixels show the colour and shape a caption names), and transfer should fall towards MAE's. MAE
# reads no captions: where the check includes it (the CPU sweep does), its noise cells are its main
# runs, and the notes above say so.

# %%
noise_keys = [key for key in ("caption_info", "probe_acc/mean", "info/mean") if results.has_metric(key)]
figure, axes = plt.subplots(1, len(noise_keys), figsize=(4.5 * len(noise_keys), 3.8), squeeze=False)
for ax, key in zip(axes.flat, noise_keys, strict=True):
    plot_caption_noise(results, key, ax=ax)
figure.tight_layout()

# %% [markdown]
# ## 6 · Per factor
#
# Means over factors hide which factors each objective learns: an object's colour can be read from any
# patch it covers, its shape only from its outline across several patches; the background texture fills
# every patch but is never captioned, nor are the second object's factors (`*_2`). The dashed marks are
# the majority-class rate.

# %%
figure, ax = plt.subplots(figsize=(10, 4))
plot_per_factor(results, "probe_acc", ax=ax)
figure.tight_layout()

# %% [markdown]
# ## 7 · The numbers to read
#
# Each variant against MAE, metric by metric: the difference of means, and whether the two 95%
# intervals are disjoint (a conservative test: disjoint intervals are a clear difference, overlapping
# ones are not evidence of none). These are printed from the results loaded above, not written in.

# %%
baseline = "mae" if "mae" in results.variants() else results.variants()[0]
for key in columns:
    reference = results.summary(baseline, key)
    if reference is None:
        continue
    scale = 100.0 if results.metric(key)["kind"] == "accuracy" else 1.0
    parts = []
    for group in results.groups():
        summary = results.summary(group["variant"], key)
        if group["variant"] == baseline or summary is None:
            continue
        low, high = summary.interval
        ref_low, ref_high = reference.interval
        disjoint = high < ref_low or low > ref_high  # False when either interval is NaN (one seed)
        mark = " *" if disjoint else ""
        parts.append(f"{group['variant']} {scale * (summary.mean - reference.mean):+.2f}{mark}")
    print(f"{columns[key]:22s} vs {baseline} ({scale * reference.mean:.2f}): " + ", ".join(parts))
print("* = the 95% intervals are disjoint")
