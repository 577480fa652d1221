import json
import math
import re
from dataclasses import replace

import pytest

from estimators import Estimate
from infomug.measure.markdown import format_accuracy, format_nats, mean_label_information, render_markdown
from infomug.measure.results import LayerResult, ModelResult, Report, Score

# Labels of a world-like fake: name -> (H(label) in nats, majority-class rate).
LABELS = {"shape": (math.log(8), 0.125), "colour": (math.log(2), 0.5), "size": (math.log(3), 1 / 3)}
SIGMAS = (0.1, 0.3, 1.0)
DEPTH_FRACTION = (0.3, 0.6, 1.0)  # share of H(label) a layer's features carry, shallow to deep
MODEL_FRACTION = (0.8, 1.0)  # the second model carries more
CHANNEL_WARNING = (
    "I(X; f(X) + sigma Z) is a property of the noise: here sigma = {:.4g} ({:g} x the feature scale)"
)
TIES_WARNING = "x has 3 duplicate rows: jittered"
RANK_WARNING = "a proxy, not information; grows with N up to min(N, D)"


def knn_information(model: int, layer: int, label: str) -> float:
    return LABELS[label][0] * DEPTH_FRACTION[layer] * MODEL_FRACTION[model]


def probe_accuracy(model: int, layer: int, label: str) -> float:
    base = LABELS[label][1]
    return base + (1 - base) * DEPTH_FRACTION[layer] * MODEL_FRACTION[model]


def fake_layer(model: int, index: int, labels=tuple(LABELS), caption: bool = False) -> LayerResult:
    information, transfer = {}, {}
    for label in labels:
        entropy, base = LABELS[label]
        value = knn_information(model, index, label)
        warnings = (TIES_WARNING,) if (model, index, label) == (0, 1, "colour") else ()
        information[label] = {
            "knn_on_probe_logits": Estimate(
                value,
                0.01,
                90,
                "ross",
                {"k": 3, "projection": "linear_probe_logits", "label_entropy": entropy},
                kind="lower_bound",
                ceiling=entropy,
                warnings=warnings,
            ),
            "probe_cross_entropy": Estimate(
                0.9 * value,
                0.02,
                90,
                "barber_agakov",
                {"entropy": entropy},
                kind="lower_bound",
                ceiling=entropy,
            ),
        }
        accuracy = probe_accuracy(model, index, label)
        transfer[label] = {
            "linear_probe": Score(accuracy, 0.012, 90, "linear_probe", {"max_iter": 100}, baseline=base),
            "knn": Score(accuracy - 0.05, 0.015, 90, "knn", {"k": 20, "temperature": 0.07}, baseline=base),
        }
    scale = 1.0 + index
    channel = [
        Estimate(
            5.0 / (1 + 3 * sigma) * (1 + 0.1 * index),
            0.05,
            300,
            "noisy_channel",
            {"sigma": sigma * scale, "relative_sigma": sigma, "feature_scale": scale, "kt_lower": 0.1},
            ceiling=math.log(300),
            warnings=(CHANNEL_WARNING.format(sigma * scale, sigma),),
        )
        for sigma in SIGMAS
    ]
    return LayerResult(
        layer=f"block_{index}",
        dim=32,
        n=300,
        label_information=information,
        input_information=channel,
        entropy=Estimate(-10.0 + index, math.nan, 300, "kl", {"k": 3}, quantity="entropy"),
        effective_rank=Score(
            10.0 + 3 * index, math.nan, 300, "rankme", {"max": 32}, warnings=(RANK_WARNING,)
        ),
        caption_information=Estimate(
            1.2 + 0.3 * model,
            0.05,
            300,
            "infonce",
            {"batch_size": 128},
            kind="lower_bound",
            ceiling=math.log(128),
        )
        if caption
        else None,
        transfer=transfer,
        seconds={"probe": 0.5},
    )


def fake_model(model: int, name: str, depth: int = 3, labels=tuple(LABELS)) -> ModelResult:
    layers = [fake_layer(model, i, labels, caption=i == depth - 1) for i in range(depth)]
    bounds = {}
    if model == 1:
        bounds["caption_decoder"] = Estimate(2.5, 0.04, 200, "barber_agakov", kind="lower_bound", ceiling=6.0)
    return ModelResult(
        name=name,
        source=f"runs/{name}/checkpoints/step_4",
        objective="mae" if model == 0 else "mug",
        step=4,
        fingerprint="0123456789abcdef",
        layers=layers,
        decoder_bounds=bounds,
        seconds={"extraction": 1.5 + model},
        notes=[f"I(T; caption) measured on the last layer only ({name})"],
    )


def fake_report(models: int = 2, depth: int = 3, labels=tuple(LABELS)) -> Report:
    """2 models (``mae|tiny``, ``mug``) x 3 layers x 3 labels with the numbers of the functions above."""
    names = ("mae|tiny", "mug")
    return Report(
        models=[fake_model(m, names[m], depth, labels) for m in range(models)],
        data={"source": "world", "split": "eval", "images": 300, "pool": "token", "config": {"size": 512}},
        label_entropies={label: LABELS[label][0] for label in labels},
        label_entropies_exact=True,
        caption_information_total=3.1,
        settings={"name": "quick", "channel_sigmas": list(SIGMAS), "plane_sigma": 0.3, "mi_k": 3, "seed": 0},
        versions={"infomug": "0.1.0", "torch": "2.3.0"},
        created="2024-01-01T00:00:00+00:00",
        seconds={"total": 12.5},
    )


def table_after(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the first table after ``heading`` (split on unescaped pipes)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|---"):
            continue
        if line.startswith("|"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif rows:
            break
    return rows


def row(table: list[list[str]], first: str) -> list[str]:
    return next(r for r in table if r[0].startswith(first))


def test_number_conventions():
    assert format_nats(Estimate(0.69314, 0.0101, 10, "m", kind="lower_bound")) == "≥ 0.693 ± 0.010"
    assert format_nats(Estimate(1.5, 0.2, 10, "m", kind="upper_bound")) == "≤ 1.500 ± 0.200"
    assert format_nats(Estimate(-3.25, math.nan, 10, "m")) == "-3.250 ±?"
    assert format_nats(Estimate(math.inf, math.nan, 10, "m")) == "∞"
    assert format_nats(None) == "—"
    assert (
        format_accuracy(Score(0.8534, 0.0123, 90, "linear_probe", baseline=0.125))
        == "85.3 ± 1.2 (majority 12.5)"
    )
    assert format_accuracy(Score(0.5, math.nan, 90, "knn"), baseline=False) == "50.0 ±?"
    assert format_accuracy(None) == "—"


def test_summary_puts_models_side_by_side_with_known_numbers():
    markdown = render_markdown(fake_report())
    summary = table_after(markdown, "## Readouts and diagnostics")
    header = summary[0]
    assert header[2:] == ["mae\\|tiny (block_2)", "mug (block_2)"]  # "|" in a name is escaped
    assert all(len(r) == len(header) for r in summary), "every row has one cell per column"
    # mug's last layer carries all of H(colour) = log 2 by construction; mae's 0.8 of it.
    information = row(summary, "I(T; colour), Ross kNN")
    assert information[1] == "ceiling H = 0.693"
    assert information[2:] == ["≥ 0.555 ± 0.010", "≥ 0.693 ± 0.010"]
    assert row(summary, "**shape**: H(shape)")[1] == "2.079 (exact)"
    probe = row(summary, "linear-probe acc %, colour")
    assert probe[2:] == ["90.0 ± 1.2 (majority 50.0)", "100.0 ± 1.2 (majority 50.0)"]
    assert (
        row(summary, "I(X; T_σ) (diagnostic), σ = 0.3 × scale")[1] == f"ceiling log N = {math.log(300):.3f}"
    )
    assert row(summary, "H(T)")[2:] == ["-8.000 ±?", "-8.000 ±?"]
    assert row(summary, "RankMe")[1:] == ["ceiling min(N, D) = 32", "16.0", "16.0"]


def test_caption_ceilings_and_missing_decoder_bound():
    summary = table_after(render_markdown(fake_report()), "## Readouts and diagnostics")
    caption = row(summary, "I(T; caption), InfoNCE")
    assert caption[1] == "ceiling log K = 4.852; ceiling I(image; caption) = 3.100"
    assert caption[2:] == ["≥ 1.200 ± 0.050", "≥ 1.500 ± 0.050"]
    decoder = row(summary, "I(T; caption), caption decoder")
    # T is a function of the image (and an independent mask): I(image; caption) caps it below H(caption).
    assert decoder[1] == "ceiling H = 6.000; ceiling I(image; caption) = 3.100"
    assert decoder[2:] == ["—", "≥ 2.500 ± 0.040"]  # the MAE has no caption decoder


def test_pixel_decoder_row_shows_its_estimated_ceiling_and_groups_by_settings():
    report = fake_report()
    for model, value in zip(report.models, (-0.25, 1.5), strict=True):
        params = {"target": "patch_pca3", "dither": 0.05, "k": 3, "cross_entropy": 4.0 - value}
        params |= {
            "dither_sigma": 0.18 + value,
            "explained_variance": 0.8 + value,
            "ceiling_estimate": 5.2153,
        }
        model.decoder_bounds["pixel_decoder"] = Estimate(
            value, 0.1, 1000, "barber_agakov", params, kind="lower_bound"
        )
    markdown = render_markdown(report)
    pixel = row(
        table_after(markdown, "## Readouts and diagnostics"), "I(T, position; masked patch), pixel decoder"
    )
    assert pixel[1:] == ["ceiling I(A; A'), estimated = 5.215", "≥ -0.250 ± 0.100", "≥ 1.500 ± 0.100"]
    # Quantities fitted on the data are not settings: both bounds share one line of settings.
    settings = [line for line in markdown.splitlines() if "[pixel_decoder]" in line]
    assert settings == [
        "- **decoder bound [pixel_decoder]**: `barber_agakov` (target=patch_pca3, dither=0.05, k=3; per"
        " estimate: cross_entropy, dither_sigma, explained_variance, ceiling_estimate); N = 1000;"
        " 2 estimate(s) in mae|tiny, mug"
    ]


def test_a_noise_level_off_in_its_last_bit_is_one_level():
    # Older reports hold the estimator's sigma / scale, e.g. 0.30000000000000004 next to 0.3.
    report = fake_report()
    channel = report.models[1].layers[2].input_information
    channel[1] = replace(channel[1], params={**channel[1].params, "relative_sigma": 0.30000000000000004})
    markdown = render_markdown(report)
    summary = table_after(markdown, "## Readouts and diagnostics")
    assert [r[0] for r in summary if r[0].startswith("I(X; T_σ)")] == [
        f"I(X; T_σ) (diagnostic), σ = {sigma:g} × scale" for sigma in SIGMAS
    ]
    settings = markdown.split("## Settings of every estimate")[1].split("## Warnings")[0]
    channel_lines = [line for line in settings.splitlines() if "I(X; T_σ)" in line]
    assert len(channel_lines) == 3 and all("6 estimate(s)" in line for line in channel_lines)


def test_per_layer_tables():
    markdown = render_markdown(fake_report())
    table = table_after(markdown, "### mug")
    assert table[0][:4] == ["layer", "dim", "I(X; T_σ)", "mean I(T; label)"]
    assert [r[0] for r in table[1:]] == ["block_0", "block_1", "block_2"]
    middle = row(table, "block_1")
    # Per layer: the probe's cross-entropy bound, which every layer has (Ross's kNN is a diagnostic).
    mean = sum(0.9 * knn_information(1, 1, label) for label in LABELS) / 3
    assert middle[2] == f"{5.0 / 1.9 * 1.1:.3f} ± 0.050"  # the sigma = 0.3 channel estimate
    assert middle[3] == f"≥ {mean:.3f} ± {0.02 * math.sqrt(3) / 3:.3f}"
    assert middle[4 + list(LABELS).index("size")] == f"≥ {0.9 * knn_information(1, 1, 'size'):.3f} ± 0.020"
    accuracy = sum(probe_accuracy(1, 1, label) for label in LABELS) / 3
    assert middle[-3] == f"{100 * accuracy:.1f} ± {1.2 * math.sqrt(3) / 3:.1f}"
    assert middle[-1] == "13.0"
    assert "### mae\\|tiny" in markdown


def test_many_labels_get_a_separate_wide_table():
    labels = [f"factor_{i}" for i in range(10)]
    LABELS.update({name: (math.log(2), 0.5) for name in labels})
    try:
        markdown = render_markdown(fake_report(labels=tuple(labels)))
    finally:
        for name in labels:
            del LABELS[name]
    narrow = table_after(markdown, "### mug")
    assert not any(h.startswith("I(T; factor") for h in narrow[0])
    wide = table_after(markdown, "I(T; label) per label, mug")
    assert wide[0] == ["layer", *labels]
    assert len(wide) == 1 + 3


def test_each_warning_once_with_its_places_and_notes():
    markdown = render_markdown(fake_report())
    section = markdown.split("## Warnings and notes")[1].split("## Time")[0]
    ties = [line for line in section.splitlines() if TIES_WARNING in line]
    assert ties == [f"- {TIES_WARNING} — *in:* mae|tiny: block_1 (colour)"]
    # The channel caveat differs per layer and sigma only in its numbers: one entry for the 18 estimates.
    channel = [line for line in section.splitlines() if "is a property of the noise" in line]
    assert len(channel) == 1 and "here sigma = 0.1 (0.1 x the feature scale) (numbers vary" in channel[0]
    assert channel[0].endswith("*in:* mae|tiny: all layers (I(X; T_σ)); mug: all layers (I(X; T_σ))")
    rank = [line for line in section.splitlines() if RANK_WARNING in line]
    assert len(rank) == 1 and "numbers vary" not in rank[0]
    notes = [line for line in section.splitlines() if line.startswith("- note: ")]
    assert notes == [
        "- note: I(T; caption) measured on the last layer only (mae|tiny) — *in:* mae|tiny",
        "- note: I(T; caption) measured on the last layer only (mug) — *in:* mug",
    ]


def test_places_are_compressed_to_all_layers_and_all_labels():
    report = fake_report()
    warning = ("ties: jittered",)
    mae, mug = report.models
    mug.layers[0].entropy = Estimate(1.0, 0.1, 300, "kl", warnings=warning)
    mug.layers[2].entropy = Estimate(1.0, 0.1, 300, "kl", warnings=warning)
    for layer in mae.layers:
        for label, row in layer.label_information.items():
            row["knn_on_probe_logits"] = row["knn_on_probe_logits"].with_extra(warnings=warning)
            if layer.layer == "block_2" and label != "size":
                row["probe_cross_entropy"] = row["probe_cross_entropy"].with_extra(warnings=warning)
    mug.decoder_bounds["caption_decoder"] = mug.decoder_bounds["caption_decoder"].with_extra(warnings=warning)
    # Notes of a layer start with its name (sometimes twice): grouped across layers and models.
    for model in report.models:
        model.notes = [f"{layer.layer}: {layer.layer}: label 'x' skipped: constant" for layer in model.layers]
    model_note = "features read from the cache"
    mug.notes.append(model_note)
    lines = render_markdown(report).splitlines()
    assert [line for line in lines if "ties: jittered" in line] == [
        "- ties: jittered — *in:* mae|tiny: all layers (all labels); mug: block_0 (H(T)), block_2 (H(T)),"
        " caption_decoder"
    ]
    assert [line for line in lines if "label 'x' skipped" in line] == [
        "- note: label 'x' skipped: constant — *in:* mae|tiny: all layers; mug: all layers"
    ]
    assert f"- note: {model_note} — *in:* mug" in lines
    del mae.layers[2].label_information["size"]["knn_on_probe_logits"]  # now block_2 differs: listed
    line = next(line for line in render_markdown(report).splitlines() if "ties: jittered" in line)
    assert "mae|tiny: block_0 (all labels), block_1 (all labels), block_2 (shape, colour);" in line


def test_header_settings_and_time():
    markdown = render_markdown(fake_report())
    assert markdown.startswith("# Measurement")
    assert "world, split eval, 300 images" in markdown
    assert "quick (mi_k=3, channel_sigmas=[0.1, 0.3, 1.0], plane_sigma=0.3, seed=0)" in markdown
    assert "## How to read this" in markdown and "log K" in markdown and "proxy" in markdown
    settings = markdown.split("## Settings of every estimate")[1].split("## Warnings")[0]
    # label_entropy differs per label and is left out of the grouping: one line for 2 x 3 x 3 estimates.
    knn = [line for line in settings.splitlines() if "[knn_on_probe_logits]" in line]
    assert knn == [
        "- **I(T; label) [knn_on_probe_logits]**: `ross` (k=3, projection=linear_probe_logits; per estimate:"
        " label_entropy); N = 90; 18 estimate(s) in mae|tiny, mug"
    ]
    channel = [line for line in settings.splitlines() if "I(X; T_σ)" in line]
    assert len(channel) == 3 and all("6 estimate(s)" in line for line in channel)  # one per sigma
    times = table_after(markdown, "## Time")
    assert ["whole run", "total", "12.5"] in times and ["mug", "extraction", "2.5"] in times
    assert ["mug", "layers (sum)", "1.5"] in times


def test_single_model_single_layer():
    markdown = render_markdown(fake_report(models=1, depth=1))
    summary = table_after(markdown, "## Readouts and diagnostics")
    assert summary[0] == ["quantity", "ceiling / reference", "mae\\|tiny (block_0)"]
    assert row(summary, "I(T; shape), Ross kNN")[2] == f"≥ {knn_information(0, 0, 'shape'):.3f} ± 0.010"
    assert len(table_after(markdown, "### mae")) == 1 + 1


def test_missing_estimates_print_a_dash():
    report = fake_report()
    last = report.models[0].layers[-1]
    last.entropy = last.effective_rank = last.caption_information = None
    last.transfer = {}
    del last.label_information["size"]
    report.models[1].layers = []  # a model whose measurement failed entirely
    summary = table_after(render_markdown(report), "## Readouts and diagnostics")
    assert summary[0][3] == "mug"
    assert row(summary, "H(T)")[2:] == ["—", "—"]
    assert row(summary, "RankMe")[1:] == ["", "—", "—"]
    assert row(summary, "I(T; size), Ross kNN")[2:] == ["—", "—"]
    assert row(summary, "k-NN acc %, shape")[2:] == ["—", "—"]
    assert row(summary, "I(T; caption), caption decoder")[2:] == ["—", "≥ 2.500 ± 0.040"]


def test_no_labels_and_no_models():
    report = fake_report(labels=())
    assert mean_label_information(report.models[0].layers[0]) is None
    markdown = render_markdown(report)
    assert "I(T; shape)" not in markdown
    assert row(table_after(markdown, "### mug"), "block_0")[3] == "—"
    report.models = []
    with pytest.raises(ValueError, match="no models"):
        render_markdown(report)


def test_a_report_read_back_from_json_renders_the_same():
    report = fake_report()
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert render_markdown(again) == render_markdown(report)
