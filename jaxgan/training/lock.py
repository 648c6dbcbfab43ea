"""One training run per workdir: an exclusive lock on `<workdir>/.lock`.

Two runs on one workdir would both train, write duplicate metrics lines, and race each other's
saves, restores and clean-ups. The lock is `fcntl.flock` on a lock file, not "a file that
exists": the kernel drops a flock when its process ends however it ends (exit, crash, SIGKILL,
power loss on a local disk), so a lock can never be left stale, and no pid has to be checked for
liveness (pids are reused; a pid on another host cannot be checked at all). The file records who
holds it (pid, host, start time) only to name that run in the refusal; a file left behind by a
finished run is not locked, and the next run simply takes it.
"""
from __future__ import annotations

import datetime
import os
import socket

from jaxgan.errors import UserError
from jaxgan.fileio import printable

LOCK_NAME = ".lock"


class WorkdirLock:
    """`with WorkdirLock(workdir):` holds the workdir for this process, or raises UserError
    naming the run that holds it. Where the file system has no flock (some network file
    systems), the run goes on unlocked rather than not at all."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK_NAME)
        self._fd = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # Windows: no flock
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise UserError(f"workdir {printable(os.path.dirname(self.path))} is in use by "
                                f"another training run ({holder}); wait for it to finish or stop "
                                "it, or use another --workdir") from None
            except OSError:  # no flock on this file system
                os.close(fd)
                return self
            # A run that failed before writing anything removes the file while it holds the
            # lock (loop.SetUp): a lock taken on a file no longer at the path is no
            # lock, so take the one there now.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}, started {started}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.close(self._fd)  # releases the flock; the file stays (it is not a lock by itself)
            self._fd = None


def _same_file(fd: int, path: str) -> bool:
    try:
        held, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def _read(fd: int) -> str:
    try:
        text = os.pread(fd, 400, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return printable(text) or "holder unknown"
