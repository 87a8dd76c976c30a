"""One process owns a state dir: an OS file lock taken before any of its SQLite files opens.

Two systems writing the same journal would run every task twice and corrupt each other's
bookkeeping (``database is locked``, ``UNIQUE constraint failed``). ``StateDirLock`` takes an
exclusive ``flock`` on ``<state_dir>/lock`` and writes the holder's pid into it, so a second
process is told who holds the dir (``StateDirBusy``). The kernel drops the lock when the holder
ends, however it ends (``kill -9`` included): a stale lock cannot outlive its process, and the
lock file itself is left in place on purpose (removing it would let a third process lock a new
file while a second still waits on the old one).

A forked child (vLLM's engine processes may be forked) would share the lock and keep it after
its parent died; each child closes its copy at fork, and exec'd children never get one (the
descriptor is close-on-exec). Within one process the lock is per ``StateDirLock``: a second
acquire of the same dir from the same process is refused too.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_FILE", "StateDirBusy", "StateDirLock"]

LOCK_FILE = "lock"

# Descriptors of the locks this process holds: a forked child closes its copies at once.
_held: set[int] = set()


def _close_in_child() -> None:
    for fd in _held:
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


class StateDirBusy(Exception):
    """Another process holds the state dir; ``pid`` is its process id (``None``: unknown)."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.state_dir = state_dir
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "a process whose pid it did not record"
        super().__init__(f"the state dir {state_dir} is in use by another actoros run ({holder})")


class StateDirLock:
    """The exclusive lock of one state dir; ``acquire`` it before opening anything in it."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None and self._fd in _held

    def acquire(self) -> None:
        """Take the lock now or raise ``StateDirBusy`` (never waits). Creates the dir."""
        if self.held:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise StateDirBusy(self.state_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        _held.add(fd)

    def release(self) -> None:
        """Give the lock up (closing the descriptor releases it); safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None and fd in _held:
            _held.discard(fd)
            os.close(fd)

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
