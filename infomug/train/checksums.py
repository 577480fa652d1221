"""SHA-256 of every file of a checkpoint, so that damaged bytes are found when it is loaded.

    RUN/checkpoints/step_00000250/checksums.json   {"algorithm": "sha256", "files": {name: hex digest}}

`infomug.train.checkpoint.save_checkpoint` writes the manifest last, inside the temporary step folder, so
a complete step folder always has one. The loaders check each file against it before reading it: a
mismatch is a `CheckpointError` naming the file ("corrupt: checksum mismatch"). A checkpoint written
before manifests were kept loads with a note that it is not verified. Resuming a run folder whose latest
checkpoint is damaged falls back to the newest intact one (`newest_intact_checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from .checkpoint_folders import STEP_DIR, CheckpointError, fsync_file, list_checkpoints, warn

logger = logging.getLogger(__name__)

CHECKSUMS_FILE = "checksums.json"
ALGORITHM = "sha256"
_CHUNK = 1 << 20
# Said once per process: `infomug train` looks for the checkpoint to resume twice (its config, then its
# weights).
_noted: set[Path] = set()  # folders without a manifest
_fallbacks_warned: set[tuple[Path, Path]] = set()
# Files found intact, with the (size, mtime) they had: a resume checks the latest checkpoint whole, then
# reads its weights and train state, and a GB-sized file should not be hashed twice for it.
_verified: dict[Path, tuple[int, int, str]] = {}


def file_sha256(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes, as 64 hex characters."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder: Path, names: Iterable[str]) -> None:
    """Write ``folder/checksums.json`` with the SHA-256 of each named file of ``folder`` (fsynced)."""
    manifest = {"algorithm": ALGORITHM, "files": {name: file_sha256(folder / name) for name in names}}
    path = folder / CHECKSUMS_FILE
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    fsync_file(path)


def read_checksums(folder: Path) -> dict[str, str] | None:
    """File name -> SHA-256 from ``folder``'s manifest; None when it has none (an older checkpoint).

    Raises:
        CheckpointError: the manifest is unreadable.
    """
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        if manifest["algorithm"] != ALGORITHM or not isinstance(files, dict):
            raise ValueError(f"not a {ALGORITHM} manifest")
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from error
    return {str(name): str(digest) for name, digest in files.items()}


def verify_file(folder: Path, name: str) -> None:
    """Check ``folder/name`` against the manifest (a file it does not list is not checked).

    Raises:
        CheckpointError: the file's SHA-256 differs from the manifest's, or the manifest is unreadable.
    """
    expected = read_checksums(folder)
    if expected is None:
        if folder not in _noted:
            _noted.add(folder)
            logger.info(
                "%s has no %s (an older checkpoint): its files are not verified", folder, CHECKSUMS_FILE
            )
        return
    if name not in expected:
        return
    path = folder / name
    stat = path.stat()
    seen = (stat.st_size, stat.st_mtime_ns, expected[name])
    if _verified.get(path.resolve()) == seen:
        return
    actual = file_sha256(path)
    if actual == expected[name]:
        _verified[path.resolve()] = seen
    else:
        raise CheckpointError(
            f"{folder / name} is corrupt: checksum mismatch (SHA-256 {actual[:16]}..., {CHECKSUMS_FILE}"
            f" records {expected[name][:16]}...): its bytes changed after it was written"
        )


def checkpoint_damage(folder: Path) -> str | None:
    """Why ``folder`` is not intact (a file missing or not matching its manifest), or None."""
    try:
        expected = read_checksums(folder)
        for name in expected or {}:
            if not (folder / name).is_file():
                return f"{folder / name} is missing"
            verify_file(folder, name)
    except (CheckpointError, OSError) as error:
        return str(error)
    return None


def newest_intact_checkpoint(run_dir: Path, latest: Path) -> Path:
    """``latest`` if it is intact, else the newest intact complete step folder before it (with a warning).

    Raises:
        CheckpointError: no intact checkpoint is left (naming each damaged file).
    """

    def step(folder: Path) -> int:
        return int(STEP_DIR.match(folder.name).group(1))

    earlier = [folder for folder in reversed(list_checkpoints(run_dir)) if step(folder) < step(latest)]
    problems = []
    for folder in [latest, *earlier]:
        problem = checkpoint_damage(folder)
        if problem is None:
            if problems and (latest, folder) not in _fallbacks_warned:
                _fallbacks_warned.add((latest, folder))
                warn(f"{problems[0]}; resuming from the previous intact checkpoint, {folder}")
            return folder
        problems.append(problem)
    raise CheckpointError(f"no intact checkpoint in {run_dir}: {'; '.join(problems)}")
