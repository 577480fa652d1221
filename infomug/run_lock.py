"""One writer per folder: a lock file that names the process writing there.

    with FolderLock(run_dir, "infomug train"):
        ...  # a second `FolderLock(run_dir, ...)` anywhere raises FolderInUse, naming this process

The lock is an ``fcntl.flock`` on ``FOLDER/.infomug.lock``, which also holds the holder's PID, host,
command and start time for the message a second writer gets. The kernel drops a flock when its holder
exits, however it exits (``kill -9`` included), so a lock file left behind by a dead process is free: the
next writer takes it over and logs that it did. On a file system without flock (some network file
systems) the record alone decides: a holder on this host that is no longer running is stale, one on
another host is taken as alive. The file is removed on release, while it is still locked.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # not POSIX: the record alone decides
    fcntl = None

logger = logging.getLogger(__name__)

LOCK_FILE = ".infomug.lock"
# What flock raises where the file system does not implement it.
_NO_FLOCK = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


class FolderInUse(RuntimeError):
    """Another process holds the folder's lock.

    Attributes:
        folder: the locked folder.
        holder: the holder's record (``pid``, ``host``, ``command``, ``since``); empty if unreadable.
    """

    def __init__(self, folder: Path, holder: dict, lock_file: Path) -> None:
        self.folder, self.holder = folder, holder
        if holder:
            who = (
                f"{holder.get('command', 'another process')} (PID {holder.get('pid', '?')} on host"
                f" {holder.get('host', '?')}, since {holder.get('since', '?')})"
            )
        else:
            who = "another process (its record is not written yet)"
        super().__init__(
            f"{folder} is in use by {who}; lock file {lock_file}. Wait for it to finish or stop it, or"
            " choose another folder"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _read_record(fd: int) -> dict:
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


class FolderLock:
    """A context manager holding ``folder``'s lock (the folder is created); see the module docstring.

    Args:
        folder: the folder a run, sweep or cache writes into.
        command: what holds it, for the message a second writer gets (``"infomug train"``).

    Raises:
        FolderInUse: on entering, when a live process holds the lock.
        OSError: when the lock file cannot be written (a read-only folder, a full disk).
    """

    def __init__(self, folder: str | Path, command: str) -> None:
        self.folder, self.command = Path(folder), command
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if self._take(fd):
                    self._fd = fd
            finally:
                if self._fd is None:
                    os.close(fd)
        return self

    def _take(self, fd: int) -> bool:
        """Lock ``fd`` and write this process's record; False when the file was replaced meanwhile."""
        flocked = fcntl is not None
        if flocked:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderInUse(self.folder, _read_record(fd), self.path) from None
            except OSError as error:
                if error.errno not in _NO_FLOCK:
                    raise
                flocked = False
                logger.warning("%s: the file system has no flock; the lock relies on its record", self.path)
        try:
            # The holder removes the file on release: the inode opened may be an orphan by now.
            if os.stat(self.path).st_ino != os.fstat(fd).st_ino:
                return False
        except FileNotFoundError:
            return False
        record = _read_record(fd)
        if record:
            host, pid = record.get("host"), record.get("pid")
            if not flocked and (host != socket.gethostname() or (isinstance(pid, int) and _alive(pid))):
                raise FolderInUse(self.folder, record, self.path)
            logger.warning(
                "%s: recovered the stale lock of %s (PID %s on host %s, since %s), which exited without"
                " releasing it",
                self.folder,
                record.get("command", "a process"),
                pid,
                host,
                record.get("since", "?"),
            )
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(mine) + "\n").encode("utf-8"), 0)
        return True

    def release(self) -> None:
        """Remove the lock file and drop the lock (a no-op when not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # still locked: no one takes the file between the two
        finally:
            os.close(self._fd)  # drops the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
