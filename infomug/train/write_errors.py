"""Failed writes told as the path and the cause (read-only, no space left, permission), not a traceback.

torch and safetensors do not raise an `OSError` on a full disk: ``torch.save`` reports "unexpected pos
344000 vs 343892" (its zip writer checks how far it got, not why) and safetensors "I/O error: No space
left on device (os error 28)". `as_os_error` turns these into OSErrors carrying the errno and the file,
so that one message (`describe_write_error`) serves every failed write.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

CAUSES = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error (a failing disk or a lost network mount)",
}
_OS_ERROR_NUMBER = re.compile(r"\(os error (\d+)\)")
_TORCH_SHORT_WRITE = ("unexpected pos", "PytorchStreamWriter failed writing")


def as_os_error(error: BaseException, path: str | Path) -> BaseException:
    """``error`` as an `OSError` naming ``path`` when it is a failed write; else ``error`` itself.

    Args:
        error: what writing ``path`` raised: an OSError, torch's RuntimeError of a short write, or a
            SafetensorError quoting an OS error number.
        path: the file being written.
    """
    if isinstance(error, OSError):
        if error.filename is None and error.errno is not None:  # without an errno, str() shows only args
            error.filename = str(path)
        return error
    message = str(error).strip()
    found = _OS_ERROR_NUMBER.search(message)
    if found:
        number = int(found.group(1))
    elif isinstance(error, RuntimeError) and any(text in message for text in _TORCH_SHORT_WRITE):
        number = errno.ENOSPC  # a short write: a full disk or an exceeded quota
    else:
        return error
    return OSError(number, f"{os.strerror(number)} ({message})", str(path))


def describe_write_error(error: OSError, run_dir: str | Path) -> str:
    """``"cannot write PATH: CAUSE"`` (``"cannot access"`` for a path outside ``run_dir``)."""
    cause = CAUSES.get(error.errno) or error.strerror or str(error)
    if error.errno == errno.ENOSPC and error.strerror and "(" in error.strerror:
        cause += f" {error.strerror[error.strerror.index('(') :]}"  # what torch or safetensors said
    path = Path(error.filename) if error.filename is not None else Path(run_dir)
    try:
        inside = path.resolve().is_relative_to(Path(run_dir).resolve())
    except OSError:
        inside = False
    return f"cannot {'write' if inside else 'access'} {path}: {cause}"
