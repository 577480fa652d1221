import dataclasses
import json
import math

import numpy as np
import pytest

from infomug.measure.budget import get_budget
from infomug.measure.layer import discrete_labels, measure_layer
from infomug.measure.results import LayerResult

STAGES = {"probe", "knn", "label_information", "channel", "entropy", "rank"}


def small_budget(**changes):
    base = dict(
        channel_samples=200, entropy_samples=300, uncertainty=False, caption_steps=50, caption_batch=16
    )
    return dataclasses.replace(get_budget("quick"), **{**base, **changes})


def blob_data(n: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    features = (np.eye(4)[y] @ rng.standard_normal((4, 6)) * 4 + rng.standard_normal((n, 6))).astype(
        np.float32
    )
    labels = {
        "y": y,
        "flag": (rng.random(n) < 0.3),
        "constant": np.zeros(n, dtype=np.int64),
        "position": rng.random(n),
        "image_id": np.arange(n),
    }
    return features, labels


def test_measure_layer_fills_every_quantity_and_round_trips():
    features, labels = blob_data()
    budget = small_budget(channel_sigmas=(0.1, 0.3), plane_sigma=0.3)
    result, notes = measure_layer("block_1", features, labels, budget, entropies={"y": math.log(4)})
    assert (result.layer, result.dim, result.n) == ("block_1", 6, 400)
    assert set(result.seconds) == STAGES and all(s >= 0 for s in result.seconds.values())
    assert set(result.transfer) == set(result.label_information) == {"y", "flag"}
    assert set(result.transfer["y"]) == {"linear_probe", "knn", "knn_standardized"}
    assert result.transfer["y"]["knn_standardized"].method == "knn_standardized"
    assert result.transfer["y"]["knn_standardized"].n == result.transfer["y"]["knn"].n == 120
    probe = result.transfer["y"]["linear_probe"].params
    assert probe["converged"] is True and probe["tolerance_grad"] == budget.probe_tolerance_grad
    assert result.transfer["y"]["linear_probe"].n == 120  # test split: 0.3 x 400
    assert set(result.label_information["y"]) == {"probe_cross_entropy", "knn_on_probe_logits"}
    # Exact H(y) given: no plug-in warning; H(flag) not given: plug-in, said so.
    assert result.label_information["y"]["probe_cross_entropy"].ceiling == pytest.approx(math.log(4))
    assert not any("plug-in" in w for w in result.label_information["y"]["probe_cross_entropy"].warnings)
    assert any("plug-in" in w for w in result.label_information["flag"]["probe_cross_entropy"].warnings)
    assert [e.params["relative_sigma"] for e in result.input_information] == pytest.approx([0.1, 0.3])
    assert result.channel_at(0.3) is not None and result.input_information[0].n == 200
    for estimate in result.input_information:
        assert estimate.params["role"] == "geometry_diagnostic" and estimate.params["whitened"] is True
        assert estimate.params["sigma"] == estimate.params["relative_sigma"]  # absolute on whitened features
        assert any("geometry diagnostic" in w for w in estimate.warnings)
    assert result.entropy.params["role"] == "geometry_diagnostic" and result.entropy.params["whitened"]
    assert result.entropy is not None and result.entropy.n == 300
    assert result.effective_rank.params["max"] == 6
    assert result.caption_information is None
    skipped = " ".join(notes)
    for name, reason in [
        ("constant", "single class"),
        ("position", "continuous"),
        ("image_id", "identifier"),
    ]:
        assert f"'{name}' skipped" in skipped and reason in skipped
    text = json.dumps(result.to_dict())  # NaN standard errors are written as NaN
    assert json.dumps(LayerResult.from_dict(json.loads(text)).to_dict()) == text


def test_measure_layer_without_diagnostics_keeps_the_readouts_and_the_probe_bound():
    features, labels = blob_data()
    budget = small_budget()
    full, _ = measure_layer("block_1", features, labels, budget, entropies={"y": math.log(4)})
    lean, _ = measure_layer(
        "block_1", features, labels, budget, entropies={"y": math.log(4)}, diagnostics=False
    )
    assert set(lean.seconds) == {"probe", "knn", "label_information"}
    assert lean.input_information == [] and lean.entropy is None and lean.effective_rank is None
    assert set(lean.label_information["y"]) == {"probe_cross_entropy"}
    # The same probes and k-NN, the same bound: skipping the diagnostics changes nothing else.
    assert lean.transfer["y"]["linear_probe"].value == full.transfer["y"]["linear_probe"].value
    assert lean.transfer["y"]["knn"].value == full.transfer["y"]["knn"].value
    same = lean.label_information["y"]["probe_cross_entropy"].value
    assert same == full.label_information["y"]["probe_cross_entropy"].value
    assert get_budget("quick").diagnostic_layers == "last" and get_budget("full").diagnostic_layers == "all"
    with pytest.raises(ValueError, match="diagnostic_layers"):
        get_budget("quick", diagnostic_layers="some")


def test_measure_layer_without_usable_labels_still_measures_the_features():
    features, labels = blob_data()
    result, notes = measure_layer("block_0", features, {"position": labels["position"]}, small_budget())
    assert result.transfer == {} and result.label_information == {}
    assert result.effective_rank is not None and len(result.input_information) == 4  # quick's 4 sigmas
    assert any("no discrete label" in note for note in notes)


def test_measure_layer_notes_quantities_it_cannot_measure():
    features, labels = blob_data()
    features[:, 2] = 1.5  # a dead unit: H(T) of the raw features cannot be measured, the rest can
    captions = ["the same caption"] * len(features)
    result, notes = measure_layer(
        "block_2",
        features,
        labels,
        small_budget(whiten_diagnostics=False),
        captions=captions,
        caption_information=True,
    )
    assert result.entropy is None and any(
        "H(T) not measured" in note and "constant" in note for note in notes
    )
    assert result.caption_information is None and any("I(T; caption) not measured" in n for n in notes)
    assert "caption" in result.seconds and len(result.input_information) == 4
    assert all(e.params["whitened"] is False for e in result.input_information)
    # Whitened (the default), the dead direction is dropped and H(T) is that of the other 5.
    whitened, _ = measure_layer("block_2", features, labels, small_budget())
    assert whitened.entropy is not None and whitened.entropy.params["dropped_dims"] == 1


def test_measure_layer_caption_information(monkeypatch):
    import estimators.neural.estimator as neural

    def default_device(_):
        raise AssertionError("the caption critic's device was not passed on")

    monkeypatch.setattr(neural, "_default_device", default_device)
    features, labels = blob_data(n=600, seed=3)
    words = ["red", "green", "blue", "pink"]
    captions = [f"a {words[c]} thing" for c in labels["y"]]
    result, _ = measure_layer(
        "last",
        features,
        {"y": labels["y"]},
        small_budget(caption_steps=100),
        captions=captions,
        caption_information=True,
        progress=False,
        device="cpu",
    )
    estimate = result.caption_information
    # Captions name y, which the features separate well: InfoNCE sees most of H(y) = log 4 = 1.39.
    assert estimate is not None and estimate.params["text_feature"] == "bag_of_words"
    assert 0.7 < estimate.value <= math.log(4) + 3 * estimate.stderr
    assert estimate.params["device"] == "cpu"


def test_discrete_labels_selection():
    usable, skipped = discrete_labels(
        {
            "int": np.array([0, 1, 1, 0]),
            "bool": np.array([True, False, True, True]),
            "float": np.array([0.0, 1.0, 1.0, 0.0]),
            "one": np.array([2, 2, 2, 2]),
            "text": np.array(["a", "b", "a", "b"]),
            "ids": np.array([0, 1, 2, 3]),
        }
    )
    assert set(usable) == {"int", "bool"}
    assert set(skipped) == {"float", "one", "text", "ids"}


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda f, lab: (np.where(np.arange(f.size).reshape(f.shape) % 7 == 0, np.nan, f), lab),
            "'bad'.*NaN",
        ),
        (lambda f, lab: (f, {**lab, "y": lab["y"][:-1]}), "label 'y'"),
        (lambda f, lab: (f[:19], {k: v[:19] for k, v in lab.items()}), "at least 20"),
        (lambda f, lab: (f[:, 0], lab), r"\[N, D\]"),
    ],
)
def test_measure_layer_validates_its_input(change, match):
    features, labels = blob_data(n=60)
    features, labels = change(features, labels)
    with pytest.raises(ValueError, match=match):
        measure_layer("bad", features, labels, small_budget())


def test_measure_layer_counts_bad_values_and_checks_captions():
    features, labels = blob_data(n=60)
    features[0, 0], features[3, 1] = np.nan, np.inf
    with pytest.raises(ValueError, match="contain 2 NaN or infinite"):
        measure_layer("bad", features, labels, small_budget())
    features, _ = blob_data(n=60)
    with pytest.raises(ValueError, match="needs captions"):
        measure_layer("x", features, labels, small_budget(), caption_information=True)
    with pytest.raises(ValueError, match="59 captions"):
        measure_layer("x", features, labels, small_budget(), captions=["a"] * 59)


def test_measure_layer_knn_on_standardised_features_ignores_a_huge_noise_dimension():
    features, labels = blob_data(n=400, seed=4)
    features = features - features.mean(axis=0) + 20.0
    noise = np.random.default_rng(5).standard_normal((400, 1)) * 1000.0
    noisy = np.concatenate([features, noise], axis=1).astype(np.float32)
    result, _ = measure_layer("block_0", noisy, {"y": labels["y"]}, small_budget())
    row = result.transfer["y"]
    # Raw cosine k-NN is mostly the noise's; standardised k-NN and the probe see the 4 blobs.
    assert row["knn_standardized"].value > row["knn"].value + 0.2
    assert row["knn_standardized"].value > 0.9 and row["linear_probe"].value > 0.9
