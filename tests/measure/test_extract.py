"""Feature extraction: rows agree with the data, the disk cache is reused, extended and rebuilt when bad,
and a 2-process gloo extraction returns the 1-process features on every rank."""

import io
import json
import logging
import os
import tarfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from torch import nn
from torch.utils.data import Dataset, IterableDataset

from infomug.data import WebDatasetShards, build_dataset
from infomug.measure import extract, feature_cache
from infomug.measure.extract import extract_features, feature_cache_key
from infomug.measure.sources import data_config_of, from_module, load_checkpoint
from infomug.measure.taps import IntermediatesTap

N = 37  # not a multiple of the batch size
BATCH = 16
# Batches of different sizes change the order of float32 reductions inside the matrix products.
FLOAT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="module")
def world(model):
    return build_dataset(data_config_of(model), "eval")


@pytest.fixture
def forward_count(model):
    """How many batches the encoder has embedded since the test began."""
    calls = []
    handle = model.encoder.vit.patch_embed.register_forward_pre_hook(lambda module, args: calls.append(1))
    yield calls
    handle.remove()


def _extract(model, dataset, cache_dir, layers="all", **kwargs):
    options = dict(layers=layers, n=N, batch_size=BATCH, cache_dir=cache_dir, data_key="world-eval")
    return extract_features(model, dataset, **{**options, **kwargs})


def test_features_agree_with_the_data_and_a_direct_forward(model, world):
    features = _extract(model, world, None, progress=False)
    assert not features.from_cache and features.seconds > 0
    assert list(features.layers) == ["block_0", "block_1"]
    np.testing.assert_array_equal(features.indices, np.arange(N))
    samples = [world[i] for i in range(N)]
    assert features.captions == [s["caption"] for s in samples]
    assert set(features.labels) == set(samples[0]["labels"])
    for name, values in features.labels.items():
        truth = [s["labels"][name] for s in samples]
        assert values.shape == (N,)
        assert values.dtype == (np.int64 if isinstance(truth[0], int) else np.float64), name
        np.testing.assert_array_equal(values, truth)
    direct = IntermediatesTap(model.encoder, [0, 1])(torch.stack([s["image"] for s in samples]))
    for name, array in features.layers.items():
        assert array.shape == (N, 32) and array.dtype == np.float32
        np.testing.assert_allclose(array, direct[name].numpy(), rtol=0, atol=FLOAT_TOLERANCE)
    assert not model.encoder.training


def test_kept_images_are_the_pixels_the_data_holds_not_its_normalised_values(model, world):
    features = _extract(model, world, None, progress=False, keep_images=True)
    normalised = torch.stack([world[i]["image"] for i in range(N)])
    assert float(normalised.min()) < -0.1  # normalised: clipping them to [0, 1] would lose most pixels
    mean = torch.as_tensor(world.mean).view(1, -1, 1, 1)
    std = torch.as_tensor(world.std).view(1, -1, 1, 1)
    pixels = (normalised * std + mean).numpy()
    assert features.images.dtype == np.uint8 and features.images.shape == pixels.shape
    # round(255 x): within half a level of the pixels (plus float error of the round trip).
    np.testing.assert_allclose(features.images / 255.0, pixels, rtol=0, atol=0.5 / 255 + 1e-5)
    # A dataset whose images are not pixels and that names no statistics is refused, not clipped.
    normalised_samples = ListData(_samples(4, image_size=16))
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 1\]"):
        extract_features(model, normalised_samples, layers="last", n=4, keep_images=True)


def test_second_call_is_a_cache_hit_without_running_the_model(model, world, tmp_path, forward_count):
    first = _extract(model, world, tmp_path)
    assert len(forward_count) == 3  # ceil(37 / 16) batches
    key = feature_cache_key(model, "world-eval", "token", N)
    folder = tmp_path / key
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["block_0.npy", "block_1.npy", "labels.npz", "captions.json", "indices.npy", "meta.json"]
    )
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["fingerprint"] == model.fingerprint and meta["layers"] == ["block_0", "block_1"]
    assert (meta["n"], meta["rows"], meta["pool"], meta["data_key"]) == (N, N, "token", "world-eval")

    for layers in ("all", "last", [0]):
        again = _extract(model, world, tmp_path, layers=layers)
        assert again.from_cache and again.seconds == 0.0
        assert list(again.layers) == [
            f"block_{i}" for i in ([0, 1] if layers == "all" else [1] if layers == "last" else [0])
        ]
        for name in again.layers:
            np.testing.assert_array_equal(again.layers[name], first.layers[name])
        assert again.captions == first.captions
        np.testing.assert_array_equal(again.indices, first.indices)
        for name in first.labels:
            np.testing.assert_array_equal(again.labels[name], first.labels[name])
            assert again.labels[name].dtype == first.labels[name].dtype
    assert len(forward_count) == 3

    # Another pool, size or data key is another cache.
    assert feature_cache_key(model, "world-eval", "avg", N) != key
    assert feature_cache_key(model, "world-eval", "token", N - 1) != key
    assert feature_cache_key(model, "digits-eval", "token", N) != key
    _extract(model, world, tmp_path, pool="avg")
    assert len(forward_count) == 6 and len(list(tmp_path.iterdir())) == 2


def test_asking_for_a_new_layer_reuses_the_cached_ones(model, world, tmp_path, forward_count):
    first = _extract(model, world, tmp_path, layers="0")
    folder = tmp_path / feature_cache_key(model, "world-eval", "token", N)
    # A recognisable stand-in for block_0: if it comes back, the cached layer was read, not recomputed.
    marker = np.full_like(first.layers["block_0"], 7.0)
    np.save(folder / "block_0.npy", marker)
    both = _extract(model, world, tmp_path, layers="all")
    assert not both.from_cache
    np.testing.assert_array_equal(both.layers["block_0"], marker)
    reference = _extract(model, world, None, layers="1")
    np.testing.assert_array_equal(both.layers["block_1"], reference.layers["block_1"])
    assert json.loads((folder / "meta.json").read_text())["layers"] == ["block_0", "block_1"]
    calls = len(forward_count)
    assert _extract(model, world, tmp_path, layers="all").from_cache
    assert len(forward_count) == calls


@pytest.mark.parametrize(
    "damage",
    ["meta_garbage", "meta_other_fingerprint", "layer_truncated", "layer_wrong_shape", "captions_short"],
)
def test_a_corrupt_cache_is_rebuilt_with_a_warning(model, world, tmp_path, caplog, damage):
    first = _extract(model, world, tmp_path)
    folder = tmp_path / feature_cache_key(model, "world-eval", "token", N)
    if damage == "meta_garbage":
        (folder / "meta.json").write_text("{not json")
    elif damage == "meta_other_fingerprint":
        meta = json.loads((folder / "meta.json").read_text())
        (folder / "meta.json").write_text(json.dumps({**meta, "fingerprint": "0" * 16}))
    elif damage == "layer_truncated":
        data = (folder / "block_1.npy").read_bytes()
        (folder / "block_1.npy").write_bytes(data[: len(data) // 2])
    elif damage == "layer_wrong_shape":
        np.save(folder / "block_1.npy", first.layers["block_1"][:-1])
    else:
        (folder / "captions.json").write_text(json.dumps(first.captions[:-1]))
    with caplog.at_level(logging.WARNING, logger="infomug.measure.extract"):
        rebuilt = _extract(model, world, tmp_path)
    assert "ignoring the invalid feature cache" in caplog.text
    assert not rebuilt.from_cache
    for name in first.layers:
        np.testing.assert_array_equal(rebuilt.layers[name], first.layers[name])
    caplog.clear()
    assert _extract(model, world, tmp_path).from_cache
    assert "ignoring" not in caplog.text


def test_a_killed_extraction_leaves_no_cache_that_reads_as_valid(model, world, tmp_path, monkeypatch):
    real_atomic = feature_cache._atomic

    def killed_before_meta(path, write):
        if path.name == feature_cache.META_FILE:
            raise KeyboardInterrupt
        real_atomic(path, write)

    monkeypatch.setattr(feature_cache, "_atomic", killed_before_meta)
    with pytest.raises(KeyboardInterrupt):
        _extract(model, world, tmp_path)
    folder = tmp_path / feature_cache_key(model, "world-eval", "token", N)
    assert (folder / "block_0.npy").is_file() and not (folder / "meta.json").exists()
    assert not list(folder.glob("*.tmp-*"))
    monkeypatch.undo()
    assert not _extract(model, world, tmp_path).from_cache
    assert _extract(model, world, tmp_path).from_cache


class ListData(Dataset):
    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


class StreamData(IterableDataset):
    def __init__(self, samples):
        self.samples = samples

    def __iter__(self):
        return iter(self.samples)


def _samples(count, image_size=4):
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.randn(3, image_size, image_size, generator=generator),
            "caption": f"sample {i}",
            "labels": {"cls": i % 3, "value": i / 2, "odd": i % 2},
        }
        for i in range(count)
    ]


def test_any_module_over_a_stream_and_a_plain_dataset():
    torch.manual_seed(0)
    net = from_module(nn.Sequential(nn.Flatten(), nn.Linear(48, 6), nn.Tanh(), nn.Linear(6, 2)))
    samples = _samples(9)
    stream = extract_features(net, StreamData(samples), layers=["2", "3"], n=50, batch_size=4)
    plain = extract_features(net, ListData(samples), layers=["2", "3"], n=50, batch_size=4)
    assert stream.layers["2"].shape == (9, 6) and stream.layers["3"].shape == (9, 2)  # the stream ended at 9
    np.testing.assert_array_equal(stream.indices, np.arange(9))
    assert stream.labels["cls"].dtype == np.int64 and stream.labels["value"].dtype == np.float64
    np.testing.assert_array_equal(stream.labels["value"], np.arange(9) / 2)
    for name in stream.layers:
        np.testing.assert_array_equal(stream.layers[name], plain.layers[name])
    first_five = extract_features(net, StreamData(samples), layers=["3"], n=5, batch_size=2)
    # Another batch size may take another BLAS kernel (another summation order): float32 rounding only.
    np.testing.assert_allclose(first_five.layers["3"], plain.layers["3"][:5], rtol=1e-5, atol=1e-7)
    assert first_five.captions == [f"sample {i}" for i in range(5)]


def test_bad_requests_and_non_finite_features_are_refused(model, world, tmp_path):
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        _extract(model, world, None, n=1)
    with pytest.raises(ValueError, match="at least 2"):
        _extract(model, ListData(_samples(1, image_size=16)), None)
    with pytest.raises(ValueError, match="at least 2"):
        extract_features(from_module(nn.Sequential(nn.Flatten())), StreamData(_samples(1)), layers=["0"], n=4)
    with pytest.raises(ValueError, match="pool must be one of"):
        _extract(model, world, None, pool="max")
    with pytest.raises(ValueError, match="out of range"):
        _extract(model, world, None, layers="5")
    # Without a data key, features of two datasets would share one cache folder.
    with pytest.raises(ValueError, match="cache_dir needs a data_key"):
        _extract(model, world, tmp_path, data_key="")

    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 3), nn.Linear(3, 2))
    with torch.no_grad():
        net[2].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"layer '2' of broken has non-finite features in 4 of 4"):
        extract_features(from_module(net, "broken"), ListData(_samples(4)), layers=["1", "2"], n=4)
    bad_labels = _samples(3)
    bad_labels[1]["labels"]["cls"] = "three"
    with pytest.raises(ValueError, match="label 'cls' has a non-numeric value"):
        extract_features(from_module(net), ListData(bad_labels), layers=["1"], n=3)


def test_every_rank_reads_the_whole_webdataset_stream_and_keeps_its_own_positions(tmp_path, monkeypatch):
    pixels = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(pixels, format="PNG")
    shards = []
    for shard in range(2):
        with tarfile.open(tmp_path / f"{shard}.tar", "w") as tar:
            for i in range(3):
                for extension, data in (("png", pixels.getvalue()), ("txt", f"s{shard}-{i}".encode())):
                    info = tarfile.TarInfo(f"{i:04d}.{extension}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        shards.append(str(tmp_path / f"{shard}.tar"))
    # As under torchrun: left to itself, the dataset would give rank 1 only the second shard.
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    dataset = WebDatasetShards(shards, shuffle_shards=False, transform=lambda image: torch.zeros(3, 4, 4))
    batches, total = extract._batches(dataset, 5, 2, 0, rank=1, world=2)
    got = [(positions.tolist(), captions) for positions, _, captions, _ in batches]
    assert total is None
    assert got == [([1, 3], ["s0-1", "s1-0"])]
    assert (dataset.rank, dataset.world_size) == (None, None)  # the caller's dataset is not changed


# -- two processes -------------------------------------------------------------------------------------

DIST_N = 21  # uneven: rank 0 encodes 11 images, rank 1 encodes 10


def _dist_worker(rank, world_size, store, checkpoint, cache_dir, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    try:
        model = load_checkpoint(checkpoint)
        dataset = build_dataset(data_config_of(model), "eval")
        options = dict(layers="all", n=DIST_N, batch_size=4, cache_dir=cache_dir, data_key="world-eval")
        features = extract_features(model, dataset, **options)
        again = extract_features(model, dataset, **options)
        stream = StreamData([dataset[i] for i in range(DIST_N + 3)])
        streamed = extract_features(model, stream, layers="all", n=DIST_N, batch_size=4)
        np.savez(
            os.path.join(out_dir, f"rank{rank}.npz"),
            indices=features.indices,
            stream_indices=streamed.indices,
            **{f"stream_{k}": v for k, v in streamed.layers.items()},
            from_cache=np.array([features.from_cache, again.from_cache]),
            captions=np.array(features.captions),
            **{f"layer_{k}": v for k, v in features.layers.items()},
            **{f"label_{k}": v for k, v in features.labels.items()},
        )
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_return_the_single_process_features_on_every_rank(
    model, world, tiny_checkpoint, tmp_path
):
    cache_dir, out_dir = tmp_path / "cache", tmp_path / "out"
    out_dir.mkdir()
    # A file store, like tests/test_dist.py: no free port to race for.
    mp.spawn(
        _dist_worker,
        args=(2, str(tmp_path / "store"), str(tiny_checkpoint), str(cache_dir), str(out_dir)),
        nprocs=2,
        join=True,
    )
    single = extract_features(model, world, layers="all", n=DIST_N, batch_size=4)
    for rank in range(2):
        with np.load(out_dir / f"rank{rank}.npz") as result:
            np.testing.assert_array_equal(result["indices"], np.arange(DIST_N))
            np.testing.assert_array_equal(result["stream_indices"], np.arange(DIST_N))
            assert result["from_cache"].tolist() == [False, True]
            assert result["captions"].tolist() == single.captions
            for name, array in single.layers.items():
                np.testing.assert_allclose(result[f"layer_{name}"], array, rtol=0, atol=FLOAT_TOLERANCE)
                np.testing.assert_allclose(result[f"stream_{name}"], array, rtol=0, atol=FLOAT_TOLERANCE)
            for name, values in single.labels.items():
                np.testing.assert_array_equal(result[f"label_{name}"], values)
    # Rank 0 wrote one cache, which a single process now reads.
    assert len(list(cache_dir.iterdir())) == 1
    cached = extract_features(
        model, world, layers="all", n=DIST_N, batch_size=4, cache_dir=cache_dir, data_key="world-eval"
    )
    assert cached.from_cache
    for name, array in single.layers.items():
        np.testing.assert_allclose(cached.layers[name], array, rtol=0, atol=FLOAT_TOLERANCE)


def test_a_sample_the_data_skips_is_left_out_not_measured_twice():
    from infomug.data.bad_samples import Skipped

    samples = _samples(6)
    # A bad sample of a map-style dataset is a Skipped marker carrying the next good sample's fields.
    data = ListData([*samples[:2], Skipped(samples[3]), *samples[3:]])
    net = from_module(nn.Sequential(nn.Flatten(), nn.Linear(48, 3)))
    features = extract_features(net, data, layers=["1"], n=6, batch_size=2)
    np.testing.assert_array_equal(features.indices, [0, 1, 3, 4, 5])
    assert features.captions == [f"sample {i}" for i in (0, 1, 3, 4, 5)]
    assert features.layers["1"].shape == (5, 3)
    # A batch of markers only is dropped whole.
    only_bad = ListData([samples[0], samples[1], Skipped(samples[0]), Skipped(samples[1])])
    assert extract_features(net, only_bad, layers=["1"], n=4, batch_size=2).n == 2
