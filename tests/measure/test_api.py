import json
import math

import pytest

from infomug.measure import get_budget, measure, read_report
from infomug.measure.report_files import JSON_FILE, MARKDOWN_FILE

# Small enough for seconds on one thread: the tiny world's 256 eval images, short critic training.
SMALL = dict(
    images=256,
    batch_size=64,
    probe_max_iter=30,
    channel_samples=200,
    entropy_samples=200,
    caption_steps=40,
    caption_batch=32,
    decoder_samples=128,
)


@pytest.fixture(scope="module")
def small_budget():
    return get_budget("quick", **SMALL)


@pytest.fixture(scope="module")
def report_dir(tiny_checkpoint, small_budget, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    report = measure(tiny_checkpoint, budget=small_budget, out=out, anchors=True, progress=False)
    return out, report


def test_report_has_every_quantity_per_layer(report_dir):
    _, report = report_dir
    trained, random_init, oracle = report.models
    assert trained.objective == "mug" and trained.step == 4
    assert [layer.layer for layer in trained.layers] == ["block_0", "block_1"]
    assert report.label_entropies_exact
    for layer in trained.layers:
        assert layer.n == 256 and layer.dim == 32
        assert "shape" in layer.label_information and "colour" in layer.label_information
        for label, row in layer.label_information.items():
            assert set(row) == {"knn_on_probe_logits", "probe_cross_entropy"}
            for estimate in row.values():
                assert estimate.kind == "lower_bound"
                assert estimate.ceiling == pytest.approx(report.label_entropies[label])
        assert [e.params["relative_sigma"] for e in layer.input_information] == pytest.approx([0.3, 1.0, 3.0])
        assert set(layer.transfer["shape"]) == {"linear_probe", "knn"}
        assert 0.0 <= layer.transfer["shape"]["linear_probe"].value <= 1.0
        assert layer.effective_rank is not None and 1.0 <= layer.effective_rank.value <= 32.0
    # InfoNCE on the last layer only ("quick"), with its log K ceiling.
    assert trained.layers[0].caption_information is None
    caption = trained.layers[-1].caption_information
    assert caption is not None and caption.ceiling == pytest.approx(math.log(32))
    assert set(trained.decoder_bounds) == {"caption_decoder", "pixel_decoder"}
    assert trained.decoder_bounds["caption_decoder"].kind == "lower_bound"


def test_oracle_anchor_reaches_the_label_entropy_and_random_init_does_not(report_dir):
    _, report = report_dir
    _, random_init, oracle = report.models
    assert random_init.name.endswith("(random init)")
    (layer,) = oracle.layers
    for label in ("shape", "colour", "num_objects"):
        entropy = report.label_entropies[label]
        probe_bound = layer.label_information[label]["probe_cross_entropy"]
        # One-hot labels are linearly separable: the probe's held-out cross-entropy is near 0, so the bound
        # is H(label) up to the probe's residual loss (L2 penalty, 30 L-BFGS steps): within 0.15 nats.
        assert probe_bound.value == pytest.approx(entropy, abs=0.15)
        assert layer.transfer[label]["linear_probe"].value == pytest.approx(1.0, abs=0.02)
        random_value = random_init.layers[-1].label_information[label]["probe_cross_entropy"].value
        assert random_value < entropy - 0.3


def test_files_are_written_and_read_back(report_dir):
    out, report = report_dir
    for name in (JSON_FILE, MARKDOWN_FILE, "information_per_layer.png", "information_plane.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    # Compared as JSON text: NaN (a missing standard error) never equals itself as a float.
    written = json.loads((out / JSON_FILE).read_text())
    assert json.dumps(read_report(out).to_dict(), sort_keys=True) == json.dumps(written, sort_keys=True)
    markdown = (out / MARKDOWN_FILE).read_text()
    assert "block_1" in markdown and "(random init)" in markdown
    assert any(path.suffix == ".npy" for path in (out / "features").rglob("*"))


def test_remeasuring_reads_the_feature_cache_and_repeats_the_numbers(
    report_dir, tiny_checkpoint, small_budget
):
    out, first = report_dir
    again = measure(
        tiny_checkpoint, budget=small_budget, layers="last", out=out / "again", cache_dir=out / "features"
    )
    assert any("cache" in note for note in again.models[0].notes)
    before = first.models[0].layers[-1].label_information["shape"]["knn_on_probe_logits"]
    after = again.models[0].layers[0].label_information["shape"]["knn_on_probe_logits"]
    assert after.value == pytest.approx(before.value, abs=1e-9)


def test_side_by_side_names_are_unique(tiny_checkpoint, small_budget, tmp_path):
    budget = get_budget("quick", **{**SMALL, "uncertainty": False, "caption_steps": 10})
    report = measure([tiny_checkpoint, tiny_checkpoint], layers="last", budget=budget, progress=False)
    names = [model.name for model in report.models]
    assert len(set(names)) == 2 and names[1].endswith("(2)")


def test_bad_inputs_are_named(tiny_checkpoint, small_budget, tmp_path):
    with pytest.raises(ValueError, match="budget"):
        measure(tiny_checkpoint, budget="huge")
    with pytest.raises(ValueError, match="layer"):
        measure(tiny_checkpoint, layers="7", budget=small_budget)
    with pytest.raises(FileNotFoundError):
        measure(tmp_path / "missing", budget=small_budget)
