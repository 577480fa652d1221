"""The checkpoint folders of a run: names, the ``latest``/``best`` pointers, finding and pruning.

    RUN/checkpoints/step_00000250/    one complete checkpoint (see `infomug.train.checkpoint`)
    RUN/checkpoints/latest            text file naming the newest step folder
    RUN/checkpoints/best              text file naming the best step folder (optional)

Pointers are replaced atomically (temporary file, fsync, ``os.replace``), so a reader never sees half of one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from infomug.dist import is_main_process

logger = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
TRAIN_STATE_FILE = "train_state.pt"
CHECKPOINTS_DIR = "checkpoints"
LATEST = "latest"
BEST = "best"
STEP_DIR = re.compile(r"^step_(\d+)$")
# Everything a killed writer can leave behind (step folders, folders moved aside, pointer temp files)
# carries this marker, so one glob finds it all.
TMP_MARKER = ".tmp-"


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt, of another format, or does not fit the model."""


def step_folder(run_dir: str | Path, step: int) -> Path:
    """``RUN/checkpoints/step_{step:08d}``, the folder a checkpoint of ``step`` is (or will be) saved in."""
    return Path(run_dir) / CHECKPOINTS_DIR / f"step_{step:08d}"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete step folders (both files present) of a run or ``checkpoints/`` folder, by step ascending.

    Temporary folders of writers in progress or killed are left out. Returns ``[]`` for a run with none.
    """
    ckpt_dir = checkpoints_dir(run_dir)
    if not ckpt_dir.is_dir():
        return []
    return [p for p in step_dirs(ckpt_dir) if (p / MODEL_FILE).is_file() and (p / TRAIN_STATE_FILE).is_file()]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The step folder ``latest`` names in a run or ``checkpoints/`` folder; None when the run has none.

    When ``latest`` is missing, unreadable or names a folder that is gone, falls back to the newest
    complete step folder and logs a warning.
    """
    ckpt_dir = checkpoints_dir(run_dir)
    target, problem = follow_pointer(ckpt_dir, LATEST)
    if target is not None:
        return target
    complete = list_checkpoints(ckpt_dir)
    if not complete:
        if problem is not None and (ckpt_dir / LATEST).exists():
            warn(f"{problem}, and no complete step folder is left")
        return None
    warn(f"{problem}; falling back to the newest complete checkpoint, {complete[-1]}")
    return complete[-1]


def best_checkpoint(run_dir: str | Path) -> Path | None:
    """The step folder ``best`` names in a run or ``checkpoints/`` folder; None when none was marked best.

    A ``best`` pointer to a folder that is gone logs a warning and gives None.
    """
    ckpt_dir = checkpoints_dir(run_dir)
    target, problem = follow_pointer(ckpt_dir, BEST)
    if target is None and (ckpt_dir / BEST).exists():
        warn(str(problem))
    return target


def resolve_checkpoint(path: str | Path) -> Path:
    """The step folder meant by ``path``.

    Args:
        path: a step folder, a ``model.safetensors`` / ``train_state.pt`` inside one, a ``checkpoints/``
            folder or a run folder (these two follow ``latest``, see `latest_checkpoint`).

    Returns:
        The step folder (it may still lack files; the loaders say which).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: ``path`` is some other file, or a folder holding no checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if path.is_file():
        if path.name in (MODEL_FILE, TRAIN_STATE_FILE):
            return path.parent
        raise CheckpointError(
            f"{path} is not a checkpoint: give a step folder, its {MODEL_FILE}, a {CHECKPOINTS_DIR}/ folder "
            "or a run folder"
        )
    if (path / MODEL_FILE).exists() or STEP_DIR.match(path.name):
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise CheckpointError(f"no checkpoint in {path}")
    return found


def checkpoints_dir(path: str | Path) -> Path:
    path = Path(path)
    if (path / CHECKPOINTS_DIR).is_dir():
        return path / CHECKPOINTS_DIR
    if path.name == CHECKPOINTS_DIR or (path / LATEST).is_file():
        return path
    return path / CHECKPOINTS_DIR


def step_dirs(ckpt_dir: Path) -> list[Path]:
    """Every ``step_N`` folder (complete or not), by step ascending."""
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def read_pointer(ckpt_dir: Path, pointer: str) -> str | None:
    try:
        name = (ckpt_dir / pointer).read_text().strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return name if STEP_DIR.match(name) else None


def follow_pointer(ckpt_dir: Path, pointer: str) -> tuple[Path | None, str | None]:
    """The step folder a pointer names, or None and why not."""
    file = ckpt_dir / pointer
    if not file.exists():
        return None, f"{file} does not exist"
    name = read_pointer(ckpt_dir, pointer)
    if name is None:
        return None, f"{file} does not hold a step folder name"
    if not (ckpt_dir / name).is_dir():
        return None, f"{file} names {name}, which is missing"
    return ckpt_dir / name, None


def write_pointer(ckpt_dir: Path, pointer: str, name: str) -> None:
    tmp = ckpt_dir / f"{pointer}{TMP_MARKER}{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, ckpt_dir / pointer)
    fsync_dir(ckpt_dir)


def prune(ckpt_dir: Path, keep_last: int) -> None:
    for leftover in ckpt_dir.glob(f"*{TMP_MARKER}*"):
        remove(leftover)
    steps = step_dirs(ckpt_dir)
    keep = {p.name for p in steps[-keep_last:]}
    keep.update(name for pointer in (LATEST, BEST) if (name := read_pointer(ckpt_dir, pointer)))
    for folder in steps:
        if folder.name not in keep:
            remove(folder)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    # Makes a rename durable; directories cannot be opened for fsync on Windows.
    if os.name == "posix":
        fsync_file(path)


def warn(message: str) -> None:
    if is_main_process():
        logger.warning(message)
