"""``StateDirLock``: one owner per state dir, told by pid; a dead owner never leaves it locked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actoros.kernel.state_lock import StateDirBusy, StateDirLock

pytestmark = pytest.mark.timeout(20)


def test_a_second_lock_of_a_state_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with StateDirLock(state) as first:
        assert first.held and (state / "lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(StateDirBusy) as caught:
            StateDirLock(state).acquire()
        assert (caught.value.pid, caught.value.state_dir) == (os.getpid(), state)
        assert str(caught.value) == (
            f"the state dir {state} is in use by another actoros run (pid {os.getpid()})"
        )
    with StateDirLock(state) as again:  # released: free for the next owner
        assert again.held
    StateDirLock(tmp_path / "other").acquire()  # another dir is another lock


def test_a_lock_held_by_a_process_killed_with_sigkill_is_free_at_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from actoros.kernel.state_lock import StateDirLock
            StateDirLock({str(state)!r}).acquire()
            print("locked", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StateDirBusy) as caught:
            StateDirLock(state).acquire()
        assert caught.value.pid == holder.pid
        os.kill(holder.pid, signal.SIGKILL)  # no cleanup runs: the kernel drops the lock
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with StateDirLock(state) as lock:
        assert lock.held


def test_a_forked_child_does_not_keep_its_parents_lock(tmp_path: Path) -> None:
    """An engine process forked by the holder must not hold the state dir after the holder
    let go of it (or died)."""
    state = tmp_path / "state"
    lock = StateDirLock(state)
    lock.acquire()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: say it runs, then wait to be told to end
        os.write(ready_w, b"x")
        os.read(go_r, 1)
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"x"
        lock.release()
        with StateDirLock(state) as again:  # the child still runs, and holds nothing
            assert again.held
    finally:
        os.write(go_w, b"x")
        os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
