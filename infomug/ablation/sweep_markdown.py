"""``ablation.md``: a sweep's `SweepResults` as a document read top to bottom.

Sections: how to reproduce it, the settings (training, measurement, every estimator), the headline table
(main sweep, one row per variant), per-factor tables, decoder bounds, losses, the caption-noise check,
the information-transfer correlations, wall time, and notes. Conventions, as in ``measure.md``: nats with
3 decimals, accuracies in % with 1 decimal, ``≥`` before a lower bound; here ``mean ± h`` is the mean over
seeds with h the half-width of its 95% Student-t interval; ``(n=k)`` marks a cell over fewer seeds than
the sweep has (no interval at n = 1); ``n/a`` marks a metric the variant does not have or did not measure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from infomug.measure.markdown import LABEL_METHODS, cell
from infomug.measure.summaries import PROBE_KNN

from .report import SweepResults
from .stats import Summary

MISSING = "n/a"
LABEL_ESTIMATOR = LABEL_METHODS[PROBE_KNN]
ESTIMATORS = {
    "probe_acc": "held-out linear-probe accuracy (BatchNorm without affine, multinomial logistic regression)",
    "knn_acc": "held-out k-NN accuracy (cosine similarity, weighted vote)",
    "info": "I(T; factor): Ross kNN MI on held-out linear-probe logits, a lower bound by data processing;"
    " ceiling H(factor)",
    "input_info": "I(X; T + σZ): noisy channel, Gaussian-mixture entropy by sample propagation, σ relative to"
    " the layer's feature scale (RMS per-dimension std); ceiling log N",
    "entropy": "H(T): Kozachenko–Leonenko on scale-normalised features (scale-dependent, compare across runs"
    " only)",
    "effective_rank": "RankMe effective rank (a proxy, not information); ceiling min(N, D)",
    "caption_info": "I(T; caption): InfoNCE against a text feature, a lower bound; ceiling log K",
    "caption_decoder": "I(T; caption) by MUG's own caption decoder: Barber–Agakov lower bound; ceiling"
    " H(caption)",
    "pixel_decoder": "I(T, position; masked patch) by the pixel decoder: Barber–Agakov lower bound per patch",
    "train": "the last train record of each run's metrics.jsonl",
    "eval": "the last eval record of each run's metrics.jsonl",
}
PLOT_TITLES = {
    "metric_vs_lambda.png": "Transfer and information against lambda_L",
    "information_vs_transfer.png": "Information against transfer, every main-sweep run",
    "per_factor.png": "Linear-probe accuracy per factor",
    "caption_noise.png": "Caption noise",
}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def _number(value: float, kind: str) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if kind == "accuracy":
        return f"{100.0 * value:.1f}"
    return f"{value:.1f}" if kind == "rank" else f"{value:.3f}"


def format_summary(summary: Summary | None, info: dict[str, Any] | None, seeds: int | None = None) -> str:
    """``≥ 0.512 ± 0.034`` from a group's summary and its metric's record; ``n/a`` when None.

    Args:
        summary: The metric over the group's seeds.
        info: The metric's record (its ``kind`` sets the units, its ``bound`` the ``≥``).
        seeds: The sweep's number of seeds; a summary over another number says ``(n=k)``.
    """
    if summary is None or info is None or math.isnan(summary.mean):
        return MISSING
    kind = info["kind"]
    text = ("≥ " if info.get("bound") == "lower" else "") + _number(summary.mean, kind)
    if not math.isnan(summary.half_width):
        text += " ± " + _number(summary.half_width, kind)
    if summary.n != seeds:
        text += f" (n={summary.n})"
    return text


class _Writer:
    """Renders one `SweepResults`; holds the look-ups every section shares."""

    def __init__(self, results: SweepResults, plots: list[str]) -> None:
        self.results = results
        self.plots = plots
        self.seeds = len(results.spec["seeds"])

    def value(self, variant: str, key: str | None, noise: float | None = None) -> str:
        if key is None or not self.results.has_metric(key):
            return MISSING
        summary = self.results.summary(variant, key, noise)
        return format_summary(summary, self.results.metric(key), self.seeds)

    def plot(self, name: str) -> list[str]:
        return ["", f"![{PLOT_TITLES.get(name, name)}]({name})"] if name in self.plots else []

    def header(self) -> list[str]:
        results, settings = self.results, self.results.settings
        training = settings.get("training", {})
        runs = results.runs
        measured = sum(1 for run in runs if run["included"])
        budget = settings.get("budget", {})
        data = settings.get("eval_data", {})
        shown = ", ".join(f"{k}={v}" for k, v in budget.items() if k != "name")
        lines = [
            f"# Ablation: {results.name}",
            "",
            "Reproduce (the same command resumes an interrupted sweep;",
        ]
        lines += [
            "with `--report` it only rewrites this report from the folder):",
            "",
            "```",
            results.command,
        ]
        lines += ["```", "", "## Settings", ""]
        plural = "s" if self.seeds != 1 else ""
        noise = " + caption-noise runs" if results.noise_variants() else ""
        lines.append(
            f"- **Runs**: {len(results.variants())} variants × {self.seeds} seed{plural}{noise}:"
            f" {len(runs)} runs, {measured} measured"
        )
        lines.append("- **Seeds**: " + ", ".join(str(s) for s in results.spec["seeds"]))
        lines.append("- **Training**: " + ", ".join(f"{k}={_setting(v)}" for k, v in training.items()))
        source, split = data.get("source", MISSING), data.get("split", MISSING)
        lines.append(
            f"- **Measurement**: budget {budget.get('name', MISSING)} ({shown}); layer"
            f" {results.layer or MISSING} (the deepest measured); eval data {source}, split {split},"
            f" {data.get('images', MISSING)} images, pool {data.get('pool', MISSING)}"
        )
        lines.append(f"- **Interval**: {settings.get('interval', MISSING)}")
        lines.append("- **Estimators** (settings that are the same for every estimate):")
        for family, found in settings.get("estimators", {}).items():
            params = ", ".join(f"{k}={_setting(v)}" for k, v in found.get("params", {}).items())
            title = ESTIMATORS.get(family, family)
            lines.append(f"  - `{family}`: {title} — `{found['method']}` ({params or 'no settings'})")
        lines += ["", "## How to read this", ""]
        if self.seeds == 1:
            seeds = "This sweep has one seed: each number is its run's, without an interval."
        else:
            seeds = (
                "Every number is a mean over seeds: `m ± h` gives the mean m and the half-width h of its 95%"
                " Student-t interval (t with n − 1 degrees of freedom); `(n=k)` marks a mean over k of the"
                f" sweep's {self.seeds} seeds (one seed gives no interval)."
            )
        lines.append(
            f"{seeds} Information is in nats (3 decimals), accuracies in % (1 decimal, held-out). `≥` marks"
            " a lower bound: the true value is at least that, up to the estimator's error (below 0 it says"
            " nothing). I(X; T_σ) depends on σ; H(T) is scale-dependent and RankMe is a proxy: compare them"
            " across variants, not with a ceiling. `n/a`: the variant has no such quantity (CLIP and SimCLR"
            " have no decoders) or it was not measured."
        )
        return lines

    def headline(self) -> list[str]:
        results = self.results
        sigma, plane = results.plane_sigma, results.plane_key
        caption = results.metric("caption_info") if results.has_metric("caption_info") else None
        log_k = "" if caption is None or caption["ceiling"] is None else f", log K = {caption['ceiling']:.3f}"
        header = ["variant", "objective", "λ_L", "runs", "linear-probe acc %", "k-NN acc %"]
        header += [f"I(T; label) ≥ (lower bound), {LABEL_ESTIMATOR}, nats"]
        header += [f"I(X; T_σ), noisy channel, σ = {_sigma(sigma)}, nats", "H(T), Kozachenko–Leonenko, nats"]
        header += ["RankMe (proxy)", f"I(T; caption) ≥, InfoNCE{log_k}, nats", "final train loss (total)"]
        rows = []
        for group in results.groups():
            variant = group["variant"]
            lam = group["caption_loss_weight"]
            row = [variant, group["objective"], MISSING if lam is None else f"{lam:g}"]
            row.append(f"{group['n_seeds']}/{len(group.get('planned_runs', group['runs']))}")
            for key in ("probe_acc/mean", "knn_acc/mean", "info/mean", plane, "entropy", "effective_rank"):
                row.append(self.value(variant, key))
            rows.append(row + [self.value(variant, "caption_info"), self.value(variant, "train/loss")])
        lines = ["", f"## Headline: main sweep, layer {results.layer or MISSING}", ""]
        lines.append(
            "Means over factors of the per-factor quantities; λ_L is MUG's caption-loss weight (MAE is"
            " λ_L = 0; contrastive objectives have none); `runs` is measured/planned. The train loss is each"
            " objective's own total (MUG: pixel MSE + λ_L × caption cross-entropy; CLIP, SimCLR: contrastive"
            " cross-entropy): compare it within an objective, not across."
        )
        lines += ["", *_table(header, rows)]
        references = []
        if results.has_metric("probe_acc/mean") and results.metric("probe_acc/mean")["baseline"] is not None:
            baseline = 100 * results.metric("probe_acc/mean")["baseline"]
            references.append(f"majority class {baseline:.1f}% (mean over factors)")
        if results.has_metric("info/mean") and results.metric("info/mean")["ceiling"] is not None:
            entropy = results.metric("info/mean")["ceiling"]
            references.append(f"mean I(T; factor) ≤ mean H(factor) = {entropy:.3f} nats")
        if plane and results.has_metric(plane) and results.metric(plane)["ceiling"] is not None:
            references.append(f"I(X; T_σ) ≤ log N = {results.metric(plane)['ceiling']:.3f} nats")
        references += self.caption_ceiling()
        if references:
            lines += ["", "Ceilings and baselines: " + "; ".join(references) + "."]
        return lines + self.plot("metric_vs_lambda.png")

    def caption_ceiling(self) -> list[str]:
        # T is a function of the image, so no estimate of I(T; caption) can truly exceed I(image; caption).
        total = self.results.settings.get("caption_information_total")
        return [] if total is None else [f"I(T; caption) ≤ I(image; caption) = {total:.3f} nats (the data's)"]

    def per_factor(self) -> list[str]:
        results = self.results
        factors = results.factors()
        if not factors:
            return []
        lines = ["", "## Per factor", ""]
        titles = {
            "probe_acc": "Linear-probe accuracy (%)",
            "knn_acc": "k-NN accuracy (%)",
            "info": f"I(T; factor) ≥, nats ({LABEL_ESTIMATOR}, a lower bound)",
        }
        for prefix, title in titles.items():
            first = [f"**{'H(factor), ceiling' if prefix == 'info' else 'majority class'}**"]
            for factor in factors:
                key = f"{prefix}/{factor}"
                info = results.metric(key) if results.has_metric(key) else {}
                reference = info.get("ceiling") if prefix == "info" else info.get("baseline")
                first.append(MISSING if reference is None else _number(reference, info["kind"]))
            rows = [first]
            rows += [
                [group["variant"], *(self.value(group["variant"], f"{prefix}/{f}") for f in factors)]
                for group in results.groups()
            ]
            lines += [f"### {title}", "", *_table(["variant", *factors], rows), ""]
        return lines[:-1] + self.plot("per_factor.png")

    def decoders(self) -> list[str]:
        keys = [key for key in ("caption_decoder", "pixel_decoder") if self.results.has_metric(key)]
        if not keys:
            return []
        header = ["variant", *(f"{self.results.metric(key)['label']} ≥, nats" for key in keys)]
        rows = [
            [g["variant"], *(self.value(g["variant"], key) for key in keys)] for g in self.results.groups()
        ]
        lines = ["", "## Decoder bounds (MUG and MAE)", "", *_table(header, rows)]
        if "caption_decoder" in keys:
            ceilings = self.caption_ceiling()
            entropy = self.results.metric("caption_decoder")["ceiling"]
            if entropy is not None:
                ceilings.append(f"the bound's own ceiling H(caption) = {entropy:.3f} nats")
            if ceilings:
                lines += ["", "Ceilings of the caption decoder bound: " + "; ".join(ceilings) + "."]
        return lines

    def losses(self) -> list[str]:
        keys = self.results.metric_keys("train/") + self.results.metric_keys("eval/")
        if not keys:
            return []
        rows = [
            [g["variant"], *(self.value(g["variant"], key) for key in keys)] for g in self.results.groups()
        ]
        lines = ["", "## Losses", ""]
        lines.append(
            "The last logged train and eval values of each run, each term in its own units (pixel MSE on"
            " normalised patches; caption and contrastive cross-entropy in nats)."
        )
        return lines + ["", *_table(["variant", *keys], rows)]

    def caption_noise(self) -> list[str]:
        groups = self.results.noise_groups()
        if not groups:
            return []
        plane = self.results.plane_key
        keys = ["probe_acc/mean", "knn_acc/mean", "info/mean", plane, "caption_info", "caption_decoder"]
        keys += ["train/loss_caption"]
        titles = ["linear-probe acc %", "k-NN acc %", f"I(T; label) ≥, {LABEL_ESTIMATOR}, nats"]
        titles += [f"I(X; T_σ), noisy channel, σ = {_sigma(self.results.plane_sigma)}, nats"]
        titles += ["I(T; caption) ≥, InfoNCE, nats", "I(T; caption) ≥, caption decoder (Barber–Agakov), nats"]
        titles += ["final train loss_caption (on its own training captions)"]
        rows = []
        for group in groups:
            variant, noise = group["variant"], group["caption_noise"]
            row = [variant, f"{noise:g}", ", ".join(group["runs"]) or MISSING]
            rows.append(row + [self.value(variant, key, noise) for key in keys])
        lines = ["", "## Caption noise", ""]
        lines.append(
            "The listed variants trained with a fraction of their captions replaced by another image's;"
            " every run is measured on the same eval data. A caption-free objective's rows reuse its main"
            " runs (see the notes)."
        )
        lines += ["", *_table(["variant", "irrelevant fraction", "runs", *titles], rows)]
        return lines + self.plot("caption_noise.png")

    def correlations(self) -> list[str]:
        records = self.results.correlations
        if not records:
            return []
        rows = []
        for record in records:
            rho, p = record["spearman"], record["p_value"]
            rows.append(
                [
                    self._label(record["information"]),
                    self._label(record["transfer"]),
                    "undefined" if math.isnan(rho) else f"{rho:.3f}",
                    "—" if math.isnan(p) else f"{p:.3g}",
                    str(record["n"]),
                ]
            )
        lines = ["", "## Does more information transfer better?", ""]
        lines.append(
            "Spearman's rank correlation over the main sweep's measured runs, every seed a point. Seeds of"
            " one variant share its setting, so the points are not independent and the p-values (exact by"
            " permutation up to 8 runs, else scipy's t approximation) are optimistic. Undefined below 3 runs"
            " or when one side is constant."
        )
        if any(r["information"] == "info/mean" and r["transfer"] == "probe_acc/mean" for r in records):
            lines.append(
                "I(T; label) is measured on the linear probe's logits, so its agreement with linear-probe"
                " accuracy is partly by construction; against k-NN accuracy it is not."
            )
        lines += ["", *_table(["information", "transfer", "Spearman ρ", "p", "n"], rows)]
        return lines + self.plot("information_vs_transfer.png")

    def _label(self, key: str) -> str:
        if not self.results.has_metric(key):
            return key
        info = self.results.metric(key)
        return info["label"] + (" (lower bound)" if info["bound"] == "lower" else "")

    def wall_time(self) -> list[str]:
        rows = [
            [run["name"], run["state"], _seconds(run["train_seconds"]), _seconds(run["measure_seconds"])]
            for run in self.results.runs
        ]
        wall = self.results.wall_seconds
        rows.append(["**total**", "", _seconds(wall.get("train")), _seconds(wall.get("measure"))])
        total = wall.get("total")
        lines = ["", "## Wall time", ""]
        if total is not None:
            lines += [f"{total:.0f} s ({total / 60:.1f} min) in all, training and measuring.", ""]
        return lines + _table(["run", "state", "train s", "measure s"], rows)

    def notes(self) -> list[str]:
        notes = [f"- {note}" for note in self.results.notes]
        return ["", "## Notes", "", *(notes or ["None."])]


def _setting(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_setting(v)}" for k, v in value.items()) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sigma(sigma: float | None) -> str:
    return MISSING if sigma is None else f"{sigma:g} × feature scale"


def _seconds(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


def render_sweep_markdown(results: SweepResults, plots: Sequence[str] = ()) -> str:
    """The whole ``ablation.md``.

    Args:
        results: The aggregated sweep (any state: missing groups and metrics print as ``n/a``).
        plots: File names of the plots written next to it; each is linked where its section is.

    Returns:
        GitHub-flavoured markdown, ending in a newline.
    """
    writer = _Writer(results, list(plots))
    sections = [writer.header(), writer.headline(), writer.per_factor(), writer.decoders(), writer.losses()]
    sections += [writer.caption_noise(), writer.correlations(), writer.wall_time(), writer.notes()]
    return "\n".join(line for section in sections for line in section) + "\n"
