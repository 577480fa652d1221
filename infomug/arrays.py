"""Load arrays a user saved (``.npy``, ``.npz``, ``.csv``/``.tsv``) for the command line.

A spec is ``PATH`` or ``PATH:SELECTOR``: for ``.npz`` the selector is a key; for text tables it is a
comma-separated list of column names (from a header row) or 0-based column numbers.
"""

from __future__ import annotations

import contextlib
import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None}
SUFFIXES = (".npy", ".npz", *TEXT_SUFFIXES)
# How each binary format begins: a .npy header, a zip archive (.npz), a pickle (protocol 2 and later).
MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}
PICKLE_MAGIC = b"\x80"
PICKLED = "holds pickled Python objects; infomug never unpickles files, save a numeric array"


def split_spec(spec: str) -> tuple[Path, str | None]:
    """Split ``PATH[:SELECTOR]`` (a colon inside an existing path, e.g. a drive letter, is kept)."""
    if Path(spec).exists() or ":" not in spec:
        return Path(spec), None
    path, selector = spec.rsplit(":", 1)
    return Path(path), selector or None


def load_array(spec: str) -> np.ndarray:
    """Load the array named by ``spec`` as a numeric ``[N]`` or ``[N, d]`` numpy array.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: for an unsupported suffix, an empty, truncated or foreign binary file, pickled
            objects, a missing or ambiguous npz key, unknown columns, or non-numeric cells.
    """
    path, selector = split_spec(spec)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file")
    suffix = path.suffix.lower()
    if suffix in MAGIC:
        if suffix == ".npy" and selector is not None:
            raise ValueError(f"{path}: a .npy file holds one array; drop ':{selector}'")
        _check_binary_start(path, suffix)
        if suffix == ".npz":
            return _load_npz(path, selector)
        with _read_errors(path, suffix):
            return np.load(path, allow_pickle=False)
    if suffix in TEXT_SUFFIXES:
        return _load_table(path, selector, TEXT_SUFFIXES[suffix])
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")


def _check_binary_start(path: Path, suffix: str) -> None:
    """Refuse an empty file, or one that does not begin as ``suffix`` files do, before numpy reads it.

    numpy raises EOFError for an empty file and, for anything without its header, tries to unpickle.
    """
    with path.open("rb") as handle:
        start = handle.read(len(MAGIC[suffix]))
    if not start:
        raise ValueError(f"{path} is empty (0 bytes): it holds no array")
    if start.startswith(PICKLE_MAGIC):
        raise ValueError(f"{path} {PICKLED}")
    if start != MAGIC[suffix]:
        raise ValueError(
            f"{path} is not a {suffix} file (it does not begin with the {suffix} header); it may be damaged"
            " or in another format"
        )


@contextlib.contextmanager
def _read_errors(path: Path, suffix: str) -> Iterator[None]:
    """Turn numpy's errors for a damaged or pickled file into a ValueError that names the file."""
    try:
        yield
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(f"{path} {PICKLED}") from None
        raise ValueError(f"{path} is damaged or truncated (cannot read it as {suffix}: {error})") from None
    except (EOFError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is damaged or truncated (cannot read it as {suffix}: {error})") from None


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    with _read_errors(path, ".npz"):
        archive = np.load(path, allow_pickle=False)
    with archive:
        keys = list(archive.keys())
        if key is None:
            if len(keys) != 1:
                raise ValueError(f"{path} holds arrays {keys}; choose one as {path}:KEY")
            key = keys[0]
        if key not in keys:
            raise ValueError(f"{path} has no array {key!r}; it holds {keys}")
        with _read_errors(path, ".npz"):
            return archive[key]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_table(path: Path, selector: str | None, delimiter: str | None) -> np.ndarray:
    with path.open(newline="") as handle:
        if delimiter is None:
            rows = [line.split() for line in handle if line.strip()]
        else:
            rows = [row for row in csv.reader(handle, delimiter=delimiter) if row]
    if not rows:
        raise ValueError(f"{path} is empty")
    header = None if all(_is_number(cell) for cell in rows[0]) else [cell.strip() for cell in rows[0]]
    body = rows[1:] if header is not None else rows
    width = len(rows[0])
    columns = _select_columns(path, selector, header, width)
    values = np.empty((len(body), len(columns)), dtype=np.float64)
    for line, row in enumerate(body, start=2 if header is not None else 1):
        if len(row) != width:
            raise ValueError(f"{path} line {line}: {len(row)} cells, expected {width}")
        for out, column in enumerate(columns):
            cell = row[column].strip()
            try:
                values[line - (2 if header is not None else 1), out] = float(cell)
            except ValueError:
                name = header[column] if header is not None else column
                raise ValueError(f"{path} line {line}, column {name!r}: {cell!r} is not a number") from None
    return values


def _select_columns(path: Path, selector: str | None, header: list[str] | None, width: int) -> list[int]:
    if selector is None:
        return list(range(width))
    columns = []
    for name in (part.strip() for part in selector.split(",")):
        if header is not None and name in header:
            columns.append(header.index(name))
        elif name.isdigit() and int(name) < width:
            columns.append(int(name))
        else:
            known = f"columns {header}" if header is not None else f"{width} unnamed columns"
            raise ValueError(f"{path} has no column {name!r}; it has {known}")
    return columns
