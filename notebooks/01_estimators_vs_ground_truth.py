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
# # 01 · The estimators against closed-form ground truth
#
# Every estimator in `estimators/` is run here on distributions whose mutual information (or entropy)
# is known exactly, and each plot shows the estimate, its 95% interval (± 1.96 standard errors) and
# the truth. The point is less that they work than **where each one stops working**:
#
# | family | functions | breaks when |
# |---|---|---|
# | kNN | `ksg_mi`, `kl_entropy`, `ross_mi` | the dimension grows; the MI is large for N |
# | closed form | `gaussian_mi`, `gaussian_copula_mi` | the dependence is not (copula-)Gaussian |
# | discrete | `discrete_mi` | there are many cells for N (plug-in bias) |
# | neural bounds | `neural_mi(bound=...)` | the MI exceeds log K (InfoNCE); variance e^I (NWJ, DV, MINE) |
# | noisy channel | `noisy_channel_mi` | σ is small: the value measures log N, not the encoder |
# | decoder bound | `barber_agakov_bound` | the decoder is wrong: the bound is only as good as the decoder |
#
# All values are in nats. Run it as is (full mode, a few minutes on 2 CPU cores) or with
# `INFOMUG_NOTEBOOK_MODE=smoke` (tiny samples, a few critic steps: it checks that the code runs, and
# its numbers are noisy).

# %%
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

import estimators
from estimators.samplers import (
    AdditiveUniformSampler,
    GaussianSampler,
    Spiral,
    StudentTSampler,
    TransformedSampler,
    asinh,
    half_cube,
)

MODE = os.environ.get("INFOMUG_NOTEBOOK_MODE", "full")
if MODE not in ("smoke", "full"):
    raise ValueError(f"INFOMUG_NOTEBOOK_MODE must be 'smoke' or 'full', got {MODE!r}")
SMOKE = MODE == "smoke"
SEED = 0
torch.manual_seed(SEED)
if SMOKE:
    torch.set_num_threads(1)

N = 400 if SMOKE else 5_000  # samples per kNN / closed-form estimate
DIMS = (1, 2, 4) if SMOKE else (1, 2, 4, 8, 16)  # dimensions for the bias-with-dimension plots
NEURAL_N = 320 if SMOKE else 10_000
NEURAL_SETTINGS = (
    dict(batch_size=16, max_steps=60, eval_every=20, patience=2, hidden=32, embed_dim=8, learning_rate=3e-3)
    if SMOKE
    else dict(batch_size=64, max_steps=2000)
)
NEURAL_LEVELS = (0.5, 2.0, 5.0) if SMOKE else (0.5, 1.0, 2.0, 4.0, 6.0, 8.0)  # true MI, nats
print(f"mode: {MODE}; N = {N}; neural N = {NEURAL_N}, K = {NEURAL_SETTINGS['batch_size']}")


# %% [markdown]
# Two small helpers: one draws estimates against the truth with their 95% intervals, the other
# builds a Gaussian whose `pairs` correlated coordinate pairs carry exactly `mi` nats in total
# (I = −(pairs / 2) log(1 − ρ²), so ρ = √(1 − exp(−2 I / pairs))).


# %%
def plot_against_truth(ax, truth, estimates, label, marker="o"):
    """Estimates (a list of `Estimate`) against the true values, with 1.96-standard-error bars (none where
    an estimate has no standard error)."""
    values = np.array([e.value for e in estimates])
    errors = np.array([1.96 * e.stderr if math.isfinite(e.stderr) else 0.0 for e in estimates])
    ax.errorbar(truth, values, yerr=errors, marker=marker, capsize=3, linestyle="-", label=label)


def gaussian_with_mi(mi, dim, pairs=None):
    """A `dim`+`dim` Gaussian whose first `pairs` coordinate pairs share `mi` nats in total."""
    pairs = dim if pairs is None else pairs
    rho = math.sqrt(1.0 - math.exp(-2.0 * mi / pairs))
    return GaussianSampler.sparse(dim, dim, rho, n_interacting=pairs)


# %% [markdown]
# ## 1 · KSG: accurate in a few dimensions, biased low in many
#
# Left: a 1+1-D Gaussian at growing correlation; KSG follows the diagonal. Middle: the same total MI
# (`SPREAD_MI`, 0.5 nats) spread over `d` correlated pairs in `d`+`d` dimensions; KSG's share of the
# truth falls as `d` grows (its kNN balls stop being local). Right: large MI in 1+1 D; the estimate
# falls below the truth as the MI grows, because KSG needs a sample size exponential in the MI, and it
# can never report more than ψ(N) − ψ(k) (the `ceiling` field of every `Estimate`).

# %%
figure, axes = plt.subplots(1, 3, figsize=(14, 4))

correlations = (0.0, 0.3, 0.6, 0.8, 0.9, 0.95)
samplers = [GaussianSampler.sparse(1, 1, rho) for rho in correlations]
truth = [s.mutual_information() for s in samplers]
ksg = [estimators.ksg_mi(*s.sample(N, rng=SEED), k=3) for s in samplers]
plot_against_truth(axes[0], truth, ksg, "KSG, k = 3")
axes[0].plot([0, max(truth)], [0, max(truth)], "k--", label="truth")
axes[0].set(title="1+1-D Gaussian", xlabel="true I (nats)", ylabel="estimate (nats)")

SPREAD_MI = 0.5  # nats, whatever the dimension
spread = []
for dim in DIMS:
    sampler = gaussian_with_mi(SPREAD_MI, dim)
    estimate = estimators.ksg_mi(*sampler.sample(N, rng=SEED), k=3)
    spread.append((sampler.mutual_information(), estimate))
    print(
        f"d = {dim:2d}+{dim:<2d}  truth {sampler.mutual_information():.3f}  KSG {estimate.value:.3f}"
        f" ± {estimate.stderr:.3f}"
    )
axes[1].errorbar(
    DIMS,
    [e.value / true for true, e in spread],
    yerr=[1.96 * e.stderr / true for true, e in spread],
    marker="o",
    capsize=3,
)
axes[1].axhline(1.0, color="k", linestyle="--")
axes[1].set(
    title=f"{SPREAD_MI} nats over d pairs", xlabel="d (each of X, Y)", ylabel="estimate / truth", xscale="log"
)
axes[1].set_xticks(DIMS, [str(d) for d in DIMS])
axes[1].minorticks_off()

large = [gaussian_with_mi(mi, 1) for mi in (1.0, 2.0, 3.0, 4.0, 5.0)]
ksg_large = [estimators.ksg_mi(*s.sample(N, rng=SEED), k=3) for s in large]
truth_large = [s.mutual_information() for s in large]
plot_against_truth(axes[2], truth_large, ksg_large, f"KSG, N = {N}")
axes[2].plot([0, max(truth_large)], [0, max(truth_large)], "k--", label="truth")
axes[2].axhline(ksg_large[0].ceiling, color="r", linestyle=":", label="ceiling ψ(N) − ψ(k)")
axes[2].set(title="large MI, 1+1 D", xlabel="true I (nats)", ylabel="estimate (nats)")
for ax in axes[[0, 2]]:
    ax.legend()
figure.tight_layout()

# %% [markdown]
# Every `Estimate` prints itself with the settings that made it; its warnings say when it is near the
# ceiling or still moving between N/2 and N (bias that the error bar does not cover):

# %%
print(ksg_large[-1].summary())
for warning in ksg_large[-1].warnings:
    print("  warning:", warning)

# %% [markdown]
# ## 2 · Kozachenko–Leonenko entropy
#
# `kl_entropy` estimates differential entropy (in the data's own units: it standardises and adds the
# log-Jacobian back). On a standard Gaussian, a uniform cube (h = 0 for U(0, 1)^d) and a heavy-tailed
# Student-t (3 degrees of freedom), the error grows with dimension, and not always in the same direction.
# It grows fastest for the cube: near its faces the kNN balls reach outside the support, where the
# density is zero, and the estimate rises above the truth.

# %%
cases = {
    "Gaussian": lambda d: GaussianSampler.sparse(d, 1, 0.0, n_interacting=1),
    "uniform": lambda d: AdditiveUniformSampler(d, 0.5),
    "Student-t (ν = 3)": lambda d: StudentTSampler(np.eye(d + 1), d, 3.0),
}
figure, ax = plt.subplots(figsize=(6, 4))
for name, make in cases.items():
    errors, bars = [], []
    for dim in DIMS:
        sampler = make(dim)
        x, _ = sampler.sample(N, rng=SEED)
        estimate = estimators.kl_entropy(x, k=3)
        errors.append(estimate.value - sampler.entropy_x())
        bars.append(1.96 * estimate.stderr)
    ax.errorbar(DIMS, errors, yerr=bars, marker="o", capsize=3, label=name)
ax.axhline(0.0, color="k", linestyle="--")
ax.set(title=f"kl_entropy − true h(X), N = {N}", xlabel="dimension", ylabel="error (nats)", xscale="log")
ax.set_xticks(DIMS, [str(d) for d in DIMS])
ax.minorticks_off()
ax.legend()
figure.tight_layout()

# %% [markdown]
# ## 3 · Closed forms: exact when their assumption holds, blind when it does not
#
# `gaussian_mi` is the MI of the Gaussian with the sample's covariance, `gaussian_copula_mi` the same
# after mapping each column to normal scores by rank. On a 3+3-D Gaussian both are consistent, and land
# on the truth within their error bars, while KSG, at 6 joint dimensions, already runs low. A monotone
# map of each coordinate (`half_cube`, `asinh`) leaves the MI unchanged: the copula estimate does not
# move (ranks are unchanged), the plain Gaussian estimate does. A spiral on X (a rotation by an angle
# that grows with the squared norm) hides dependence that correlation sees only in part, and a
# Student-t with identity dispersion (X and Y uncorrelated, but dependent through a shared scale) hides
# it from correlation altogether: both closed forms report too little, KSG more but still not all. On
# the Student-t the plain Gaussian estimate is erratic besides: at ν = 2 the variance is infinite, and
# the sample covariance is ruled by a few extreme points.

# %%
base = gaussian_with_mi(1.0, 3)
cases = {
    "Gaussian 3+3": base,
    "half_cube / asinh": TransformedSampler(base, half_cube, asinh),
    "spiral": TransformedSampler(base, Spiral(3, speed=0.5)),
    "Student-t ν = 2": StudentTSampler(np.eye(6), 3, 2.0),
}
methods = ("gaussian", "copula", "ksg")
results = {}
for name, sampler in cases.items():
    x, y = sampler.sample(N, rng=SEED)
    results[name] = {method: estimators.estimate(x, y, method=method) for method in methods}
    row = "  ".join(f"{m} {e.value:6.3f} ± {e.stderr:.3f}" for m, e in results[name].items())
    print(f"{name:18s} truth {sampler.mutual_information():.3f}  {row}")

figure, ax = plt.subplots(figsize=(8, 4))
positions = np.arange(len(cases))
width = 0.2
ax.bar(
    positions - 1.5 * width, [s.mutual_information() for s in cases.values()], width, label="truth", color="k"
)
for offset, method in enumerate(methods):
    values = [results[name][method].value for name in cases]
    errors = [1.96 * results[name][method].stderr for name in cases]
    ax.bar(positions + (offset - 0.5) * width, values, width, yerr=errors, capsize=3, label=method)
ax.set_xticks(positions, list(cases))
ax.set(ylabel="I (nats)", title=f"closed forms and KSG, N = {N}")
ax.legend()
figure.tight_layout()

# %% [markdown]
# ## 4 · Labels: Ross's kNN estimator and the discrete plug-in
#
# `ross_mi` estimates I(X; Y) for continuous X and a discrete label Y, the estimator `infomug measure`
# uses for I(T; label). Here Y is uniform over 4 classes and X = Y + U(0, w): for w ≤ 1 the classes do
# not overlap and I = H(Y) = log 4; wider, they overlap and I = h(X) − log w, with h(X) integrated
# exactly (the density is piecewise constant). Then `discrete_mi` on two *independent* variables of
# c categories each: the plug-in estimate is biased up, by about (c − 1)² / 2N while N ≫ c², and the
# Miller–Madow correction removes most of that. Once the joint table has about as many cells as there
# are samples both fail: the value then measures N. The estimate warns from fewer than 5 samples per
# occupied cell on (printed below the plot).


# %%
def shifted_uniform_mi(classes, width):
    """I(X; Y) in nats for Y uniform on {0..classes-1} and X = Y + U(0, width)."""
    edges = np.unique(np.concatenate([np.arange(classes), np.arange(classes) + width]))
    mids = (edges[:-1] + edges[1:]) / 2
    counts = ((mids[:, None] >= np.arange(classes)) & (mids[:, None] < np.arange(classes) + width)).sum(1)
    density = counts / (classes * width)
    inside = density > 0
    h_x = -np.sum(np.diff(edges)[inside] * density[inside] * np.log(density[inside]))
    return h_x - math.log(width)


rng = np.random.default_rng(SEED)
widths = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
truth_labels, ross = [], []
for width in widths:
    labels = rng.integers(0, 4, size=N)
    x = labels + rng.uniform(0.0, width, size=N)
    truth_labels.append(shifted_uniform_mi(4, width))
    ross.append(estimators.ross_mi(x, labels, k=3))

figure, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].plot(widths, truth_labels, "k--", label="truth")
axes[0].errorbar(
    widths,
    [e.value for e in ross],
    yerr=[1.96 * e.stderr for e in ross],
    marker="o",
    capsize=3,
    label="ross_mi, k = 3",
)
axes[0].axhline(math.log(4), color="r", linestyle=":", label="H(Y) = log 4")
axes[0].set(title="4 classes, X = Y + U(0, w)", xlabel="w", ylabel="I (nats)")
axes[0].legend()

categories = (2, 4, 8, 16, 32, 64)
plugin, corrected = [], []
for count in categories:
    a, b = rng.integers(0, count, size=N), rng.integers(0, count, size=N)
    plugin.append(estimators.discrete_mi(a, b, correction="none"))
    corrected.append(estimators.discrete_mi(a, b))
axes[1].plot(categories, [e.value for e in plugin], "o-", label="plug-in")
axes[1].plot(categories, [e.value for e in corrected], "o-", label="Miller–Madow")
axes[1].plot(categories, [(c - 1) ** 2 / (2 * N) for c in categories], "k:", label="(c − 1)² / 2N")
axes[1].axhline(0.0, color="k", linestyle="--")
axes[1].set(
    title=f"independent labels, N = {N} (truth 0)",
    xlabel="categories c each",
    ylabel="I (nats)",
    xscale="log",
    ylim=(-0.2, 1.3 * max(e.value for e in plugin)),
)
axes[1].set_xticks(categories, [str(c) for c in categories])
axes[1].minorticks_off()
axes[1].legend()
figure.tight_layout()
for count, estimate in zip(categories, corrected, strict=True):
    if estimate.warnings:
        print(f"c = {count}: Miller–Madow {estimate.value:.3f} nats; warning: {estimate.warnings[0]}")

# %% [markdown]
# ## 5 · Neural variational bounds: InfoNCE stops at log K
#
# `neural_mi(x, y, bound)` trains a critic on 60% of the pairs, stops when the bound on another 20%
# stops improving, and reports the bound on the last 20%. Here: a 5+5-D Gaussian at growing MI.
# InfoNCE is a low-variance bound that can never exceed log K (K = the batch size): past it, it
# saturates. NWJ, DV and MINE can in principle go higher, at a variance that grows like e^I, so at
# large MI they are noisy or diverge (their warnings say so); SMILE clips that variance away at the
# price of a bias in either direction (it is labelled a `point`, not a bound). In smoke mode the
# critics barely train: the shapes, not the values, are what it checks.

# %%
bounds = ("infonce", "nwj", "dv", "mine", "js", "smile", "interpolated")
neural_samplers = [gaussian_with_mi(mi, 5) for mi in NEURAL_LEVELS]
neural_truth = [s.mutual_information() for s in neural_samplers]
neural = {bound: [] for bound in bounds}
for sampler in neural_samplers:
    x, y = sampler.sample(NEURAL_N, rng=SEED)
    for bound in bounds:
        neural[bound].append(estimators.neural_mi(x, y, bound, seed=SEED, progress=False, **NEURAL_SETTINGS))

figure, ax = plt.subplots(figsize=(7, 5))
for bound in bounds:
    plot_against_truth(ax, neural_truth, neural[bound], bound)
top = max(neural_truth)
ax.plot([0, top], [0, top], "k--", label="truth")
ax.axhline(neural["infonce"][0].ceiling, color="r", linestyle=":", label="log K (InfoNCE's ceiling)")
ax.set(
    title=f"5+5-D Gaussian, N = {NEURAL_N}, K = {NEURAL_SETTINGS['batch_size']}",
    xlabel="true I (nats)",
    ylabel="estimate (nats; a lower bound except SMILE)",
    ylim=(-1, top + 1),
)
ax.legend(fontsize=8)
figure.tight_layout()

# %%
print(neural["infonce"][-1].summary())
for warning in neural["infonce"][-1].warnings:
    print("  warning:", warning)

# %% [markdown]
# ## 6 · The noisy channel: a property of σ, capped at log N
#
# `noisy_channel_mi(features, sigma=s)` is the estimator behind what `infomug measure` reports as
# I(X; T_σ): the information N deterministic feature vectors pass through added Gaussian noise of
# standard deviation σ. `measure` passes `relative_sigma` instead (σ as a multiple of the features' RMS
# standard deviation); here the features have unit variance, so σ is given directly, in their units.
# For Gaussian features T ~ N(0, I_d) the population value is (d / 2) log(1 + 1/σ²); the sample of N
# points carries at most log N. At large σ the estimate follows the population curve, at small σ it
# measures only that the N points are distinct. The Kolchinsky–Tracey bracket (`params["kt_lower"]`,
# `["kt_upper"]`) is drawn as a band.

# %%
channel_dim = 4
channel_n = 300 if SMOKE else 3_000
features = np.random.default_rng(SEED).normal(size=(channel_n, channel_dim))
sigmas = (0.03, 0.1, 0.3, 1.0, 3.0)
channel = [estimators.noisy_channel_mi(features, sigma=s, seed=SEED) for s in sigmas]
figure, ax = plt.subplots(figsize=(6, 4))
plot_against_truth(ax, sigmas, channel, "noisy_channel_mi")
ax.fill_between(
    sigmas,
    [e.params["kt_lower"] for e in channel],
    [e.params["kt_upper"] for e in channel],
    alpha=0.2,
    label="Kolchinsky–Tracey bracket",
)
ax.plot(sigmas, [channel_dim / 2 * math.log(1 + 1 / s**2) for s in sigmas], "k--", label="population value")
ax.axhline(math.log(channel_n), color="r", linestyle=":", label="log N")
ax.set(
    title=f"T ~ N(0, I_{channel_dim}), N = {channel_n}",
    xlabel="σ (absolute; the features have unit variance)",
    ylabel="I(X; T + σZ) (nats)",
    xscale="log",
)
ax.legend()
figure.tight_layout()

# %% [markdown]
# ## 7 · Barber–Agakov: a decoder's likelihood is a lower bound
#
# I(X; Y) ≥ H(Y) − E[−log q(y | x)] for any decoder q: `barber_agakov_bound(nll, entropy)`. `infomug
# measure` uses it with MUG's caption decoder and the pixel decoder. On a 1+1-D Gaussian with ρ = 0.9
# the exact conditional q(y | x) = N(ρx, 1 − ρ²) attains the truth; a decoder with a shrunk mean or a
# wrong variance proves less.

# %%
rho = 0.9
pair = GaussianSampler.sparse(1, 1, rho)
x, y = pair.sample(N, rng=SEED)
x, y = x[:, 0], y[:, 0]
decoders = {
    "exact: N(ρx, 1 − ρ²)": (rho, 1 - rho**2),
    "shrunk mean: N(ρx / 2, 1 − ρ²)": (rho / 2, 1 - rho**2),
    "variance × 4": (rho, 4 * (1 - rho**2)),
}
print(f"truth {pair.mutual_information():.3f} nats")
for name, (slope, variance) in decoders.items():
    nll = estimators.gaussian_nll((y - slope * x)[:, None], variance)
    bound = estimators.barber_agakov_bound(nll, pair.entropy_y(), discrete=False)
    print(f"{name:32s} bound {bound.value:.3f} ± {bound.stderr:.3f}")

# %% [markdown]
# ## 8 · `method="auto"` says which estimator it chose and why
#
# `estimate(x, y)` routes by ties, dimension and N (KSG up to 4 joint dimensions; above, the copula,
# challenged by KSG up to 8 joint dimensions and by an InfoNCE bound; smoke mode leaves the InfoNCE
# challenger out). The reason
# and every candidate are kept in `params`.

# %%
auto_cases = {
    "1+1-D Gaussian": gaussian_with_mi(1.0, 1),
    "3+3-D Student-t": StudentTSampler(np.eye(6), 3, 2.0),
}
for name, sampler in auto_cases.items():
    x, y = sampler.sample(N, rng=SEED)
    result = estimators.auto_mi(x, y, neural=not SMOKE, progress=False)  # smoke: no InfoNCE challenger
    print(f"{name}: truth {sampler.mutual_information():.3f}; {result.summary()}")
    print("  reason:", result.params["auto_reason"])

# %% [markdown]
# ## Reading these numbers
#
# * Compare representations with **the same estimator, N and settings**: KSG's bias in high dimension
#   depends on d, N and the MI itself, so two values from different settings are not comparable, and
#   even at the same settings only their ordering, not their difference, may be meaningful.
# * A **lower bound** (InfoNCE, NWJ, a probe, a decoder) can only prove *at least*; read it with its
#   ceiling (log K, H(label)).
# * The **error bar is statistical**: it does not cover the bias visible in sections 1, 2 and 5.
# * I(X; T_σ) of a deterministic encoder is a **property of σ**; near log N it measures the sample.
