"""Load arrays a user saved (``.npy``, ``.npz``, ``.csv``/``.tsv``) for the command line.

A spec is ``PATH`` or ``PATH:SELECTOR``: for ``.npz`` the selector is a key; for text tables it is a
comma-separated list of column names (from a header row) or 0-based column numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": None}
SUFFIXES = (".npy", ".npz", *TEXT_SUFFIXES)


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
        ValueError: for an unsupported suffix, a missing or ambiguous npz key, unknown columns,
            or non-numeric cells.
    """
    path, selector = split_spec(spec)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            if selector is not None:
                raise ValueError(f"{path}: a .npy file holds one array; drop ':{selector}'")
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            return _load_npz(path, selector)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(
                f"{path} holds pickled Python objects; infomug never unpickles files, save a numeric array"
            ) from None
        raise
    if suffix in TEXT_SUFFIXES:
        return _load_table(path, selector, TEXT_SUFFIXES[suffix])
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.keys())
        if key is None:
            if len(keys) != 1:
                raise ValueError(f"{path} holds arrays {keys}; choose one as {path}:KEY")
            key = keys[0]
        if key not in keys:
            raise ValueError(f"{path} has no array {key!r}; it holds {keys}")
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
