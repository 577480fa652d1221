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
# # 02 · Train a small encoder and measure what each layer knows
#
# Train a MUG encoder on the embedded shapes world, measure it with `infomug.measure.measure`, and read
# the `Report` it returns: the per-layer table, what each number is and which estimator made it, the
# lower bounds next to their ceilings, and the plots it wrote.
#
# Full mode (the default) trains the CPU preset (ViT-Tiny, 32×32 images, λL = 0.1) for 300 steps into
# `runs/notebook_02/` (a rerun resumes from its checkpoint) and measures 10,000 eval images with the
# `quick` budget and the sanity anchors: about 5 minutes on 2 CPU cores. `INFOMUG_NOTEBOOK_MODE=smoke`
# trains a 16×16, width-32, 2-block model for 4 steps on the CPU in a temporary folder and measures 256
# images: seconds, and numbers that mean nothing.

# %%
import math
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, Markdown, display

from infomug.checkout import repository_root
from infomug.measure import get_budget, measure, read_report
from infomug.measure.headline import headline_section
from infomug.train import load_config, read_metrics, train
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

if SMOKE:
    workdir = tempfile.TemporaryDirectory(prefix="infomug_notebook_02_")  # removed when the kernel stops
    RUN_DIR = Path(workdir.name) / "notebook_02"  # the model is named after its folder, as in full mode
    OVERRIDES = [
        *TINY_MODEL_OVERRIDES,
        "train.device=cpu",
        "data.world.size=512",
        "data.world.eval_size=256",
        "tokenizer.train_captions=500",
        "train.batch_size=16",
        "train.steps=4",
        "train.log_every=1",
        "train.eval_every=0",
        "train.sample_every=0",
        "train.checkpoint_every=4",
        "optim.warmup_steps=1",
    ]
    BUDGET = get_budget(
        "quick",
        images=256,
        batch_size=64,
        probe_max_iter=30,
        channel_samples=200,
        entropy_samples=200,
        caption_steps=40,
        caption_batch=32,
        decoder_samples=128,
        decoder_max_epochs=5,
    )
else:
    RUN_DIR = ROOT / "runs" / "notebook_02"
    OVERRIDES = [
        "train.steps=300",
        "train.eval_every=100",
        "train.sample_every=100",
        "train.checkpoint_every=100",
    ]
    BUDGET = get_budget("quick")
OVERRIDES.append(f"train.seed={SEED}")
print(f"mode: {MODE}; run folder: {RUN_DIR}")

# %% [markdown]
# ## 1 · Train
#
# `train(config, run_dir)` is what `infomug train` runs. The config is `experiments/configs/mug_cpu.yaml`
# (the defaults) with the overrides above, exactly as `--set` would apply them; the run folder gets
# `config.yaml`, `metrics.jsonl`, `checkpoints/step_*/` and a `latest` pointer.

# %%
config = load_config(ROOT / "experiments" / "configs" / "mug_cpu.yaml", OVERRIDES)
result = train(config, RUN_DIR, progress=False)
print(f"steps: {result.steps}  checkpoint: {result.checkpoint}  {result.seconds:.1f} s")
print("last train record:", {k: round(v, 4) for k, v in result.train_metrics.items() if k.startswith("loss")})

# %% [markdown]
# The loss terms per logged step, from `metrics.jsonl`. They are in different units: the pixel loss is
# the mean squared error of the masked patches (each patch normalised to zero mean and unit variance),
# the caption loss a cross-entropy in nats per token, and MUG's loss is the pixel loss plus λL times the
# caption loss.

# %%
records = read_metrics(RUN_DIR / "metrics.jsonl", kind="train")
caption_weight = config.model.caption_loss_weight
terms = {
    "loss_pixel": "pixel: MSE of normalised patches",
    "loss_caption": "caption: nats per token",
    "loss": f"loss = pixel + {caption_weight:g} × caption",
}
figure, ax = plt.subplots(figsize=(6, 3.5))
for term, label in terms.items():
    ax.plot([r["step"] for r in records], [r[term] for r in records], marker=".", label=label)
ax.set(xlabel="step", ylabel="loss term (own units, log scale)", title="training loss", yscale="log")
ax.legend()
figure.tight_layout()

# %% [markdown]
# ## 2 · Measure
#
# `measure(run_dir, out=...)` loads the `latest` checkpoint, runs its encoder unmasked over the eval
# split of the data it trained on, taps every block, and estimates per layer everything in the table
# below. The anchors are on by default: an *oracle* whose features are the labels one-hot (it should
# reach H(label), up to the estimators' error), the *raw pixels*, and a *random-init* copy of the encoder
# (what the architecture knows untrained).
# It writes `measure.json` (every number), `measure.md` (the tables) and the plots into `out`, and
# returns the same `Report`.

# %%
report = measure(RUN_DIR, out=RUN_DIR / "measure", budget=BUDGET, anchors=True, progress=False)
print(f"{report.data['images']} images of {report.data['source']} ({report.data['split']} split);", end=" ")
print(f"models: {[m.name for m in report.models]}; {report.seconds['total']:.1f} s")
print("written:", sorted(path.name for path in (RUN_DIR / "measure").iterdir()))
# The same Report, read back from measure.json (e.g. in a later session):
report = read_report(RUN_DIR / "measure")

# %% [markdown]
# ## 2b · The headline: information on equal terms
#
# Fresh decoders of one fixed family and budget, trained on every model's frozen features (and on the
# anchors'), read on the same held-out images: `information["image"]` (I_V(T → X), nats per image,
# relative to the decoder family), `information["caption"]` (≥ H(caption) − CE) and
# `information["factors"][label]` (≥ H(label) − CE of an MLP), with paired differences between models in
# `report.comparisons`. The table is the one `measure.md` starts with.

# %%
display(Markdown("\n".join(headline_section(report))))

# %% [markdown]
# ## 3 · The per-layer table
#
# One row per tapped block of the trained model, means over the world's discrete labels (the continuous
# ones are skipped: see the notes in section 5). Read down a column to see where in the network a
# quantity grows or falls.
#
# * **I(T; label) ≥** — two *lower bounds* per label, averaged: Ross's kNN estimator on a linear probe's
#   held-out logits, and H(label) − the probe's held-out cross-entropy (Barber–Agakov). The ceiling is
#   H(label), exact for the world. A bound below 0 says nothing (I ≥ 0 anyway): the probe predicts worse
#   than the label's marginal.
# * **probe / k-NN acc.** — held-out accuracy of the linear probe and of a cosine k-NN classifier, with
#   the majority-class rate in brackets: transfer, not information.
# * **I(X; T_σ)** — a geometry diagnostic: the noisy channel at σ = the budget's `plane_sigma` (10 by
#   default), absolute on the layer's whitened features: a property of σ and of the feature
#   distribution, at most log N (N the images it used).
# * **H(T)** — Kozachenko–Leonenko on the same whitened features, a diagnostic. **RankMe** — the
#   effective rank of the features, a proxy to compare within one objective only.
# * **I(T; caption) ≥** — InfoNCE against a bag-of-words text feature (last layer only in the `quick`
#   budget), at most log K.
#
# The quick budget measures the kNN bound and the geometry diagnostics on the last layer only
# (`diagnostic_layers`; `full` on every layer): the other rows leave those cells empty.


# %%
def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def layer_row(layer, plane_sigma):
    # Ross's kNN and the diagnostics are measured on the last layer only in the quick budget.
    knn = mean(
        row["knn_on_probe_logits"].value
        for row in layer.label_information.values()
        if "knn_on_probe_logits" in row
    )
    probe_ce = mean(row["probe_cross_entropy"].value for row in layer.label_information.values())
    probe = mean(row["linear_probe"].value for row in layer.transfer.values())
    majority = mean(row["linear_probe"].baseline for row in layer.transfer.values())
    neighbours = mean(row["knn"].value for row in layer.transfer.values())
    channel = layer.channel_at(plane_sigma)
    caption = layer.caption_information
    return [
        layer.layer,
        f"{knn:.3f}" if not math.isnan(knn) else "",
        f"{probe_ce:.3f}",
        f"{100 * probe:.1f}% ({100 * majority:.1f}%)",
        f"{100 * neighbours:.1f}%",
        f"{channel.value:.3f}" if channel is not None else "",
        f"{layer.entropy.value:.2f}" if layer.entropy is not None else "",
        f"{layer.effective_rank.value:.1f}" if layer.effective_rank is not None else "",
        f"{caption.value:.3f}" if caption is not None else "",
    ]


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


trained = report.models[0]
sigma = report.settings["plane_sigma"]
header = ["layer", "I(T; label) ≥ kNN", "≥ H − probe CE", "probe acc. (majority)", "k-NN acc.",
          f"I(X; T_σ), σ = {sigma:g} (whitened)", "H(T)", "RankMe", "I(T; caption) ≥"]  # fmt: skip
measured = list(trained.layers[-1].label_information)
ceiling = mean(report.label_entropies[label] for label in measured)
print(f"{trained.name}: the ceiling, mean H(label) over its {len(measured)} labels, is {ceiling:.3f} nats")
display(Markdown(markdown_table(header, [layer_row(layer, sigma) for layer in trained.layers])))

# %% [markdown]
# ## 4 · Every number carries its estimator
#
# Each information value is an `Estimate` from `estimators`: value in nats, standard error, `kind`
# (`point` or `lower_bound`), `ceiling`, the method and its settings, and its caveats. The last layer,
# label by label: both bounds next to the ceiling H(label), and the accuracy next to the majority rate.

# %%
last = trained.layers[-1]
rows = []
for label, bounds in last.label_information.items():
    entropy = report.label_entropies[label]
    probe = last.transfer[label]["linear_probe"]
    knn, probe_ce = bounds["knn_on_probe_logits"], bounds["probe_cross_entropy"]
    rows.append(
        [
            label,
            f"{entropy:.3f}",
            f"{knn.value:.3f} ± {knn.stderr:.3f}",
            f"{probe_ce.value:.3f} ± {probe_ce.stderr:.3f}",
            f"{100 * probe.value:.1f} ± {100 * probe.stderr:.1f}% ({100 * probe.baseline:.1f}%)",
        ]
    )
header = [
    "label",
    "H(label) = ceiling",
    "≥ Ross kNN on probe logits",
    "≥ H − probe CE",
    "probe acc. (majority)",
]
display(Markdown(markdown_table(header, rows)))

# %%
example = next(iter(last.label_information.values()))["knn_on_probe_logits"]
print("one label's kNN bound:", example.summary())
print("its kind:", example.kind, "| its settings:", example.params)
channel = last.channel_at(sigma)
print("\nthe noisy channel:", channel.summary())
print(
    f"  Kolchinsky–Tracey bracket [{channel.params['kt_lower']:.3f}, {channel.params['kt_upper']:.3f}] nats"
)
for warning in channel.warnings:
    print("  caveat:", warning)

# %% [markdown]
# ## 5 · The decoders' own bounds
#
# MUG's caption decoder gives I(T; caption) ≥ H(caption) − its cross-entropy (Barber–Agakov). H(caption)
# is exact for the world; since T is computed from the image, the tighter ceiling is I(image; caption),
# also exact. The pixel decoder gives a lower bound, in nats per masked patch, on what the visible
# patches' latent and the masked patch's position carry about that patch (through its top principal
# components: the caveats say how). A value below 0 says nothing: the decoder predicts worse than the
# marginal.

# %%
caption_ceiling = report.caption_information_total
for name, bound in trained.decoder_bounds.items():
    print(f"{name}: ≥ {bound.value:.3f} ± {bound.stderr:.3f} nats ({bound.kind})")
    if name == "caption_decoder":
        print(
            f"  H(caption) = {bound.params['entropy']:.3f}, ceiling I(image; caption) = {caption_ceiling:.3f}"
        )
    for warning in bound.warnings:
        print("  caveat:", warning)
# Notes repeat per layer ("block_0: label 'size' skipped: ..."): each is printed once, without the layer.
layer_names = {layer.layer for layer in trained.layers}


def without_layer(note):
    """The note without a leading "<layer name>: " (other notes, e.g. on the decoders, are kept whole)."""
    layer, _, rest = note.partition(": ")
    return rest if layer in layer_names else note


for note in dict.fromkeys(without_layer(note) for note in trained.notes):
    print("note:", note)

# %% [markdown]
# ## 6 · The anchors
#
# The oracle should sit at H(label) (the built-in anchor test allows 0.1 nats per label; in smoke mode
# the probe barely trains, so it may not). The random-init encoder shows how much the architecture
# alone already separates: a trained model is only interesting where it beats it.

# %%
rows = []
for model in report.models:
    layer = model.layers[-1]
    labels = list(layer.label_information)
    rows.append(
        [
            model.name,
            layer.layer,
            f"{mean(layer.label_information[label]['knn_on_probe_logits'].value for label in labels):.3f}",
            f"{mean(report.label_entropies[label] for label in labels):.3f}",
            f"{100 * mean(r['linear_probe'].value for r in layer.transfer.values()):.1f}%",
        ]
    )
header = ["model", "last layer", "mean I(T; label) ≥", "mean H(label), the ceiling", "mean probe acc."]
display(Markdown(markdown_table(header, rows)))

# %% [markdown]
# ## 7 · The plots `measure` wrote
#
# `information_per_layer.png`: I(T; label) per block against the dashed H(label). `information_plane.png`:
# I(X; T_σ) against the mean I(T; label), one point per block. `transfer.png`: probe and k-NN accuracy
# per block. `information_vs_transfer.png`: one point per (layer, label), with the Spearman correlation.
# `input_information.png`: I(X; T_σ) at every σ, and RankMe.

# %%
plots = sorted((RUN_DIR / "measure").glob("*.png"))
print([plot.name for plot in plots])
for plot in plots:
    display(Image(filename=str(plot)))

# %% [markdown]
# ## 8 · The report for people
#
# `measure.md` holds the same numbers with every estimate's settings and each caveat once; `infomug
# measure --ckpt RUN` writes the same folder from the command line.

# %%
display(Markdown((RUN_DIR / "measure" / "measure.md").read_text()))
