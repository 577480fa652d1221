"""What a sweep report's numbers depend on and what its reader must know: the settings (training,
measurement budget, every estimator) and the notes (shared runs, runs left out, the measure reports'
notes, the estimators' warnings), read from the run records of `infomug.ablation.collect`.
"""

from __future__ import annotations

import json
import re
from operator import attrgetter
from typing import Any

from infomug.measure.summaries import budget_settings, plane_sigma
from infomug.train.config import RunConfig, load_config

from .collect import RunRecord, Value, family_rank, metric_family
from .plan import CAPTION_FREE_OBJECTIVES, PlannedRun, SweepPlan, resolve_run_config
from .runner import SweepLayout
from .spec import SweepSpec

# Training settings shown with the report: name -> dotted run-config field.
TRAINING_FIELDS = {
    "steps": "train.steps",
    "batch_size": "train.batch_size",
    "embed_dim": "model.embed_dim",
    "depth": "model.depth",
    "num_heads": "model.num_heads",
    "patch_size": "model.patch_size",
    "img_size": "model.img_size",
    "lr": "optim.lr",
    "warmup_steps": "optim.warmup_steps",
}
MAX_NAMED = 8
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _run_config(spec: SweepSpec, layout: SweepLayout, run: PlannedRun) -> RunConfig | None:
    """The run's saved config, else the one its overrides resolve to; None if neither reads."""
    saved = layout.run_dir(run.name) / "config.yaml"
    try:
        return load_config(saved) if saved.is_file() else resolve_run_config(spec, run.overrides)
    except (ValueError, FileNotFoundError):
        return None


def training_settings(spec: SweepSpec, layout: SweepLayout, plan: SweepPlan) -> dict[str, Any]:
    """`TRAINING_FIELDS` of each variant's first main run: a value when every variant shares it, else
    ``{variant: value}``."""
    per_variant: dict[str, RunConfig] = {}
    for run in plan.runs:
        if run.caption_noise is None and run.variant not in per_variant:
            config = _run_config(spec, layout, run)
            if config is not None:
                per_variant[run.variant] = config
    settings: dict[str, Any] = {}
    for name, dotted in TRAINING_FIELDS.items():
        values = {variant: attrgetter(dotted)(config) for variant, config in per_variant.items()}
        distinct = list(dict.fromkeys(values.values()))
        settings[name] = distinct[0] if len(distinct) == 1 else values
    return settings


def _estimators(records: list[RunRecord]) -> dict[str, dict[str, Any]]:
    """``{family: {"method", "params"}}`` in `FAMILY_ORDER`, from the first run with each family (a key's
    part before "/"); params are those every key of the family shares (not e.g. each key's sigma)."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        families: dict[str, list[Value]] = {}
        for key, value in record.values.items():
            families.setdefault(metric_family(key), []).append(value)
        for family, values in families.items():
            if family in found:
                continue
            shared = {k: v for k, v in values[0].params.items() if all(x.params.get(k) == v for x in values)}
            found[family] = {"method": values[0].info.method, "params": shared}
    return {family: found[family] for family in sorted(found, key=family_rank)}


def sweep_settings(
    spec: SweepSpec, layout: SweepLayout, plan: SweepPlan, records: list[RunRecord]
) -> dict[str, Any]:
    """What the report's numbers depend on: training settings, the measurement budget (of the first measured
    run), the plane sigma, the eval data, label entropies, and each metric family's estimator."""
    measured = [record.report for record in records if record.report is not None]
    first = measured[0] if measured else None
    data = {} if first is None else {k: v for k, v in first.data.items() if k != "config"}
    return {
        "seeds": list(spec.seeds),
        "training": training_settings(spec, layout, plan),
        "budget": {} if first is None else dict(budget_settings(first)),
        "plane_sigma": None if first is None else plane_sigma(first),
        "eval_data": data,
        "label_entropies": {} if first is None else dict(first.label_entropies),
        "label_entropies_exact": None if first is None else first.label_entropies_exact,
        "caption_information_total": None if first is None else first.caption_information_total,
        "estimators": _estimators(records),
        "interval": "mean ± 95% Student-t interval half-width over n seeds: t(0.975, n−1) · s / √n",
    }


def _named(names: list[str]) -> str:
    more = f", … ({len(names)} in all)" if len(names) > MAX_NAMED else ""
    return ", ".join(names[:MAX_NAMED]) + more


def _shared_run_notes(plan: SweepPlan) -> list[str]:
    shared: dict[tuple[str, str], list[float]] = {}
    runs: dict[str, list[str]] = {}
    for cell in plan.cells:
        run = plan.run(cell.run)
        if cell.caption_noise is None or run.caption_noise is not None:
            continue
        if run.objective in CAPTION_FREE_OBJECTIVES:
            reason = f"its objective ({run.objective}) reads no captions, so those runs would be the same"
        else:
            reason = "the base data already has that fraction"
        fractions = shared.setdefault((cell.variant, reason), [])
        if cell.caption_noise not in fractions:
            fractions.append(cell.caption_noise)
        runs.setdefault(cell.variant, [])
        if cell.run not in runs[cell.variant]:
            runs[cell.variant].append(cell.run)
    return [
        f"{variant} at caption noise {', '.join(f'{f:g}' for f in fractions)} reuses its main runs"
        f" ({_named(runs[variant])}): {reason}."
        for (variant, reason), fractions in shared.items()
    ]


def _measure_notes(records: list[RunRecord]) -> list[str]:
    """The measure reports' notes, each once, with the runs it applies to (layer prefixes dropped)."""
    measured = [(r.run.name, r.layer, r.report) for r in records if r.report is not None]
    found: dict[str, list[str]] = {}
    for name, layer, report in measured:
        for note in report.models[0].notes:
            text = note.split(": ", 1)[1] if note.split(": ", 1)[0] == layer else note
            names = found.setdefault(text, [])
            if name not in names:
                names.append(name)
    notes = []
    for text, names in found.items():
        where = "every measured run" if len(names) == len(measured) else _named(names)
        notes.append(f"measure: {text} (in {where})")
    return notes


def sweep_notes(spec: SweepSpec, plan: SweepPlan, records: list[RunRecord]) -> list[str]:
    """What a reader of the tables must know: shared runs, runs left out and why, measurement caveats."""
    notes = _shared_run_notes(plan)
    if spec.caption_noise is not None:
        notes.append(
            "Caption-noise runs are measured on the same eval data as the main runs (the base data's"
            " captions): only their training captions differ."
        )
    diverged = [r for r in records if r.state == "diverged"]
    if diverged:
        named = "; ".join(f"{r.run.name} ({r.error or 'no message'})" for r in diverged[:MAX_NAMED])
        notes.append(f"Diverged, left out of their groups ({len(diverged)} runs): {named}.")
    unreadable = [r for r in records if r.problem is not None]
    notes += [f"Left out: {r.run.name}: {r.problem}" for r in unreadable]
    waiting = [r.run.name for r in records if not r.included and r.state != "diverged" and r.problem is None]
    if waiting:
        notes.append(
            f"Not measured yet, left out ({len(waiting)} of {len(records)} runs): {_named(waiting)}."
            " This report covers a partial sweep; `infomug ablate --report` rewrites it."
        )
    layers = list(dict.fromkeys(r.layer for r in records if r.included and r.layer is not None))
    if len(layers) > 1:
        notes.append(f"Runs were measured at different layers ({', '.join(layers)}): compare with care.")
    budgets = {json.dumps(budget_settings(r.report), sort_keys=True) for r in records if r.report is not None}
    if len(budgets) > 1:
        notes.append("Runs were measured with different budgets; the settings show the first run's.")
    return notes + _measure_notes(records) + _warning_notes(records)


def _warning_notes(records: list[RunRecord]) -> list[str]:
    """The estimators' warnings on the numbers the report shows, each once with the metrics and runs it
    applies to; warnings that differ only in their numbers (an iteration count, a sample size) are one,
    shown by its first instance. A warning on every metric of a family, in every run that has one, names
    the family; else each set of metrics that shares the same runs is named."""
    measured = [record for record in records if record.included]
    present: dict[str, dict[str, list[str]]] = {}  # family -> key -> runs that have it
    found: dict[tuple[str, str], dict[str, list[tuple[str, str]]]] = {}  # -> key -> [(run, text)]
    for record in measured:
        for key, value in record.values.items():
            family = metric_family(key)
            present.setdefault(family, {}).setdefault(key, []).append(record.run.name)
            for text in value.warnings:
                hits = found.setdefault((family, _NUMBER.sub("#", text)), {})
                hits.setdefault(key, []).append((record.run.name, text))
    notes = []
    for (family, _), hits in sorted(found.items(), key=lambda item: family_rank(item[0][0])):
        runs = {key: [name for name, _ in pairs] for key, pairs in hits.items()}
        places: dict[tuple[str, ...], list[str]] = {}
        for key, names in runs.items():
            places.setdefault(tuple(names), []).append(key)
        if runs == present[family]:
            places = {tuple(dict.fromkeys(name for names in runs.values() for name in names)): list(runs)}
        for names, keys in places.items():
            texts = [text for key in keys for _, text in hits[key]]
            varies = " (numbers vary by run; the first is shown)" if len(set(texts)) > 1 else ""
            metrics = family if runs == present[family] else _named(keys)
            where = "every measured run" if len(names) == len(measured) else _named(list(names))
            notes.append(f"warning, `{metrics}`: {texts[0]}{varies} (in {where})")
    return notes
