"""The sweep report on fake sweep folders: a real plan and status files, measure.json files written from
`infomug.measure.results` records with known numbers, and metrics.jsonl files; nothing is trained."""

import json
import math
import os
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from PIL import Image

from estimators import Estimate
from infomug.ablation import prepare_sweep_folder, spec_from_dict
from infomug.ablation.plots import (
    plot_caption_noise,
    plot_information_vs_transfer,
    plot_metric_vs_lambda,
    plot_per_factor,
)
from infomug.ablation.report import build_sweep_results, read_sweep_results, write_sweep_report
from infomug.measure.results import LayerResult, ModelResult, Report, Score

T_975_2 = 4.302652729911275  # t_{0.975, 2}, from a table: three seeds
FACTORS = {"shape": (math.log(8), 0.125), "colour": (math.log(4), 0.25), "size": (math.log(3), 0.4)}
SIGMAS = (0.3, 1.0)
LOG_N = math.log(400)
LOG_K = math.log(128)
# Each variant's level: every fake metric grows with level + 0.01 * seed, so they all rank runs alike.
LEVEL = {"mae": 0.0, "mug_0.1": 0.1, "mug_1.0": 0.2, "clip": 0.3}
NOISE_DROP = 0.05  # a noise run's level is its variant's minus this
SPEC = {
    "name": "fake",
    "seeds": [0, 1, 2],
    "variants": {
        "mae": ["model.preset=mae_vit_tiny_patch4_32"],
        "mug_0.1": ["model.caption_loss_weight=0.1"],
        "mug_1.0": ["model.caption_loss_weight=1.0"],
        "clip": ["model.preset=clip_vit_tiny_patch4_32"],
    },
    "caption_noise": {"fractions": [0.0, 1.0], "variants": ["mae", "mug_0.1"]},
    "measure": {"budget": "quick", "budget_set": {"images": 400}},
}
DIVERGED = "mug_1.0-s2"
SKIP_NOTE = "label 'rotation' skipped: continuous (float) label"
# Estimator warnings: on every linear-probe score; on sigma = 0.3 only, with a number that varies by run;
# on MUG's caption decoder only.
PROBE_WARNING = "the probe stopped at its iteration limit (max_iter=300)"
CUT_WARNING = "some captions were cut: the bound may overstate I(T; caption)"


def near_log_n_warning(value: float) -> str:
    return f"the estimate {value:.4f} is within 10% of log N"


def probe_accuracy(level: float, seed: int, index: int) -> float:
    return 0.4 + level + 0.01 * seed + 0.02 * index


def knn_information(level: float, seed: int, factor: str) -> float:
    return FACTORS[factor][0] * (0.2 + level + 0.01 * seed)


def fake_report(name: str, objective: str, level: float, seed: int) -> Report:
    information, transfer = {}, {}
    for index, (factor, (entropy, majority)) in enumerate(FACTORS.items()):
        value = knn_information(level, seed, factor)
        information[factor] = {
            "knn_on_probe_logits": Estimate(
                value,
                0.01,
                120,
                "ross",
                {"k": 3, "label_entropy": entropy},
                kind="lower_bound",
                ceiling=entropy,
            ),
            # A different number from the headline estimator: the report must not read this one.
            "probe_cross_entropy": Estimate(value / 2, 0.02, 120, "barber_agakov", kind="lower_bound"),
        }
        accuracy = probe_accuracy(level, seed, index)
        transfer[factor] = {
            "linear_probe": Score(
                accuracy,
                0.02,
                120,
                "linear_probe",
                {"max_iter": 300},
                baseline=majority,
                warnings=(PROBE_WARNING,),
            ),
            "knn": Score(accuracy - 0.1, 0.02, 120, "knn", {"k": 20}, baseline=majority),
        }
    channel = [
        Estimate(
            3.0 + level + 0.01 * seed - sigma,
            0.05,
            400,
            "noisy_channel",
            {"relative_sigma": sigma, "sigma": 0.7 * sigma, "draws": 1},
            ceiling=LOG_N,
            warnings=(near_log_n_warning(3.0 + level + 0.01 * seed - sigma),) if sigma < 1 else (),
        )
        for sigma in SIGMAS
    ]
    layer = LayerResult(
        layer="block_3",
        dim=32,
        n=400,
        label_information=information,
        input_information=channel,
        entropy=Estimate(50.0 + 10 * level + 0.1 * seed, 1.0, 400, "kl", {"k": 3}, quantity="entropy"),
        effective_rank=Score(10.0 + 10 * level + 0.1 * seed, 0.1, 400, "rankme", {"max": 32}),
        caption_information=Estimate(
            1.0 + level, 0.1, 400, "infonce", {"batch_size": 128}, kind="lower_bound", ceiling=LOG_K
        ),
        transfer=transfer,
    )
    decoders = {}
    if objective in ("mae", "mug"):
        decoders["pixel_decoder"] = Estimate(0.5 + level, 0.1, 100, "barber_agakov", kind="lower_bound")
    if objective == "mug":
        decoders["caption_decoder"] = Estimate(
            2.0 + level, 0.3, 100, "barber_agakov", kind="lower_bound", ceiling=12.0, warnings=(CUT_WARNING,)
        )
    model = ModelResult(
        name=f"{name}@step 4",
        source=f"runs/{name}/checkpoints/step_00000004",
        objective=objective,
        step=4,
        fingerprint="0" * 16,
        layers=[layer],
        decoder_bounds=decoders,
        notes=[f"block_3: {SKIP_NOTE}"],
    )
    return Report(
        models=[model],
        data={"source": "world", "split": "eval", "images": 400, "pool": "token", "config": {"x": 1}},
        label_entropies={factor: entropy for factor, (entropy, _) in FACTORS.items()},
        label_entropies_exact=True,
        caption_information_total=5.9,
        settings={
            "name": "quick",
            "images": 400,
            "knn_k": 20,
            "channel_sigmas": list(SIGMAS),
            "plane_sigma": 1.0,
        },
        versions={"infomug": "0.1.0"},
        created="2024-01-01T00:00:00",
    )


def run_level(run) -> float:
    return LEVEL[run.variant] - (NOISE_DROP if run.caption_noise is not None else 0.0)


def write_run(layout, run, state: str = "measured") -> None:
    """Status, metrics.jsonl and (when measured) measure.json of ``run``."""
    status = {"state": state, "train_seconds": 10.0, "error": None}
    if state == "diverged":
        status["error"] = "loss is nan at step 3"
    if state == "measured":
        status["measure_seconds"] = 5.0
        target = layout.measure_dir(run.name)
        target.mkdir(parents=True)
        report = fake_report(run.name, run.objective, run_level(run), run.seed)
        (target / "measure.json").write_text(json.dumps(report.to_dict()))
    layout.status_file(run.name).parent.mkdir(parents=True, exist_ok=True)
    layout.status_file(run.name).write_text(json.dumps(status))
    terms = {"mae": ["loss_pixel"], "mug": ["loss_pixel", "loss_caption"], "clip": ["loss_contrastive"]}
    train = {"kind": "train", "step": 4, "lr": 0.001, "grad_norm": 3.0}
    train |= {term: 1.0 + run_level(run) for term in terms[run.objective]}
    train["loss"] = sum(train[term] for term in terms[run.objective])
    evaluation = {"kind": "eval", "step": 4, "eval_loss": train["loss"] - 0.5}
    evaluation |= {f"eval_{term}": train[term] - 0.5 for term in terms[run.objective]}
    run_dir = layout.run_dir(run.name)
    run_dir.mkdir(parents=True)
    first = {**train, "step": 2, "loss": 99.0}  # an earlier record the report must not read
    (run_dir / "metrics.jsonl").write_text(
        "\n".join(json.dumps(r) for r in (first, train, evaluation)) + "\n"
    )


def make_sweep(root: Path, states: dict[str, str] | None = None, default: str = "measured") -> Path:
    """A fake sweep folder; ``states`` sets a run's state (``measured``, ``diverged``, ``trained``, or
    ``pending`` for no files at all), others get ``default``."""
    layout, plan = prepare_sweep_folder(spec_from_dict(SPEC), root)
    for run in plan.runs:
        state = (states or {}).get(run.name, default)
        if state != "pending":
            write_run(layout, run, state)
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The whole fake sweep, ``mug_1.0-s2`` diverged, its report written."""
    root = make_sweep(tmp_path_factory.mktemp("fake_sweep"), {DIVERGED: "diverged"})
    write_sweep_report(root)
    return root


@pytest.fixture(scope="module")
def results(sweep):
    return read_sweep_results(sweep)


@pytest.fixture(scope="module")
def markdown(sweep) -> str:
    return (sweep / "ablation.md").read_text()


def _row(markdown: str, first_cell: str, after: str = "") -> list[str]:
    text = markdown[markdown.index(after) :] if after else markdown
    for line in text.splitlines():
        if line.startswith(f"| {first_cell} |"):
            return [cell.strip() for cell in line.strip("|").split("|")]
    raise AssertionError(f"no row {first_cell!r} after {after!r}")


def test_report_files_are_written(sweep):
    for name in ("ablation.json", "ablation.md"):
        assert (sweep / name).is_file()
    assert json.loads((sweep / "ablation.json").read_text())["schema_version"] == 1


def test_groups_follow_the_plan_cells_including_shared_runs(results):
    assert [g["variant"] for g in results.groups()] == ["mae", "mug_0.1", "mug_1.0", "clip"]
    assert all(g["caption_noise"] is None for g in results.groups())
    mae = ["mae-s0", "mae-s1", "mae-s2"]
    assert results.group("mae")["runs"] == mae
    # MAE reads no captions: its noise cells read the main runs; so does MUG at the base fraction 0.
    assert results.group("mae", 1.0)["runs"] == mae
    assert results.group("mae", 0.0)["runs"] == mae
    assert results.group("mug_0.1", 0.0)["runs"] == ["mug_0.1-s0", "mug_0.1-s1", "mug_0.1-s2"]
    assert results.group("mug_0.1", 1.0)["runs"] == [f"mug_0.1-noise1-s{s}" for s in range(3)]
    assert [(g["variant"], g["caption_noise"]) for g in results.noise_groups()] == [
        ("mae", 0.0),
        ("mae", 1.0),
        ("mug_0.1", 0.0),
        ("mug_0.1", 1.0),
    ]
    assert results.group("mug_0.1")["objective"] == "mug"
    assert results.lambda_l("mug_1.0") == 1.0 and results.lambda_l("mae") == 0.0
    assert results.lambda_l("clip") is None
    with pytest.raises(KeyError):
        results.group("mug_1.0", 1.0)


def test_shared_runs_are_named_in_the_notes(results):
    mae = next(note for note in results.notes if note.startswith("mae at caption noise"))
    assert "0, 1" in mae and "mae-s0, mae-s1, mae-s2" in mae and "reads no captions" in mae
    mug = next(note for note in results.notes if note.startswith("mug_0.1 at caption noise"))
    assert "base data already has that fraction" in mug


def test_group_summary_is_the_t_interval_over_seeds(results):
    # probe acc of factor i = 0.4 + level + 0.01 * seed + 0.02 * i; seeds 0, 1, 2: std 0.01.
    mean_factor = sum(0.02 * i for i in range(len(FACTORS))) / len(FACTORS)
    summary = results.summary("mug_0.1", "probe_acc/mean")
    assert summary.n == 3
    assert summary.mean == pytest.approx(0.4 + 0.1 + 0.01 + mean_factor)
    assert summary.half_width == pytest.approx(T_975_2 * 0.01 / math.sqrt(3))
    assert summary.values == pytest.approx([0.5 + mean_factor + 0.01 * s for s in range(3)])
    noisy = results.summary("mug_0.1", "probe_acc/shape", caption_noise=1.0)
    assert noisy.mean == pytest.approx(0.4 + 0.1 - NOISE_DROP + 0.01)


def test_information_uses_the_headline_estimator_and_its_ceiling(results):
    shape = results.summary("mae", "info/shape")
    assert shape.mean == pytest.approx(math.log(8) * 0.21)  # not the probe cross-entropy's half of it
    info = results.metric("info/shape")
    assert info["kind"] == "information" and info["bound"] == "lower" and info["unit"] == "nats"
    assert info["ceiling"] == pytest.approx(math.log(8)) and info["method"] == "ross"
    mean_entropy = sum(h for h, _ in FACTORS.values()) / len(FACTORS)
    assert results.metric("info/mean")["ceiling"] == pytest.approx(mean_entropy)
    assert results.summary("mae", "info/mean").mean == pytest.approx(mean_entropy * 0.21)
    assert results.factors() == list(FACTORS)


def test_other_metrics_keys_kinds_and_ceilings(results):
    assert results.plane_key == "input_info/sigma=1"
    for sigma in SIGMAS:
        key = f"input_info/sigma={sigma:g}"
        assert results.summary("clip", key).mean == pytest.approx(3.0 + 0.3 + 0.01 - sigma)
        assert results.metric(key)["ceiling"] == pytest.approx(LOG_N)
        assert results.metric(key)["bound"] is None
    assert results.metric("caption_info")["ceiling"] == pytest.approx(LOG_K)
    assert results.metric("caption_info")["bound"] == "lower"
    assert results.metric("entropy")["kind"] == "entropy"
    assert results.metric("effective_rank")["kind"] == "rank"
    assert results.metric("effective_rank")["ceiling"] == 32
    assert results.metric("probe_acc/colour")["baseline"] == pytest.approx(0.25)
    assert results.metric("knn_acc/mean")["kind"] == "accuracy"
    assert results.layer == "block_3"
    run = results.run("mug_0.1-s1")
    assert run["stderr"]["probe_acc/shape"] == pytest.approx(0.02)
    assert "train/loss" not in run["stderr"]  # a logged loss has no standard error


def test_losses_come_from_the_last_records(results):
    run = results.run("mug_0.1-s0")["metrics"]
    assert run["train/loss_pixel"] == pytest.approx(1.1) and run["train/loss_caption"] == pytest.approx(1.1)
    assert run["train/loss"] == pytest.approx(2.2)  # the step-4 record, not the step-2 one
    assert run["eval/loss_pixel"] == pytest.approx(0.6) and run["eval/loss"] == pytest.approx(1.7)
    assert "train/lr" not in run and "train/grad_norm" not in run
    assert results.metric("train/loss")["kind"] == "loss"


def test_absent_metrics_are_absent_not_zero(results, markdown):
    clip = results.run("clip-s0")["metrics"]
    assert "caption_decoder" not in clip and "pixel_decoder" not in clip and "train/loss_pixel" not in clip
    assert "caption_decoder" not in results.group("clip")["summary"]
    assert results.summary("clip", "caption_decoder") is None
    assert results.summary("mae", "caption_decoder") is None
    assert results.summary("mae", "pixel_decoder").mean == pytest.approx(0.5)
    assert _row(markdown, "clip", "## Decoder bounds")[1:] == ["n/a", "n/a"]
    assert _row(markdown, "mae", "## Decoder bounds")[1] == "n/a"


def test_a_diverged_run_is_left_out_and_named(results, markdown):
    group = results.group("mug_1.0")
    assert DIVERGED not in group["runs"] and group["n_seeds"] == 2
    assert group["summary"]["probe_acc/mean"]["n"] == 2
    assert results.run(DIVERGED)["state"] == "diverged" and results.run(DIVERGED)["metrics"] == {}
    note = next(note for note in results.notes if note.startswith("Diverged"))
    assert DIVERGED in note and "loss is nan at step 3" in note
    # Two seeds of three: the headline says so.
    assert _row(markdown, "mug_1.0")[3] == "2/3"
    assert "(n=2)" in _row(markdown, "mug_1.0")[4]


def test_correlations_over_the_main_runs(results):
    # Every fake metric ranks the runs alike, so each rank correlation is 1 over the 11 measured main runs.
    pairs = {(c["information"], c["transfer"]) for c in results.correlations}
    assert pairs == {
        (info, transfer)
        for info in ("input_info/sigma=1", "info/mean", "entropy", "effective_rank")
        for transfer in ("probe_acc/mean", "knn_acc/mean")
    }
    for record in results.correlations:
        assert record["n"] == 11 and record["runs"] == "main sweep"
        assert record["spearman"] == pytest.approx(1.0)
        assert record["p_value"] == pytest.approx(2 / math.factorial(11))
    assert results.correlation("info/mean", "knn_acc/mean")["spearman"] == pytest.approx(1.0)


def test_settings_and_wall_time(results):
    settings = results.settings
    assert settings["plane_sigma"] == 1.0 and settings["budget"]["images"] == 400
    assert settings["seeds"] == [0, 1, 2] and settings["label_entropies"]["shape"] == pytest.approx(
        math.log(8)
    )
    assert settings["training"]["steps"] == 1000 and settings["training"]["embed_dim"] == 192
    assert "config" not in settings["eval_data"]
    assert settings["estimators"]["info"] == {"method": "ross", "params": {"k": 3}}
    # The sigma differs between the two noisy-channel keys: it is not a setting of the family.
    assert settings["estimators"]["input_info"]["params"] == {"draws": 1}
    assert list(settings["estimators"])[:3] == ["probe_acc", "knn_acc", "info"]
    # 15 runs trained 10 s each; 14 measured 5 s each (the diverged one was not).
    assert results.wall_seconds == {"train": 150.0, "measure": 70.0, "total": 220.0}
    assert results.command.startswith("infomug ablate --config ") and "--out" in results.command


def test_measure_notes_are_gathered_once(results):
    notes = [note for note in results.notes if SKIP_NOTE in note]
    assert notes == [f"measure: {SKIP_NOTE} (in every measured run)"]


def test_estimator_warnings_are_noted_once_with_the_metrics_and_runs_they_concern(results):
    warnings = [note for note in results.notes if note.startswith("warning")]
    # On every linear-probe score of every run, the means included: named by its family.
    assert f"warning, `probe_acc`: {PROBE_WARNING} (in every measured run)" in warnings
    # On one of the two noise levels only; the first run's number is shown and flagged as varying.
    near = [note for note in warnings if "within 10% of log N" in note]
    assert near == [
        f"warning, `input_info/sigma=0.3`: {near_log_n_warning(2.7)} (numbers vary by run; the first is"
        " shown) (in every measured run)"
    ]
    cut = next(note for note in warnings if CUT_WARNING in note)
    assert cut.startswith("warning, `caption_decoder`:")
    mug_runs = [r["name"] for r in results.runs if r["objective"] == "mug" and r["included"]]
    assert len(mug_runs) == 8  # mug_0.1 and its noise runs, 3 seeds each, and two of mug_1.0's
    assert cut.endswith(f"(in {', '.join(mug_runs)})")
    assert len(warnings) == 3


def test_caption_ceilings_and_units(markdown):
    references = next(line for line in markdown.splitlines() if line.startswith("Ceilings and baselines"))
    # I(T; caption) <= I(image; caption) whatever the estimator; log N is not a mean over factors.
    assert "I(T; caption) ≤ I(image; caption) = 5.900 nats" in references
    assert f"I(X; T_σ) ≤ log N = {LOG_N:.3f} nats" in references and "(means over factors)" not in references
    decoder = next(
        line for line in markdown.splitlines() if line.startswith("Ceilings of the caption decoder")
    )
    assert "I(image; caption) = 5.900 nats" in decoder and "H(caption) = 12.000 nats" in decoder
    header = _row(markdown, "variant", "## Caption noise")
    information = [title for title in header if title.startswith("I(")]
    assert len(information) == 4 and all(title.endswith("nats") for title in information)
    correlations = markdown[markdown.index("## Does more information") :]
    assert "partly by construction" in correlations


def test_markdown_headline_and_formats(markdown, results):
    assert markdown.startswith("# Ablation: fake\n")
    assert results.command in markdown
    assert "mean ± 95% Student-t interval half-width over n seeds" in markdown
    row = _row(markdown, "mug_0.1")
    assert row[:4] == ["mug_0.1", "mug", "0.1", "3/3"]
    mean_factor = 100 * sum(0.02 * i for i in range(len(FACTORS))) / len(FACTORS)
    half = 100 * T_975_2 * 0.01 / math.sqrt(3)
    assert row[4] == f"{51.0 + mean_factor:.1f} ± {half:.1f}"
    mean_entropy = sum(h for h, _ in FACTORS.values()) / len(FACTORS)
    info_half = mean_entropy * T_975_2 * 0.01 / math.sqrt(3)
    assert row[6] == f"≥ {mean_entropy * 0.31:.3f} ± {info_half:.3f}"
    assert row[7] == f"{3.0 + 0.1 + 0.01 - 1.0:.3f} ± {T_975_2 * 0.01 / math.sqrt(3):.3f}"
    assert row[10] == f"≥ {1.1:.3f} ± 0.000"
    assert _row(markdown, "clip")[2] == "n/a"  # no lambda_L
    assert "log K = 4.852" in markdown
    assert "I(T; label) ≥ (lower bound)" in markdown
    assert "compare it within an objective, not across" in markdown  # the totals are different losses


def test_markdown_per_factor_noise_correlation_and_time(markdown):
    ceiling = _row(markdown, "**H(factor), ceiling**")
    assert ceiling[1:] == [f"{math.log(8):.3f}", f"{math.log(4):.3f}", f"{math.log(3):.3f}"]
    majority = _row(markdown, "**majority class**")
    assert majority[1:] == ["12.5", "25.0", "40.0"]
    noise = _row(markdown, "mug_0.1 | 1", "## Caption noise")
    assert noise[2] == "mug_0.1-noise1-s0, mug_0.1-noise1-s1, mug_0.1-noise1-s2"
    assert _row(markdown, "mae | 1", "## Caption noise")[2] == "mae-s0, mae-s1, mae-s2"
    info = "mean over factors of I(T; factor) (lower bound)"
    correlation = _row(markdown, info, "## Does more information")
    assert correlation[2:] == ["1.000", correlation[3], "11"]
    assert _row(markdown, "**total**")[2:] == ["150.0", "70.0"]
    assert _row(markdown, DIVERGED, "## Wall time")[1:] == ["diverged", "10.0", "n/a"]
    for name in (
        "metric_vs_lambda.png",
        "information_vs_transfer.png",
        "per_factor.png",
        "caption_noise.png",
    ):
        assert f"]({name})" in markdown


def test_plots_are_valid_pngs(sweep):
    for name in (
        "metric_vs_lambda.png",
        "information_vs_transfer.png",
        "per_factor.png",
        "caption_noise.png",
    ):
        path = sweep / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.size[0] > 300 and image.size[1] > 200


def test_plot_functions_draw_on_a_given_axis(results):
    figure = Figure()
    ax = figure.subplots()
    assert plot_metric_vs_lambda(results, "probe_acc/mean", ax) is figure
    # MAE, mug_0.1 and mug_1.0 on the lambda_L axis, in order; CLIP as a band (a legend entry).
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mae\nλ=0", "mug_0.1\nλ=0.1", "mug_1.0\nλ=1"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["clip (clip)"]
    assert "not to scale" in ax.get_xlabel()  # evenly spaced categories, not a lambda_L axis
    assert (
        "n = 11" in plot_information_vs_transfer(results, "info/mean", "probe_acc/mean").axes[0].get_title()
    )
    assert isinstance(plot_caption_noise(results, "caption_info"), Figure)
    assert isinstance(plot_per_factor(results, "info"), Figure)
    with pytest.raises(ValueError, match="kind"):
        plot_per_factor(results, "accuracy")


def test_read_sweep_results_round_trips(sweep, results):
    again = read_sweep_results(sweep / "ablation.json")
    dumped = json.dumps(again.to_dict(), sort_keys=True)
    assert dumped == json.dumps(results.to_dict(), sort_keys=True)
    assert dumped == json.dumps(json.loads((sweep / "ablation.json").read_text()), sort_keys=True)


def test_read_sweep_results_errors(tmp_path, sweep):
    with pytest.raises(FileNotFoundError):
        read_sweep_results(tmp_path)
    data = json.loads((sweep / "ablation.json").read_text())
    (tmp_path / "ablation.json").write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(ValueError, match="schema version"):
        read_sweep_results(tmp_path)
    (tmp_path / "ablation.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_sweep_results(tmp_path)


def test_a_partial_sweep_has_a_report(tmp_path):
    # Seed 0 measured, mug_1.0-s0 only trained, the rest not started: one seed per group, NaN intervals.
    states = {"mae-s0": "measured", "mug_0.1-s0": "measured", "clip-s0": "measured", "mug_1.0-s0": "trained"}
    root = make_sweep(tmp_path / "sweep", states, default="pending")
    markdown = write_sweep_report(root).read_text()
    results = read_sweep_results(root)
    assert results.group("mug_1.0")["runs"] == [] and results.group("mug_1.0")["summary"] == {}
    summary = results.summary("mae", "probe_acc/mean")
    assert summary.n == 1 and math.isnan(summary.half_width)
    assert math.isnan(results.group("mae")["summary"]["probe_acc/mean"]["half_width"])
    note = next(note for note in results.notes if note.startswith("Not measured yet"))
    assert "(12 of 15 runs)" in note and "mug_1.0-s0" in note
    assert results.run("mug_1.0-s0")["state"] == "trained" and results.run("mae-s1")["state"] == "pending"
    # One seed: a value and its (n=1), no interval; an empty group is n/a throughout.
    assert _row(markdown, "mae")[4] == f"{100 * probe_mean(0.0, 0):.1f} (n=1)"
    assert set(_row(markdown, "mug_1.0")[4:]) == {"n/a"}
    assert results.group("mug_0.1", 1.0)["runs"] == []
    assert all(math.isnan(c["spearman"]) or c["n"] == 3 for c in results.correlations)
    assert results.correlations[0]["n"] == 3 and results.correlations[0]["p_value"] == pytest.approx(1 / 3)
    assert (root / "metric_vs_lambda.png").is_file()


def probe_mean(level: float, seed: int) -> float:
    return sum(probe_accuracy(level, seed, i) for i in range(len(FACTORS))) / len(FACTORS)


def test_a_sweep_with_nothing_measured_still_reports(tmp_path):
    root = make_sweep(tmp_path / "sweep", default="pending")
    markdown = write_sweep_report(root).read_text()
    results = read_sweep_results(root)
    assert results.metrics == [] and results.correlations == [] and results.layer is None
    assert "Not measured yet, left out (15 of 15 runs)" in markdown
    assert not list(root.glob("*.png"))


def test_an_unreadable_measure_json_is_left_out_and_named(tmp_path):
    root = make_sweep(tmp_path / "sweep")
    (root / "measure" / "clip-s1" / "measure.json").write_text("{truncated")
    results = build_sweep_results(root)
    assert results.group("clip")["runs"] == ["clip-s0", "clip-s2"]
    assert any(note.startswith("Left out: clip-s1:") and "not valid JSON" in note for note in results.notes)


def test_a_sweep_folder_copied_without_its_base_config_is_still_reported(tmp_path, sweep):
    import shutil

    import yaml

    copy = tmp_path / "copied"
    shutil.copytree(sweep, copy)
    spec_file = copy / "sweep.yaml"
    values = yaml.safe_load(spec_file.read_text())
    values["base"] = str(tmp_path / "elsewhere" / "mug_cpu.yaml")
    spec_file.write_text(yaml.safe_dump(values, sort_keys=False))
    written = write_sweep_report(copy)
    assert written.is_file() and "mae" in written.read_text()


def test_two_shards_writing_the_report_at_once_both_succeed(tmp_path, monkeypatch):
    # The last two shards can finish together; each writes every report file aside, then renames it.
    root = make_sweep(tmp_path / "sweep", {"mae-s0": "measured"}, default="pending")
    real_replace = os.replace
    interleaved = []

    def replace(source, target):
        if not interleaved:
            interleaved.append(Path(target).name)
            write_sweep_report(root)  # the other shard writes all of its files in between
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    assert write_sweep_report(root) == root / "ablation.md"
    assert interleaved
    assert read_sweep_results(root).run("mae-s0")["included"]
    for name in ("metric_vs_lambda.png", "per_factor.png"):
        with Image.open(root / name) as image:
            image.verify()
    leftovers = [path.name for path in root.iterdir() if path.name.startswith(".") or "tmp" in path.name]
    assert leftovers == [] and not list(root.glob("*.partial"))
