"""One way to write a file that others may read at any moment: aside, then renamed.

Each write goes to a temporary file of its own (``mkstemp``) beside the target, then ``os.replace``: a
reader sees the old file or the whole new one, a killed writer leaves no half file, and two writers (the
shard processes of a sweep, say) never rename each other's half file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path``, creating its folder.

    Returns:
        ``path``.

    Raises:
        OSError: if the folder or file cannot be written (no temporary file is left behind).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
