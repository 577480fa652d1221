"""The sweep's aggregated report: ``ablation.json`` (everything), ``ablation.md`` (for people), and plots.

    from infomug.ablation.report import read_sweep_results
    results = read_sweep_results("runs/ablation_cpu")
    results.summary("mug_0.1", "probe_acc/mean")          # Summary(mean, half_width, n, values)
    [g["variant"] for g in results.groups()]                # main sweep, spec order

``ablation.json`` holds ``schema_version``, ``name``, ``spec``, ``command`` (to reproduce), ``layer``,
``settings``, ``metrics`` (what each key means), ``runs`` (every planned run with its state and metrics),
``groups`` (one per (variant, caption noise): its runs and a `Summary` per metric), ``correlations``
(Spearman over the main sweep's runs), ``notes`` and ``wall_seconds``. A group summarises its measured
runs only: diverged and not yet measured runs are left out and named in the notes, so a half-finished
sweep has a report too. NaN (a half-width over one seed, an undefined rho) is written as JSON ``NaN``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infomug.files import write_atomically

from .collect import RunRecord, collect_sweep, family_rank, input_info_key, metric_family
from .notes import sweep_notes, sweep_settings
from .plan import SweepPlan
from .runner import load_sweep_folder
from .stats import Summary, spearman, t_interval

SCHEMA_VERSION = 1
JSON_FILE = "ablation.json"
MARKDOWN_FILE = "ablation.md"


@dataclass
class SweepResults:
    """The contents of ``ablation.json``, with the look-ups the markdown, the plots and notebooks use.

    Attributes mirror the JSON keys (``group_records`` is ``groups``); records stay plain dicts so that
    code reading the JSON and code reading this class use the same names.
    """

    name: str
    spec: dict[str, Any]
    command: str
    layer: str | None
    settings: dict[str, Any]
    metrics: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    group_records: list[dict[str, Any]]
    correlations: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    wall_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What ``ablation.json`` holds (see the module docstring); `from_dict` reads it back."""
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "spec": self.spec,
            "command": self.command,
            "layer": self.layer,
            "settings": self.settings,
            "metrics": self.metrics,
            "runs": self.runs,
            "groups": self.group_records,
            "correlations": self.correlations,
            "notes": self.notes,
            "wall_seconds": self.wall_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResults:
        """Inverse of `to_dict`.

        Raises:
            ValueError: for another schema version or a missing key.
        """
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"ablation.json schema version {version!r} is not {SCHEMA_VERSION}")
        try:
            return cls(
                name=data["name"],
                spec=data["spec"],
                command=data["command"],
                layer=data["layer"],
                settings=data["settings"],
                metrics=data["metrics"],
                runs=data["runs"],
                group_records=data["groups"],
                correlations=data["correlations"],
                notes=list(data.get("notes", [])),
                wall_seconds=dict(data.get("wall_seconds", {})),
            )
        except KeyError as error:
            raise ValueError(f"ablation.json lacks {error}") from None

    # -- look-ups ------------------------------------------------------------------------------------

    def variants(self) -> list[str]:
        """The sweep's variants, in the spec's (table) order."""
        return list(self.spec["variants"])

    def noise_variants(self) -> list[str]:
        """The variants of the caption-noise check (empty without one)."""
        noise = self.spec.get("caption_noise")
        return list(noise["variants"]) if noise else []

    def noise_fractions(self) -> list[float]:
        """The caption-noise fractions, ascending (empty without a check)."""
        noise = self.spec.get("caption_noise")
        return sorted(float(f) for f in noise["fractions"]) if noise else []

    def groups(self, caption_noise: float | None = None) -> list[dict[str, Any]]:
        """The groups at ``caption_noise`` (None: the main sweep), in variant order."""
        order = self.variants()
        chosen = [g for g in self.group_records if _same_noise(g["caption_noise"], caption_noise)]
        return sorted(chosen, key=lambda g: order.index(g["variant"]))

    def noise_groups(self) -> list[dict[str, Any]]:
        """Every caption-noise group, by variant then fraction."""
        order = self.variants()
        chosen = [g for g in self.group_records if g["caption_noise"] is not None]
        return sorted(chosen, key=lambda g: (order.index(g["variant"]), g["caption_noise"]))

    def group(self, variant: str, caption_noise: float | None = None) -> dict[str, Any]:
        """The group of ``variant`` at ``caption_noise``.

        Raises:
            KeyError: if the sweep has no such group.
        """
        for record in self.group_records:
            if record["variant"] == variant and _same_noise(record["caption_noise"], caption_noise):
                return record
        raise KeyError(f"no group ({variant!r}, caption noise {caption_noise}) in sweep {self.name!r}")

    def metric(self, key: str) -> dict[str, Any]:
        """What metric ``key`` is (label, kind, unit, bound, ceiling, method).

        Raises:
            KeyError: for a key no run measured, listing the known keys.
        """
        for record in self.metrics:
            if record["key"] == key:
                return record
        raise KeyError(f"no metric {key!r}; known: {[m['key'] for m in self.metrics]}")

    def has_metric(self, key: str) -> bool:
        """Whether any run measured metric ``key``."""
        return any(record["key"] == key for record in self.metrics)

    def metric_keys(self, prefix: str | None = None) -> list[str]:
        """Every metric key, or those starting with ``prefix`` (e.g. ``"train/"``)."""
        return [m["key"] for m in self.metrics if prefix is None or m["key"].startswith(prefix)]

    def factors(self) -> list[str]:
        """The factors (labels) measured, in the measure report's order."""
        keys = self.metric_keys("probe_acc/") + self.metric_keys("info/") + self.metric_keys("knn_acc/")
        names = [key.split("/", 1)[1] for key in keys]
        return [name for name in dict.fromkeys(names) if name != "mean"]

    def summary(self, variant: str, key: str, caption_noise: float | None = None) -> Summary | None:
        """Mean and t-interval of ``key`` over the group's measured runs; None when none has it.

        Raises:
            KeyError: if the sweep has no such group.
        """
        record = self.group(variant, caption_noise)["summary"].get(key)
        return None if record is None else Summary.from_dict(record)

    def run(self, name: str) -> dict[str, Any]:
        """The run record named ``name``.

        Raises:
            KeyError: for an unknown run.
        """
        for record in self.runs:
            if record["name"] == name:
                return record
        raise KeyError(f"no run {name!r} in sweep {self.name!r}")

    def group_runs(self, variant: str, caption_noise: float | None = None) -> list[dict[str, Any]]:
        """The measured run records of a group, in seed order."""
        return [self.run(name) for name in self.group(variant, caption_noise)["runs"]]

    @property
    def plane_sigma(self) -> float | None:
        """The relative sigma of the information plane (the headline I(X; T_sigma)), or None."""
        value = self.settings.get("plane_sigma")
        return None if value is None else float(value)

    @property
    def plane_key(self) -> str | None:
        """The metric key of I(X; T_sigma) at the plane sigma, or None."""
        return None if self.plane_sigma is None else input_info_key(self.plane_sigma)

    def correlation(self, information: str, transfer: str) -> dict[str, Any] | None:
        """The correlation record of ``information`` vs ``transfer``, or None if not computed."""
        for record in self.correlations:
            if record["information"] == information and record["transfer"] == transfer:
                return record
        return None

    def lambda_l(self, variant: str) -> float | None:
        """lambda_L of ``variant`` (0 for MAE, None for contrastive objectives).

        Raises:
            KeyError: for a variant the sweep does not have.
        """
        return self.group(variant)["caption_loss_weight"]

    def objective(self, variant: str) -> str:
        """``model.objective`` of ``variant`` (``"mae"``, ``"mug"``, ``"clip"``, ``"simclr"``).

        Raises:
            KeyError: for a variant the sweep does not have.
        """
        return self.group(variant)["objective"]


def _same_noise(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


# Each information metric against each transfer metric, over the main sweep's runs (every seed a point);
# the input information is taken at the plane sigma.
CORRELATED_INFORMATION = ("input_info", "info/mean", "entropy", "effective_rank")
CORRELATED_TRANSFER = ("probe_acc/mean", "knn_acc/mean")


def _metric_records(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One record per metric key any run has; a ceiling or baseline that differs between runs is None."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        for key, value in record.values.items():
            info = value.info.to_dict()
            if key not in found:
                found[key] = info
                continue
            for name in ("ceiling", "baseline"):
                old, new = found[key][name], info[name]
                if old is not None and (new is None or not math.isclose(old, new, rel_tol=1e-9)):
                    found[key][name] = None

    # Within a family, factors keep the measure report's order and their mean comes last.
    keys = sorted(found, key=lambda k: (family_rank(metric_family(k)), k.endswith("/mean")))
    return [found[key] for key in keys]


def _run_record(record: RunRecord) -> dict[str, Any]:
    run = record.run
    return {
        "name": run.name,
        "variant": run.variant,
        "seed": run.seed,
        "caption_noise": run.caption_noise,
        "objective": run.objective,
        "caption_loss_weight": run.caption_loss_weight,
        "state": record.state,
        "included": record.included,
        "layer": record.layer,
        "train_seconds": record.train_seconds,
        "measure_seconds": record.measure_seconds,
        "metrics": {key: value.value for key, value in record.values.items()},
        "stderr": {key: v.stderr for key, v in record.values.items() if not math.isnan(v.stderr)},
    }


def _groups(plan: SweepPlan, records: dict[str, RunRecord]) -> list[dict[str, Any]]:
    """One group per (variant, caption noise) of the plan's cells, summarising its measured runs."""
    cells: dict[tuple[str, float | None], list[str]] = {}
    for cell in plan.cells:
        cells.setdefault((cell.variant, cell.caption_noise), []).append(cell.run)
    groups = []
    for (variant, noise), names in cells.items():
        measured = [name for name in names if records[name].included]
        values: dict[str, list[float]] = {}
        for name in measured:
            for key, value in records[name].values.items():
                values.setdefault(key, []).append(value.value)
        first = plan.run(names[0])
        groups.append(
            {
                "variant": variant,
                "caption_noise": noise,
                "objective": first.objective,
                "caption_loss_weight": first.caption_loss_weight,
                "runs": measured,
                "planned_runs": names,
                "n_seeds": len(measured),
                "summary": {key: t_interval(column).to_dict() for key, column in values.items()},
            }
        )
    return groups


def _correlations(
    plan: SweepPlan, records: dict[str, RunRecord], plane_key: str | None
) -> list[dict[str, Any]]:
    main = [records[c.run] for c in plan.cells if c.caption_noise is None and records[c.run].included]
    correlations = []
    for information in CORRELATED_INFORMATION:
        key = plane_key if information == "input_info" else information
        if key is None:
            continue
        for transfer in CORRELATED_TRANSFER:
            both = [r.values for r in main if key in r.values and transfer in r.values]
            if not both:
                continue
            pairs = [(values[key].value, values[transfer].value) for values in both]
            result = spearman([x for x, _ in pairs], [y for _, y in pairs])
            correlations.append(
                {
                    "information": key,
                    "transfer": transfer,
                    "spearman": result.rho,
                    "p_value": result.p_value,
                    "n": result.n,
                    "runs": "main sweep",
                }
            )
    return correlations


def build_sweep_results(root: str | Path) -> SweepResults:
    """Read the sweep folder ``root`` into `SweepResults` (nothing is written).

    Raises:
        FileNotFoundError: if ``root`` is not a sweep folder.
        ValueError: if its sweep.yaml is invalid (e.g. its base run config no longer exists).
    """
    root = Path(root)
    spec, layout, plan = load_sweep_folder(root)
    records = collect_sweep(layout, plan)
    by_name = {record.run.name: record for record in records}
    settings = sweep_settings(spec, layout, plan, records)
    plane_sigma = settings.get("plane_sigma")
    plane_key = None if plane_sigma is None else input_info_key(plane_sigma)
    layers = list(dict.fromkeys(r.layer for r in records if r.included and r.layer is not None))
    train = sum(r.train_seconds or 0.0 for r in records)
    measure = sum(r.measure_seconds or 0.0 for r in records)
    return SweepResults(
        name=spec.name,
        spec=spec.to_dict(),
        command=f"infomug ablate --config {layout.spec} --out {layout.root}",
        layer=" / ".join(layers) if layers else None,
        settings=settings,
        metrics=_metric_records(records),
        runs=[_run_record(record) for record in records],
        group_records=_groups(plan, by_name),
        correlations=_correlations(plan, by_name, plane_key),
        notes=sweep_notes(spec, plan, records),
        wall_seconds={"train": train, "measure": measure, "total": train + measure},
    )


def write_sweep_report(root: str | Path) -> Path:
    """Aggregate the sweep folder ``root`` into ``ablation.json``, ``ablation.md`` and PNG plots there.

    Works on a partial sweep: what is not measured yet is left out and named in the notes.

    Returns:
        The path of ``ablation.md``.

    Raises:
        FileNotFoundError: if ``root`` is not a sweep folder.
    """
    from .plots import write_sweep_plots
    from .sweep_markdown import render_sweep_markdown

    root = Path(root)
    results = build_sweep_results(root)
    plots = write_sweep_plots(results, root)
    write_atomically(root / JSON_FILE, json.dumps(results.to_dict(), indent=1) + "\n")
    markdown = render_sweep_markdown(results, [path.name for path in plots])
    return write_atomically(root / MARKDOWN_FILE, markdown)


def read_sweep_results(path: str | Path) -> SweepResults:
    """Read ``ablation.json`` from its sweep folder or its path.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if it is not valid JSON or not an ablation report of this schema version.
    """
    path = Path(path)
    if path.is_dir():
        path = path / JSON_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no ablation report at {path} (write it with `infomug ablate --report`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not an ablation report")
    return SweepResults.from_dict(data)


__all__ = [
    "SweepResults",
    "build_sweep_results",
    "read_sweep_results",
    "write_sweep_report",
]
