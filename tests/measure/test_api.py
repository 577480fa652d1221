import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import IterableDataset

from infomug.measure import get_budget, measure, read_report
from infomug.measure.api import ORACLE, PIXELS, _anchor_features, _decoder_bounds, resolve_models
from infomug.measure.eval_data import label_entropies, resolve_data
from infomug.measure.extract import Features
from infomug.measure.report_files import JSON_FILE, MARKDOWN_FILE
from infomug.measure.results import ModelResult
from infomug.measure.sources import load_checkpoint, load_timm
from infomug.measure.usable.stage import StageData, make_splits

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
    decoder_max_epochs=5,
)
# Side-by-side and error tests need neither the fresh decoders nor the anchors.
PLAIN = dict(usable_information=False)


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
    trained, random_init, pixels, oracle = report.models
    assert (random_init.is_anchor, pixels.name, pixels.is_anchor, oracle.name) == (True, PIXELS, True, ORACLE)
    assert trained.objective == "mug" and trained.step == 4 and not trained.is_anchor
    assert [layer.layer for layer in trained.layers] == ["block_0", "block_1"]
    assert report.label_entropies_exact
    for layer in trained.layers:
        last = layer is trained.layers[-1]
        assert layer.n == 256 and layer.dim == 32
        assert "shape" in layer.label_information and "colour" in layer.label_information
        for label, row in layer.label_information.items():
            # Ross's kNN on the logits is a diagnostic: the last layer only ("quick").
            assert set(row) == (
                {"knn_on_probe_logits", "probe_cross_entropy"} if last else {"probe_cross_entropy"}
            )
            for estimate in row.values():
                assert estimate.kind == "lower_bound"
                assert estimate.ceiling == pytest.approx(report.label_entropies[label])
        assert set(layer.transfer["shape"]) == {"linear_probe", "knn", "knn_standardized"}
        assert 0.0 <= layer.transfer["shape"]["linear_probe"].value <= 1.0
        sigmas = [e.params["relative_sigma"] for e in layer.input_information]
        assert sigmas == (pytest.approx([1, 3, 10, 30]) if last else [])
        if last:
            assert layer.effective_rank is not None and 1.0 <= layer.effective_rank.value <= 32.0
            assert {"channel", "entropy", "rank"} <= set(layer.seconds)
        else:
            assert layer.effective_rank is None and layer.entropy is None
            assert not {"channel", "entropy", "rank"} & set(layer.seconds)
    # InfoNCE on the last layer only ("quick"), with its log K ceiling.
    assert trained.layers[0].caption_information is None
    caption = trained.layers[-1].caption_information
    assert caption is not None and caption.ceiling == pytest.approx(math.log(32))
    assert set(trained.decoder_bounds) == {"caption_decoder", "pixel_decoder"}
    assert trained.decoder_bounds["caption_decoder"].kind == "lower_bound"
    # The headline: fresh decoders on the last layer ("quick"), for the model and every anchor alike.
    for model in report.models:
        information = model.layers[-1].information
        assert {"image", "caption", "factors", "factors_mean"} <= set(information), model.name
        assert information["image"].kind == "point" and information["image"].ceiling > 0
        assert information["caption"].kind == "lower_bound"  # the world's H(caption) is exact
        assert information["caption"].ceiling == pytest.approx(report.caption_information_total)
        for label, estimate in information["factors"].items():
            assert estimate.kind == "lower_bound"
            assert estimate.ceiling == pytest.approx(report.label_entropies[label])
    assert trained.layers[0].information == {}
    # Paired differences: the model against each anchor, never two anchors against each other.
    pairs = {(c.first, c.second) for c in report.comparisons}
    assert pairs == {(trained.name, anchor.name) for anchor in (random_init, pixels, oracle)}
    assert {c.quantity for c in report.comparisons} == {"image", "caption", "factors"}


def test_oracle_anchor_reaches_the_label_entropy_and_random_init_does_not(report_dir):
    _, report = report_dir
    _, random_init, _, oracle = report.models
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
        tiny_checkpoint,
        budget=small_budget,
        layers="last",
        out=out / "again",
        cache_dir=out / "features",
        anchors=False,
    )
    assert any("cache" in note for note in again.models[0].notes)
    before = first.models[0].layers[-1].label_information["shape"]["knn_on_probe_logits"]
    after = again.models[0].layers[0].label_information["shape"]["knn_on_probe_logits"]
    assert after.value == pytest.approx(before.value, abs=1e-9)


def test_side_by_side_names_are_unique(tiny_checkpoint, small_budget, tmp_path):
    budget = get_budget("quick", **{**SMALL, **PLAIN, "uncertainty": False, "caption_steps": 10})
    report = measure(
        [tiny_checkpoint, tiny_checkpoint], layers="last", budget=budget, anchors=False, progress=False
    )
    names = [model.name for model in report.models]
    assert len(set(names)) == 2 and names[1].endswith("(2)")


def test_bad_inputs_are_named(tiny_checkpoint, small_budget, tmp_path):
    with pytest.raises(ValueError, match="budget"):
        measure(tiny_checkpoint, budget="huge")
    with pytest.raises(ValueError, match="layer"):
        measure(tiny_checkpoint, layers="7", budget=small_budget)
    with pytest.raises(FileNotFoundError):
        measure(tmp_path / "missing", budget=small_budget)
    # Refused before any extraction, not after it by the first estimator.
    with pytest.raises(ValueError, match="images=10: measuring needs at least 20 images"):
        measure(tiny_checkpoint, budget=get_budget("quick", images=10))
    # Settings the probes would refuse only after the extraction are refused when the budget is built.
    with pytest.raises(ValueError, match="knn_temperature must be positive"):
        get_budget("quick", knn_temperature=0.0)
    with pytest.raises(ValueError, match="probe_weight_decay must be >= 0"):
        get_budget("quick", probe_weight_decay=-1e-3)
    with pytest.raises(ValueError, match="device must be cpu, cuda"):
        measure(tiny_checkpoint, budget=small_budget, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            measure(tiny_checkpoint, budget=small_budget, device="cuda")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"schema_version": 1, "models": []}))
    with pytest.raises(ValueError, match="not a complete infomug measure report"):
        read_report(broken)


def test_the_same_loaded_model_twice_gets_two_names_and_is_not_renamed(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint, name="a")
    other = load_checkpoint(tiny_checkpoint, name="a (2)")
    loaded = resolve_models([model, model, other], "cpu")
    assert [m.name for m in loaded] == ["a", "a (2)", "a (2) (2)"]
    assert model.name == "a" and other.name == "a (2)"


def test_foreign_models_get_data_at_their_input_size_and_a_mismatch_is_refused(tiny_checkpoint):
    vit = load_timm("vit_tiny_patch16_224", img_size=24, patch_size=8, depth=1, embed_dim=16, num_heads=1)
    config = resolve_data(None, [vit]).config
    assert (config.source, config.image_size, config.world.image_size) == ("world", 24, 24)
    assert resolve_data("digits", [vit]).config.digits.image_size == 24
    assert resolve_data(None, [vit], ["image_size=40"]).config.image_size == 40  # the user's word wins
    # Side by side with a 16-pixel checkpoint, the data is the checkpoint's: a clear error, not timm's assert.
    with pytest.raises(ValueError, match=r"takes 24x24 images but the eval data gives 16x16"):
        measure([tiny_checkpoint, vit], budget=get_budget("quick", images=20))


def test_a_module_is_given_back_in_its_mode_and_the_report_counts_the_images_measured():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 8), nn.Dropout(0.5)).train()
    budget = get_budget(
        "quick", **{**SMALL, "images": 60, "uncertainty": False, "caption_steps": 5, "caption_batch": 16}
    )
    report = measure(net, "world", layers=["1"], budget=budget, anchors=False, progress=False)
    assert net.training and net[2].training  # measured in eval mode, handed back in train mode
    assert report.data["images"] == 60 and report.models[0].layers[0].n == 60
    assert report.data["layers"] == ["1"]
    again = measure(net, "world", layers=np.array(["1"]), budget=budget, anchors=False)
    assert json.dumps(again.data["layers"]) == '["1"]'


class _Stream(IterableDataset):
    def __init__(self, dataset, n):
        self.dataset, self.n = dataset, n

    def __iter__(self):
        return (self.dataset[i] for i in range(self.n))


def test_decoder_bounds_read_a_stream_and_only_the_measured_images(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint)
    eval_data = resolve_data(None, [model])
    eval_data.dataset = _Stream(eval_data.dataset, 100)
    result = ModelResult(name="m", source="s", objective="mug", step=4, fingerprint="f")
    budget = get_budget("quick", decoder_samples=2000)
    _decoder_bounds(model, eval_data, budget, torch.device("cpu"), False, result, images=24)
    pixel, caption = result.decoder_bounds["pixel_decoder"], result.decoder_bounds["caption_decoder"]
    assert pixel.params["fit_samples"] + pixel.params["held_out_samples"] == 24
    assert caption.n == 24
    assert not result.notes


def _features(labels):
    n = len(next(iter(labels.values())))
    return Features(
        layers={}, labels=labels, captions=["c"] * n, indices=np.arange(n), seconds=0.0, from_cache=False
    )


def test_oracle_encodes_the_labels_the_layers_measure_and_is_skipped_without_any():
    n = 40
    labels = {"cls": np.arange(n) % 2, "image_id": np.arange(n), "size": np.linspace(0, 1, n)}
    (oracle,) = _anchor_features(_features(labels), None, get_budget("quick"))
    assert oracle.name == ORACLE
    assert oracle.features.layers["labels_one_hot"].shape == (n, 2)  # no one-hot block for the id
    assert _anchor_features(_features({"size": labels["size"]}), None, get_budget("quick")) == []


def test_the_pixel_anchor_reads_the_images_as_patches_and_principal_components():
    n = 40
    images = np.random.default_rng(0).integers(0, 256, (n, 3, 16, 16), dtype=np.uint8)
    features = replace(_features({"cls": np.arange(n) % 2}), images=images)
    splits = make_splits(n, get_budget("quick"))
    stage = StageData(images, None, {}, {}, None, None, splits)
    pixels, _ = _anchor_features(features, stage, get_budget("quick"))
    assert pixels.name == PIXELS
    # 16 px images: the decoders' 2 px target patches (8 per side) are the grid's tokens.
    assert pixels.features.grids["pixels"].shape == (n, 64, 2 * 2 * 3)
    assert pixels.features.layers["pixels"].shape == (n, splits.train.size)  # PCs capped by train rows


def test_label_entropies_are_exact_where_known_and_plug_in_elsewhere():
    labels = {"a": np.array([0, 0, 1, 1]), "b": np.array([0, 1, 2, 3])}
    entropies, exact = label_entropies({"a": 0.5}, labels, ["a", "b"])
    assert entropies == pytest.approx({"a": 0.5, "b": math.log(4)}) and not exact
    assert label_entropies({"a": 0.5, "b": 1.0}, labels, ["a", "b"]) == ({"a": 0.5, "b": 1.0}, True)
    assert label_entropies(None, labels, ["a"]) == (pytest.approx({"a": math.log(2)}), False)


@pytest.mark.parametrize(
    "objective, bounds", [("mae", {"pixel_decoder"}), ("clip", set()), ("simclr", set())]
)
def test_every_objective_is_measured_through_one_path(objective, bounds, tiny_measure_overrides, tmp_path):
    from infomug.train import train
    from infomug.train.config import load_config

    run = tmp_path / objective
    train(load_config(None, [*tiny_measure_overrides, f"model.objective={objective}"]), run, progress=False)
    budget = get_budget("quick", **{**SMALL, "images": 128, "uncertainty": False, "caption_steps": 10})
    (model,) = measure(run, budget=budget, layers="last", anchors=False, progress=False).models
    assert model.objective == objective and set(model.decoder_bounds) == bounds
    (layer,) = model.layers
    # The headline's fresh decoders read every objective the same way.
    assert {"image", "caption", "factors", "factors_mean"} <= set(layer.information)
    assert layer.information["factors"]["colour"].method == "mlp_decoder"
    assert layer.layer == "block_1" and layer.dim == 32 and "colour" in layer.label_information


def test_log_mode_says_what_runs_how_long_it_took_and_what_is_left(tiny_checkpoint, monkeypatch, caplog):
    # A 37-image stream asked for 10,000: the log says "up to", then how many it really read.
    model = load_checkpoint(tiny_checkpoint)
    eval_data = resolve_data(None, [model])
    eval_data.dataset = _Stream(eval_data.dataset, 37)
    monkeypatch.setattr("infomug.measure.api.resolve_data", lambda *args, **kwargs: eval_data)
    budget = get_budget("quick", **{**SMALL, **PLAIN, "images": 10_000, "uncertainty": False})
    with caplog.at_level("INFO", logger="infomug.measure.api"):
        report = measure(model, budget=budget, anchors=False, progress=False)
    lines = [record.getMessage() for record in caplog.records if record.name == "infomug.measure.api"]
    assert report.data["images"] == 37
    assert any("up to 10000 images (a stream: until it ends)" in line for line in lines)
    assert any("37 images extracted in" in line for line in lines)
    assert not any("10000 images extracted" in line for line in lines)
    layers = [line for line in lines if ": layer block_" in line]
    assert len(layers) == 2 and "(1 of 2)" in layers[0] and "left for its layers" in layers[0]
    assert all(line.startswith("[0:") for line in lines)  # elapsed time first
    assert lines[-1].endswith("done: 1 models measured")
