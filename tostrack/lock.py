"""One run at a time per workspace: cron may start a run while the last one is still going."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tostrack.errors import LockedError


@contextmanager
def workspace_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on path; raise LockedError at once if another process has it.

    flock is released by the kernel when the holder dies, so a crashed run never leaves a
    stale lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise LockedError(
                f"another tostrack run (pid {holder}) is using {path.parent}; this run did nothing."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
