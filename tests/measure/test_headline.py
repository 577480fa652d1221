"""The headline section of measure.md and its plot, on a hand-made report with known numbers."""

import math

import pytest

from estimators import Estimate
from infomug.measure.headline import headline_section
from infomug.measure.headline_plot import (
    NoHeadlineError,
    figure_information_headline,
    plot_information_headline,
)
from infomug.measure.markdown import render_markdown
from infomug.measure.results import Comparison, LayerResult, ModelResult, Report, Score


def _estimate(value, stderr, method, kind="point", ceiling=None, **params):
    return Estimate(value, stderr, 300, method, params=params, kind=kind, ceiling=ceiling)


def _layer(name, image, caption, colour):
    layer = LayerResult(name, 8, 1000)
    layer.information = {
        "image": _estimate(image, 2.0, "image_decoder", ceiling=1400.0, baseline_nll=1400.0),
        "caption": _estimate(caption, 0.1, "caption_decoder", "lower_bound", ceiling=5.94),
        "factors": {"colour": _estimate(colour, 0.02, "mlp_decoder", "lower_bound", ceiling=math.log(8))},
        "factors_mean": _estimate(colour, 0.02, "mlp_decoder", "lower_bound"),
    }
    layer.transfer = {
        "colour": {"linear_probe": Score(0.5, 0.01, 300, "linear_probe"), "knn": Score(0.4, 0.01, 300, "knn")}
    }
    return layer


def _report(with_information=True):
    trained = ModelResult("mae", "run", "mae", 1000, "f1", layers=[_layer("block_5", 300.0, 1.2, 1.5)])
    pixels = ModelResult(
        "pixels (anchor)", "anchor", None, None, "pixels", layers=[_layer("pixels", 900.0, 0.5, 0.2)]
    )
    if not with_information:
        for model in (trained, pixels):
            model.layers[0].information = {}
    comparisons = [
        Comparison("image", "mae", "pixels (anchor)", "block_5", "pixels", _estimate(-600.0, 10.0, "paired")),
        Comparison("caption", "mae", "pixels (anchor)", "block_5", "pixels", _estimate(0.05, 0.05, "paired")),
    ]
    return Report(
        models=[trained, pixels],
        data={"source": "world", "split": "eval", "images": 1000},
        label_entropies={"colour": math.log(8)},
        label_entropies_exact=True,
        caption_information_total=5.94,
        settings={"name": "quick", "channel_sigmas": [1.0], "plane_sigma": 1.0},
        versions={},
        created="2026-12-03T00:00:00+00:00",
        comparisons=comparisons if with_information else [],
    )


def _rows(lines, first_cell):
    return [line for line in lines if line.startswith(f"| {first_cell}")]


def test_the_headline_puts_models_and_anchors_side_by_side_with_ceilings_and_paired_differences():
    lines = headline_section(_report())
    text = "\n".join(lines)
    assert lines[1] == "## Information on equal terms"
    (mae,) = _rows(lines, "mae (block_5)")
    assert "300.0 ± 2.0" in mae and "≥ 1.20 ± 0.10" in mae and "≥ 1.500 ± 0.020" in mae and "| 50.0 |" in mae
    (ceiling,) = _rows(lines, "*ceiling*")
    assert (
        "H_V(X) = 1400.0" in ceiling and "I(image; caption) = 5.94" in ceiling and "mean H = 2.079" in ceiling
    )
    assert "pooled vector" not in text.split("### Paired")[0]  # no column for a quantity nobody measured
    (image,) = _rows(lines, "I_V(T → image), token grid")
    assert "-600.000 ± 10.000" in image and image.rstrip(" |").endswith("below")
    (caption,) = _rows(lines, "I(T; caption)")
    assert caption.rstrip(" |").endswith("not distinguishable")  # 0.05 ± 1.96 x 0.05 includes 0
    (colour,) = _rows(lines, "colour")
    assert "2.079" in colour and "≥ 0.200 ± 0.020" in colour


def test_the_headline_comes_before_the_readouts_and_is_left_out_without_usable_information():
    markdown = render_markdown(_report())
    assert markdown.index("## Information on equal terms") < markdown.index("## Readouts and diagnostics")
    assert headline_section(_report(with_information=False)) == []
    assert "## Information on equal terms" not in render_markdown(_report(with_information=False))


def test_the_headline_plot_has_one_panel_per_target_and_refuses_an_empty_report(tmp_path):
    figure = figure_information_headline(_report())
    assert len(figure.axes) == 3
    path = plot_information_headline(_report(), tmp_path / "headline.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(NoHeadlineError):
        figure_information_headline(_report(with_information=False))
