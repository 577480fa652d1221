import logging
import math
from dataclasses import replace

import pytest
from scipy.stats import spearmanr

from infomug.measure.plots import (
    PLOTS,
    MissingDataError,
    figure_information_per_layer,
    figure_information_plane,
    figure_information_vs_transfer,
    figure_input_information,
    figure_transfer,
    information_transfer_correlation,
    information_transfer_points,
    layer_order,
    write_plots,
)
from infomug.measure.results import LayerResult
from tests.measure.test_markdown import LABELS, SIGMAS, fake_report, knn_information, probe_accuracy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# The fake reports carry no usable information: the headline plot is skipped, with a logged reason.
WITHOUT_HEADLINE = [name for name in PLOTS if name != "information_headline.png"]


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000, f"{path.name}: not a non-trivial PNG"


def test_write_plots_writes_every_plot(tmp_path):
    paths = write_plots(fake_report(), tmp_path / "out")
    assert [p.name for p in paths] == WITHOUT_HEADLINE
    for path in paths:
        assert path.parent == tmp_path / "out"
        assert_png(path)


def test_single_model_single_layer(tmp_path):
    paths = write_plots(fake_report(models=1, depth=1), tmp_path)
    assert [p.name for p in paths] == WITHOUT_HEADLINE
    for path in paths:
        assert_png(path)


def test_report_without_labels_skips_the_label_plots(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="infomug.measure.plots"):
        paths = write_plots(fake_report(labels=()), tmp_path)
    assert [p.name for p in paths] == ["input_information.png"]
    assert_png(paths[0])
    skipped = {name for name in PLOTS if f"skipped {name}" in caplog.text}
    assert skipped == set(PLOTS) - {"input_information.png"}
    assert not (tmp_path / "information_per_layer.png").exists()


def test_a_report_with_nothing_to_plot_writes_nothing(tmp_path):
    report = fake_report(labels=())
    for model in report.models:
        model.layers = [LayerResult(layer.layer, layer.dim, layer.n) for layer in model.layers]
    assert write_plots(report, tmp_path) == []
    with pytest.raises(MissingDataError, match="no label information"):
        figure_information_per_layer(report)


def test_information_transfer_points_and_spearman_title():
    report = fake_report()
    x, y, names = information_transfer_points(report)
    assert len(x) == len(y) == len(names) == 2 * 3 * 3
    for xi, yi, (model, layer, label) in zip(x, y, names, strict=True):
        m, i = ("mae|tiny", "mug").index(model), int(layer.split("_")[1])
        assert xi == pytest.approx(knn_information(m, i, label), abs=1e-12)
        assert yi == pytest.approx(probe_accuracy(m, i, label), abs=1e-12)
    rho, n = information_transfer_correlation(report)
    expected = spearmanr(x, y).statistic
    assert n == 18 and rho == pytest.approx(expected, abs=1e-12)
    # Information and accuracy do not rank identically across labels of different entropy: rho is not 1.
    assert 0.0 < rho < 0.99
    title = figure_information_vs_transfer(report).axes[0].get_title()
    assert title == f"Spearman ρ = {expected:.3f} (n = 18 points)"


def test_spearman_undefined_with_too_few_points():
    report = fake_report(models=1, depth=1, labels=("shape", "colour"))
    assert math.isnan(information_transfer_correlation(report)[0])
    title = figure_information_vs_transfer(report).axes[0].get_title()
    assert title == "Spearman ρ = undefined (n = 2 points)"


def test_plane_names_sigma_and_marks_first_and_last_layer():
    figure = figure_information_plane(fake_report())
    assert figure.get_suptitle() == "Information plane, sigma = 0.3 x feature scale"
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.texts] == ["block_0", "block_2"] * 2
    assert "(nats)" in ax.get_xlabel() and "(nats)" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mae|tiny", "mug"]
    single = figure_information_plane(fake_report(models=1, depth=1))
    assert [t.get_text() for t in single.axes[0].texts] == ["block_0"]


def test_transfer_draws_a_shared_majority_rate_once():
    report = fake_report()
    for ax in figure_transfer(report).axes:
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(dashed) == 1
        assert dashed[0].get_ydata()[0] == pytest.approx(100 * sum(b for _, b in LABELS.values()) / 3)
    for layer in report.models[1].layers:
        for row in layer.transfer.values():
            row.update({method: replace(score, baseline=0.9) for method, score in row.items()})
    for ax in figure_transfer(report).axes:
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        shared = 100 * sum(b for _, b in LABELS.values()) / 3
        assert [line.get_ydata()[0] for line in dashed] == pytest.approx([shared, 90.0])


def test_per_layer_panels_and_ceilings():
    figure = figure_information_per_layer(fake_report())
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(LABELS)
    for ax, (entropy, _) in zip(visible, LABELS.values(), strict=True):
        ceiling = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(ceiling) == 1 and ceiling[0].get_ydata()[0] == pytest.approx(entropy)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["block_0", "block_1", "block_2"]


def test_many_labels_keep_the_sixteen_of_highest_entropy():
    names = [f"factor_{i:02d}" for i in range(20)]
    LABELS.update({name: (0.1 * (i + 1), 0.5) for i, name in enumerate(names)})
    try:
        figure = figure_information_per_layer(fake_report(models=1, depth=2, labels=tuple(names)))
    finally:
        for name in names:
            del LABELS[name]
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert titles == names[::-1][:16]
    assert "16 labels of highest entropy, of 20" in figure.get_suptitle()


def test_models_with_different_taps_and_gaps(tmp_path):
    report = fake_report(depth=3)
    report.models[1].layers = [report.models[1].layers[0], report.models[1].layers[2]]
    report.models[1].layers.append(LayerResult("block_3", 32, 300))  # a tap with nothing measured
    del report.models[0].layers[1].label_information["size"]
    report.models[0].layers.insert(0, LayerResult("stem", 32, 300))  # placed before its next known layer
    report.models.append(fake_report(models=1, depth=1).models[0])
    report.models[-1].layers[0].layer = "labels_one_hot"  # an anchor sharing no layer comes last
    assert layer_order(report) == ["stem", "block_0", "block_1", "block_2", "block_3", "labels_one_hot"]
    assert len(information_transfer_points(report)[0]) == 3 * 3 - 1 + 2 * 3 + 3
    assert [p.name for p in write_plots(report, tmp_path)] == WITHOUT_HEADLINE


def test_input_information_draws_each_noise_level_once():
    # One layer's sigma = 0.3 estimate carries 0.30000000000000004 (sigma / scale, as older reports hold it).
    report = fake_report()
    channel = report.models[1].layers[2].input_information
    channel[1] = replace(channel[1], params={**channel[1].params, "relative_sigma": 0.30000000000000004})
    channel_ax = figure_input_information(report).axes[0]
    labels = [t.get_text() for t in channel_ax.get_legend().get_texts()]
    series = [label for label in labels if "σ =" in label]
    assert series == [f"{model}, σ = {sigma:g}" for model in ("mae|tiny", "mug") for sigma in SIGMAS]
