"""The feature cache of `infomug.measure.extract`: one folder per (weights, data, pool, N)::

    CACHE/<key>/<layer>.npy      [N, D] float32 per tapped layer
    CACHE/<key>/<layer>.grid.npy [N, T, D] float32 token grid, for the layers decoders read
    CACHE/<key>/images.npy       [N, C, H, W] uint8 images (round(255 x)), when decoders read them
    CACHE/<key>/labels.npz       {label: [N]}
    CACHE/<key>/captions.json    [N] strings
    CACHE/<key>/indices.npy      [N] int64 dataset indices (or stream positions)
    CACHE/<key>/meta.json        what the folder holds; written last, atomically

A folder is valid only through its ``meta.json``, which is replaced atomically after everything it lists,
so a killed extraction leaves a folder that is either valid or read as absent. Each file is written aside
and renamed (`_atomic`); two writers of one key write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .sources import LoadedModel

logger = logging.getLogger(__name__)

# 2: images kept as the pixels the data holds (un-normalised), no longer clipped normalised values.
CACHE_VERSION = 2
IMAGES_FILE = "images.npy"
META_FILE = "meta.json"
LABELS_FILE = "labels.npz"
CAPTIONS_FILE = "captions.json"
INDICES_FILE = "indices.npy"


@dataclass
class FeaturePass:
    """What one pass over the data produced (full and index-ordered after the gather), or a cache holds."""

    layers: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    captions: list[str]
    indices: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    grids: dict[str, np.ndarray] = field(default_factory=dict)
    images: np.ndarray | None = None


def feature_cache_key(model: LoadedModel, data_key: str, pool: str, n: int) -> str:
    """16 hex characters naming the cache folder of ``model``'s features on ``n`` samples of the data.

    Args:
        model: The model (its ``fingerprint`` identifies the weights).
        data_key: Identifies the data and split (the caller's JSON dump of the `DataConfig` + split).
        pool: ``"token"`` or ``"avg"``.
        n: Samples extracted: ``min(n, len(dataset))`` for map-style data, the asked ``n`` for streams.
    """
    payload = json.dumps(cache_identity(model, data_key, pool, n), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_identity(model: LoadedModel, data_key: str, pool: str, n: int) -> dict[str, Any]:
    """What a cache folder's ``meta.json`` must say to serve ``model`` on these samples."""
    return {
        "version": CACHE_VERSION,
        "fingerprint": model.fingerprint,
        "data_key": data_key,
        "pool": pool,
        "n": n,
    }


def _layer_file(name: str) -> str:
    return re.sub(r"[^\w.\-]", "_", name) + ".npy"


def _grid_file(name: str) -> str:
    return re.sub(r"[^\w.\-]", "_", name) + ".grid.npy"


def read_cache(folder: Path, expected: dict[str, Any], names: Sequence[str]) -> FeaturePass | None:
    """The valid cache in ``folder`` with the asked layers it holds; None if absent or invalid (logged)."""
    if not (folder / META_FILE).is_file():
        return None
    try:
        meta = json.loads((folder / META_FILE).read_text())
        if not isinstance(meta, dict):
            raise ValueError("meta.json is not an object")
        for key, value in expected.items():
            if meta.get(key) != value:
                raise ValueError(f"its {key} is {meta.get(key)!r}, not {value!r}")
        rows, dims, listed = int(meta["rows"]), meta["dims"], list(meta["layers"])
        indices = np.load(folder / INDICES_FILE, allow_pickle=False)
        _check_array(INDICES_FILE, indices, (rows,), np.int64)
        captions = json.loads((folder / CAPTIONS_FILE).read_text())
        if not isinstance(captions, list) or len(captions) != rows:
            raise ValueError(f"{CAPTIONS_FILE} does not hold {rows} captions")
        with np.load(folder / LABELS_FILE, allow_pickle=False) as stored:
            labels = {key: stored[key] for key in stored.files}
        for key, array in labels.items():
            _check_array(f"label {key}", array, (rows,), None)
        layers = {}
        for name in names:
            if name in listed:
                array = np.load(folder / _layer_file(name), allow_pickle=False)
                _check_array(f"layer {name}", array, (rows, int(dims[name])), np.float32)
                layers[name] = array
        grids = {}
        for name, shape in meta.get("grids", {}).items():
            if name in names:
                array = np.load(folder / _grid_file(name), allow_pickle=False)
                _check_array(f"grid {name}", array, (rows, *shape), np.float32)
                grids[name] = array
        images = None
        if meta.get("images") is not None:
            images = np.load(folder / IMAGES_FILE, allow_pickle=False)
            _check_array("images", images, (rows, *meta["images"]), np.uint8)
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        logger.warning("ignoring the invalid feature cache %s (%s); rebuilding it", folder, error)
        return None
    return FeaturePass(
        meta=meta,
        layers=layers,
        labels=labels,
        captions=captions,
        indices=indices,
        grids=grids,
        images=images,
    )


def _check_array(what: str, array: np.ndarray, shape: tuple[int, ...], dtype: Any) -> None:
    if array.shape != shape or (dtype is not None and array.dtype != dtype):
        raise ValueError(f"{what} is {array.dtype}{list(array.shape)}, expected {list(shape)}")


def write_cache(folder: Path, meta: dict[str, Any], cache: FeaturePass | None, computed: FeaturePass) -> None:
    """Add ``computed``'s layers to ``folder`` (starting it afresh unless ``cache`` is its valid content)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if cache is None:
            # Until the new meta lands, the folder reads as absent.
            (folder / META_FILE).unlink(missing_ok=True)
            _atomic(folder / INDICES_FILE, lambda f: np.save(f, computed.indices))
            _atomic(folder / LABELS_FILE, lambda f: np.savez(f, **computed.labels))
            _atomic(folder / CAPTIONS_FILE, lambda f: f.write(json.dumps(computed.captions).encode()))
        for name, array in computed.layers.items():
            _atomic(folder / _layer_file(name), lambda f, a=array: np.save(f, a))
        for name, array in computed.grids.items():
            _atomic(folder / _grid_file(name), lambda f, a=array: np.save(f, a))
        if computed.images is not None:
            _atomic(folder / IMAGES_FILE, lambda f: np.save(f, computed.images))
        listed = [] if cache is None else list(cache.meta["layers"])
        dims = {} if cache is None else dict(cache.meta["dims"])
        grids = {} if cache is None else dict(cache.meta.get("grids", {}))
        images = None if cache is None else cache.meta.get("images")
        listed += [name for name in computed.layers if name not in listed]
        dims.update({name: int(array.shape[1]) for name, array in computed.layers.items()})
        grids.update({name: list(array.shape[1:]) for name, array in computed.grids.items()})
        if computed.images is not None:
            images = list(computed.images.shape[1:])
        meta = {
            **meta,
            "rows": int(computed.indices.shape[0]),
            "layers": listed,
            "dims": dims,
            "grids": grids,
            "images": images,
        }
        _atomic(folder / META_FILE, lambda f: f.write(json.dumps(meta, indent=1).encode()))
    except OSError as error:
        logger.warning("could not write the feature cache %s: %s", folder, error)


def _atomic(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
