"""The scheduler: queueing policies, worker pool, failures, the journal and SIGKILL-resume."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from actoros import Actor, ActorSystem, Context
from actoros.kernel.scheduler import (
    Forget,
    Scheduler,
    SchedulerStats,
    Stats,
    Submit,
    SubmitAndWait,
    Task,
    TaskQueue,
    TaskResult,
)

pytestmark = pytest.mark.timeout(5)


async def double(task: Task) -> int:
    return task.payload["x"] * 2


async def boom(task: Task) -> None:
    raise ValueError(f"bad {task.payload['x']}")


def test_task_queue_fifo_and_priority_orders():
    fifo, prio = TaskQueue("fifo"), TaskQueue("priority")
    for i, p in enumerate([3, 1, 2, 1]):
        fifo.push(Task(kind="k", id=str(i), priority=p))
        prio.push(Task(kind="k", id=str(i), priority=p))
    assert [fifo.pop().id for _ in range(4)] == ["0", "1", "2", "3"]
    assert [prio.pop().id for _ in range(4)] == ["1", "3", "2", "0"]
    with pytest.raises(ValueError):
        TaskQueue("lifo")  # type: ignore[arg-type]


async def test_submit_and_wait_returns_result(system: ActorSystem):
    sched = await system.spawn(Scheduler, {"double": double}, name="sched")
    res = await sched.ask(SubmitAndWait(task=Task(kind="double", payload={"x": 21})))
    assert res.status == "done" and res.result == 42 and res.error is None


async def test_submit_returns_id_and_notifies_the_submitting_actor(system: ActorSystem):
    sched = await system.spawn(Scheduler, {"double": double}, name="sched")
    got: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()

    class Client(Actor):
        async def receive(self, message, ctx):
            if isinstance(message, TaskResult):
                got.set_result(message)
                return None
            return await sched.ask(Submit(task=message, notify=True))

    client = await system.spawn(Client, name="client")
    task_id = await client.ask(Task(kind="double", payload={"x": 5}, id="abc"))
    assert task_id == "abc"
    assert await got == TaskResult(id="abc", status="done", result=10)


async def test_failing_handler_gives_failed_result_and_worker_restarts(system: ActorSystem):
    sched = await system.spawn(Scheduler, {"boom": boom, "double": double}, workers=1)
    failed = await sched.ask(SubmitAndWait(task=Task(kind="boom", payload={"x": 1}, id="f")))
    assert failed.status == "failed" and "ValueError: bad 1" in failed.error
    ok = await sched.ask(SubmitAndWait(task=Task(kind="double", payload={"x": 2})))
    assert ok.result == 4
    stats = await sched.ask(Stats())
    assert stats == SchedulerStats(queued=0, running=0, done=1, failed=1, workers=1, idle_workers=1)


async def test_unknown_kind_fails_without_running(system: ActorSystem):
    sched = await system.spawn(Scheduler, {"double": double})
    res = await sched.ask(SubmitAndWait(task=Task(kind="nope")))
    assert res.status == "failed" and "no handler for task kind 'nope'" in res.error


async def test_priority_policy_runs_lower_value_first(system: ActorSystem):
    order: list[str] = []
    gate, blocked = asyncio.Event(), asyncio.Event()

    async def record(task: Task) -> None:
        if task.id == "block":
            blocked.set()
            await gate.wait()
        order.append(task.id)

    sched = await system.spawn(Scheduler, {"r": record}, workers=1, policy="priority")
    first = asyncio.ensure_future(sched.ask(SubmitAndWait(task=Task(kind="r", id="block"))))
    await blocked.wait()  # the only worker is busy: the next three wait in the queue
    for tid, prio in [("c", 5), ("a", 1), ("b", 3)]:
        await sched.ask(Submit(task=Task(kind="r", id=tid, priority=prio)))
    gate.set()
    await first
    await sched.ask(SubmitAndWait(task=Task(kind="r", id="z", priority=9)))
    assert order == ["block", "a", "b", "c", "z"]


async def test_pool_runs_tasks_concurrently(system: ActorSystem):
    started = 0
    all_in = asyncio.Event()

    async def meet(task: Task) -> None:
        nonlocal started
        started += 1
        if started == 3:
            all_in.set()
        await all_in.wait()  # only returns if three handlers run at the same time

    sched = await system.spawn(Scheduler, {"m": meet}, workers=3)
    results = await asyncio.gather(
        *(sched.ask(SubmitAndWait(task=Task(kind="m"))) for _ in range(3))
    )
    assert [r.status for r in results] == ["done"] * 3


async def test_finished_id_is_answered_from_journal_without_rerun(tmp_path: Path):
    runs = 0

    async def count(task: Task) -> int:
        nonlocal runs
        runs += 1
        return runs

    db = str(tmp_path / "tasks.db")
    async with ActorSystem("a") as system:
        sched = await system.spawn(Scheduler, {"c": count}, db)
        assert (await sched.ask(SubmitAndWait(task=Task(kind="c", id="once")))).result == 1
        assert (await sched.ask(SubmitAndWait(task=Task(kind="c", id="once")))).result == 1
    async with ActorSystem("b") as system:
        sched = await system.spawn(Scheduler, {"c": count}, db)
        again = await sched.ask(SubmitAndWait(task=Task(kind="c", id="once")))
        assert again == TaskResult(id="once", status="done", result=1)
        assert await sched.ask(Submit(task=Task(kind="c", id="once"))) == "once"
        assert (await sched.ask(Stats())).done == 1
    assert runs == 1


async def test_queued_tasks_in_journal_resume_on_start(tmp_path: Path):
    db = str(tmp_path / "tasks.db")
    gate = asyncio.Event()

    async def hang(task: Task) -> None:
        await gate.wait()

    async with ActorSystem("a") as system:
        sched = await system.spawn(Scheduler, {"h": hang}, db, workers=1)
        for i in range(3):
            await sched.ask(Submit(task=Task(kind="h", id=f"q{i}")))
        gate.set()  # let the shutdown finish; the journal still says queued/running for some
        await sched.ask(Stats())
    # Mark all as not finished to simulate a crash before any result was journaled.
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE tasks SET status = 'running', result = NULL")
    ran: list[str] = []

    async def record(task: Task) -> None:
        ran.append(task.id)

    async with ActorSystem("b") as system:
        sched = await system.spawn(Scheduler, {"h": record}, db, workers=1)
        res = await sched.ask(SubmitAndWait(task=Task(kind="h", id="q2")))
        assert res.status == "done"
    assert ran == ["q0", "q1", "q2"]


@pytest.mark.timeout(60)
def test_sigkill_mid_workload_resumes_and_never_redoes_finished_tasks(tmp_path: Path):
    script = Path(__file__).with_name("_durable_worker.py")
    db, record, n, workers = tmp_path / "tasks.db", tmp_path / "record.txt", 300, 4
    args = [sys.executable, str(script), str(db), str(record), str(n)]

    def executions() -> list[str]:
        return record.read_text().split() if record.exists() else []

    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while len(executions()) < 40:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first run made no progress"
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    killed_at = len(executions())
    assert killed_at < n, "the workload finished before the kill; make it longer"

    second = subprocess.run(args, capture_output=True, text=True, timeout=40)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"ALL DONE {n}" in second.stdout
    runs = executions()
    counts = {tid: runs.count(tid) for tid in set(runs)}
    assert set(counts) == {f"t{i:04d}" for i in range(n)}
    # At-least-once: only tasks in flight at the kill (at most one per worker) may run twice:
    # those that ran, or were running, when the process died before their result was journaled.
    twice = [tid for tid, c in counts.items() if c > 1]
    assert all(c <= 2 for c in counts.values())
    assert len(twice) <= workers, twice


async def test_many_failures_do_not_take_the_scheduler_down(system: ActorSystem):
    sched = await system.spawn(Scheduler, {"boom": boom, "double": double}, workers=2)
    results = await asyncio.gather(
        *(sched.ask(SubmitAndWait(task=Task(kind="boom", payload={"x": i}))) for i in range(20))
    )
    assert {r.status for r in results} == {"failed"}
    assert (await sched.ask(SubmitAndWait(task=Task(kind="double", payload={"x": 1})))).result == 2
    stats = await sched.ask(Stats())
    assert (stats.failed, stats.done, stats.idle_workers) == (20, 1, 2)


async def test_forget_drops_finished_tasks_of_a_kind_so_they_run_again(tmp_path: Path):
    runs: list[str] = []
    gate = asyncio.Event()

    async def count(task: Task) -> int:
        runs.append(task.id or "")
        return len(runs)

    async def hang(task: Task) -> None:
        await gate.wait()

    async def fail(task: Task) -> None:
        runs.append(task.id or "")
        raise ValueError("no")

    db = str(tmp_path / "tasks.db")
    handlers = {"c": count, "f": fail, "other": count, "h": hang}
    async with ActorSystem("a") as system:
        sched = await system.spawn(Scheduler, handlers, db, workers=2)
        for kind, task_id in (("c", "c1"), ("f", "f1"), ("other", "o1")):
            await sched.ask(SubmitAndWait(task=Task(kind=kind, id=task_id)))
        await sched.ask(Submit(task=Task(kind="h", id="h1")))  # keeps running
        assert await sched.ask(Forget(kind="c")) == 1
        assert await sched.ask(Forget(kind="f")) == 1
        assert await sched.ask(Forget(kind="h")) == 0  # a running task is not forgotten
        stats = await sched.ask(Stats())
        assert (stats.done, stats.failed, stats.running) == (1, 0, 1)  # o1 and h1 are left
        again = await sched.ask(SubmitAndWait(task=Task(kind="c", id="c1")))
        assert again.result == 4  # ran again: c1, f1, o1, then c1
        kept = await sched.ask(SubmitAndWait(task=Task(kind="other", id="o1")))
        assert kept.result == 3  # answered from the journal
        gate.set()
    assert runs == ["c1", "f1", "o1", "c1"]
    async with ActorSystem("b") as system:  # the forgetting is on disk: c1's new result is
        sched = await system.spawn(Scheduler, handlers, db)
        assert (await sched.ask(SubmitAndWait(task=Task(kind="c", id="c1")))).result == 4
    assert runs == ["c1", "f1", "o1", "c1"]


async def test_a_stray_message_is_refused_and_the_tasks_waited_for_carry_on(system: ActorSystem):
    started, gate = asyncio.Event(), asyncio.Event()

    async def slow(task: Task) -> str:
        started.set()
        await gate.wait()
        return "done"

    sched = await system.spawn(Scheduler, {"s": slow}, name="sched")
    waiting = asyncio.ensure_future(sched.ask(SubmitAndWait(task=Task(kind="s", id="t"))))
    await started.wait()
    with pytest.raises(TypeError):
        await sched.ask("not a scheduler message")
    gate.set()
    assert await waiting == TaskResult(id="t", status="done", result="done")  # no restart


class CrashableScheduler(Scheduler):
    """A ``Scheduler`` that fails (a real actor failure) when it is told ``"crash"``."""

    def receive(self, message: Any, ctx: Context) -> Any:
        if message == "crash":
            raise RuntimeError("crashed on purpose")
        return super().receive(message, ctx)


async def test_waiters_learn_of_a_scheduler_restart_and_can_wait_again(tmp_path: Path):
    """A restart of the scheduler answers its waiting askers with ``ActorStopped`` (once its
    workers have stopped: a running handler gets the workers' shutdown time, on the manual
    clock here); the same id submitted to the new incarnation waits for the resumed task."""
    from actoros import ActorStopped, ChildSpec, ManualClock, SupervisorSpec

    db = str(tmp_path / "tasks.db")
    started, gate = asyncio.Event(), asyncio.Event()
    runs = 0

    async def slow(task: Task) -> str:
        nonlocal runs
        runs += 1
        started.set()
        await gate.wait()
        return "done"

    clock = ManualClock()
    spec = SupervisorSpec(children=[ChildSpec("sched", CrashableScheduler, ({"s": slow}, db))])
    async with ActorSystem("a", clock=clock) as system:
        await system.spawn_supervisor(spec, name="kernel")
        sched = system.lookup("/kernel/sched")
        assert sched is not None
        task = Task(kind="s", id="t")
        waiting = asyncio.ensure_future(sched.ask(SubmitAndWait(task=task), timeout=None))
        await started.wait()
        sched.tell("crash")  # fails the scheduler: its supervisor restarts it
        for _ in range(1000):  # the busy worker is killed after its shutdown time
            if waiting.done():
                break
            clock.advance(1.0)
            await asyncio.sleep(0)
        with pytest.raises(ActorStopped, match="submit it again"):
            await waiting
        gate.set()
        again = await sched.ask(SubmitAndWait(task=task), timeout=None)
        assert again == TaskResult(id="t", status="done", result="done")
        assert runs == 2  # killed while running, so run again (at least once)


def recording_double(runs: list[int]) -> Callable[[Task], Awaitable[int]]:
    """A ``double`` handler that records each ``x`` it is run with."""

    async def count_double(task: Task) -> int:
        runs.append(task.payload["x"])
        return task.payload["x"] * 2

    return count_double


def journal_rows(db: str) -> dict[str, tuple[str, int]]:
    """id -> (status, attempts), read from the journal file."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, status, attempts FROM tasks")}


async def test_an_interrupted_task_stays_queued_and_runs_on_the_next_start(tmp_path: Path):
    """A handler stopped before its task had an outcome (a shutdown) raises TaskInterrupted:
    no result is journaled, the waiter hears ActorStopped, and the next start runs it."""
    from actoros import ActorStopped
    from actoros.kernel.scheduler import TaskInterrupted

    db = str(tmp_path / "tasks.db")

    async def stopped(task: Task) -> int:
        raise TaskInterrupted("the agent was stopped")

    async with ActorSystem("a") as system:
        sched = await system.spawn(Scheduler, {"d": stopped}, db, workers=1)
        with pytest.raises(ActorStopped, match="interrupted before it finished"):
            await sched.ask(SubmitAndWait(task=Task(kind="d", id="t", payload={"x": 4})))
        stats = await sched.ask(Stats())
        assert (stats.queued, stats.running, stats.done, stats.failed) == (1, 0, 0, 0)
        assert stats.idle_workers == 1  # the worker was not failed for it
    assert journal_rows(db) == {"t": ("queued", 0)}  # pending; the attempt does not count
    async with ActorSystem("b") as system:
        sched = await system.spawn(Scheduler, {"d": double}, db, workers=1)
        again = await sched.ask(SubmitAndWait(task=Task(kind="d", id="t", payload={"x": 4})))
        assert again == TaskResult(id="t", status="done", result=8)
    assert journal_rows(db) == {"t": ("done", 1)}


async def test_an_interrupted_task_runs_again_when_its_id_is_submitted_again(system: ActorSystem):
    from actoros import ActorStopped
    from actoros.kernel.scheduler import TaskInterrupted

    runs = 0

    async def once_interrupted(task: Task) -> int:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise TaskInterrupted("stopped")
        return runs

    sched = await system.spawn(Scheduler, {"o": once_interrupted}, workers=1)
    with pytest.raises(ActorStopped):
        await sched.ask(SubmitAndWait(task=Task(kind="o", id="t")))
    assert await sched.ask(SubmitAndWait(task=Task(kind="o", id="t"))) == TaskResult(
        id="t", status="done", result=2
    )


async def test_drain_hands_out_no_more_tasks_and_the_journal_keeps_them(tmp_path: Path):
    db = str(tmp_path / "tasks.db")
    ran: list[str] = []
    gate, blocked = asyncio.Event(), asyncio.Event()

    async def record(task: Task) -> None:
        if task.id == "block":
            blocked.set()
            await gate.wait()
        ran.append(task.id or "")

    from actoros.kernel.scheduler import Drain

    async with ActorSystem("a") as system:
        sched = await system.spawn(Scheduler, {"r": record}, db, workers=1)
        first = asyncio.ensure_future(sched.ask(SubmitAndWait(task=Task(kind="r", id="block"))))
        await blocked.wait()
        for tid in ("a", "b"):
            await sched.ask(Submit(task=Task(kind="r", id=tid)))
        assert await sched.ask(Drain()) == 1  # one task is running
        await sched.ask(Submit(task=Task(kind="r", id="c")))  # journaled, not started
        gate.set()
        assert (await first).status == "done"
        stats = await sched.ask(Stats())
        assert (stats.queued, stats.done, stats.idle_workers) == (3, 1, 1)
    assert ran == ["block"]
    async with ActorSystem("b") as system:
        sched = await system.spawn(Scheduler, {"r": record}, db, workers=1)
        await sched.ask(SubmitAndWait(task=Task(kind="r", id="c")))
    assert ran == ["block", "a", "b", "c"]


async def test_a_finished_id_that_asks_something_else_runs_again(tmp_path: Path):
    """The journal keys a task by id and by what it asks: a new payload under a finished id
    is run (and replaces the stored result); the old answer is never served for it."""
    db = str(tmp_path / "tasks.db")
    runs: list[int] = []
    count_double = recording_double(runs)

    async with ActorSystem("a") as system:
        sched = await system.spawn(Scheduler, {"d": count_double}, db)
        one = await sched.ask(SubmitAndWait(task=Task(kind="d", id="t", payload={"x": 1})))
        two = await sched.ask(SubmitAndWait(task=Task(kind="d", id="t", payload={"x": 2})))
        assert (one.result, two.result) == (2, 4)
        assert (await sched.ask(Stats())).done == 1  # one id, its latest version
    async with ActorSystem("b") as system:
        sched = await system.spawn(Scheduler, {"d": count_double}, db)
        same = Task(kind="d", id="t", payload={"x": 2})
        assert (await sched.ask(SubmitAndWait(task=same))).result == 4  # from the journal
        other_kind = Task(kind="other", id="t", payload={"x": 2})
        assert (await sched.ask(SubmitAndWait(task=other_kind))).status == "failed"
    assert runs == [1, 2]


async def test_a_new_version_of_a_running_task_replaces_it_and_the_old_result_is_dropped(
    system: ActorSystem,
):
    from actoros import ActorStopped

    gates = {1: asyncio.Event(), 2: asyncio.Event()}
    started: list[int] = []
    old_started = asyncio.Event()

    async def slow(task: Task) -> int:
        started.append(task.payload["x"])
        old_started.set()
        await gates[task.payload["x"]].wait()
        return task.payload["x"] * 10

    sched = await system.spawn(Scheduler, {"s": slow}, workers=2)
    old = asyncio.ensure_future(
        sched.ask(SubmitAndWait(task=Task(kind="s", id="t", payload={"x": 1})))
    )
    await old_started.wait()
    new = asyncio.ensure_future(
        sched.ask(SubmitAndWait(task=Task(kind="s", id="t", payload={"x": 2})))
    )
    try:
        with pytest.raises(ActorStopped, match="replaced"):
            await asyncio.wait_for(old, 2)  # its waiter learns that its version will not end
        gates[1].set()  # the old version ends first: its result is not the task's
        while (await sched.ask(Stats())).idle_workers != 1:  # until the old one has reported
            pass
        assert not new.done()
        gates[2].set()
        assert await new == TaskResult(id="t", status="done", result=20)
        assert started == [1, 2]
    finally:  # whatever failed, the handlers end
        for gate in gates.values():
            gate.set()


async def test_a_queued_task_replaced_before_it_ran_runs_only_its_new_version(
    system: ActorSystem,
):
    ran: list[tuple[str, int]] = []
    gate, blocked = asyncio.Event(), asyncio.Event()

    async def record(task: Task) -> int:
        if task.id == "block":
            blocked.set()
            await gate.wait()
        ran.append((task.id or "", task.payload.get("x", 0)))
        return task.payload.get("x", 0)

    sched = await system.spawn(Scheduler, {"r": record}, workers=1)
    first = asyncio.ensure_future(sched.ask(SubmitAndWait(task=Task(kind="r", id="block"))))
    await blocked.wait()
    await sched.ask(Submit(task=Task(kind="r", id="t", payload={"x": 1})))
    newer = asyncio.ensure_future(
        sched.ask(SubmitAndWait(task=Task(kind="r", id="t", payload={"x": 2})))
    )
    await sched.ask(Stats())
    gate.set()
    await first
    assert (await newer).result == 2
    assert ran == [("block", 0), ("t", 2)]


async def test_a_journal_written_before_digests_is_upgraded_in_place(tmp_path: Path):
    import sqlite3

    db = str(tmp_path / "tasks.db")
    with sqlite3.connect(db) as conn:  # the journal's schema before tasks had a digest
        conn.executescript(
            "CREATE TABLE tasks (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
            " kind TEXT NOT NULL, payload TEXT NOT NULL, priority INTEGER NOT NULL,"
            " status TEXT NOT NULL, result TEXT, error TEXT,"
            " attempts INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, updated REAL NOT NULL);"
            "INSERT INTO tasks (id, kind, payload, priority, status, result, created, updated)"
            " VALUES ('same', 'd', '{\"x\": 1}', 0, 'done', '2', 0, 0),"
            " ('changed', 'd', '{\"x\": 1}', 0, 'done', '2', 0, 0);"
        )
    runs: list[int] = []
    count_double = recording_double(runs)

    async with ActorSystem("a") as system:
        sched = await system.spawn(Scheduler, {"d": count_double}, db)
        same = await sched.ask(SubmitAndWait(task=Task(kind="d", id="same", payload={"x": 1})))
        changed = await sched.ask(
            SubmitAndWait(task=Task(kind="d", id="changed", payload={"x": 3}))
        )
    assert (same.result, changed.result, runs) == (2, 6, [3])


async def test_journaled_results_reads_the_finished_tasks_that_ask_the_same(tmp_path: Path):
    from actoros.kernel.scheduler import journaled_results

    db = str(tmp_path / "tasks.db")
    async with ActorSystem("a") as system:
        sched = await system.spawn(Scheduler, {"d": double, "b": boom}, db)
        await sched.ask(SubmitAndWait(task=Task(kind="d", id="a", payload={"x": 1})))
        await sched.ask(SubmitAndWait(task=Task(kind="b", id="b", payload={"x": 1})))
    asked = [
        Task(kind="b", id="b", payload={"x": 1}),
        Task(kind="d", id="a", payload={"x": 2}),  # asks something else: not its result
        Task(kind="d", id="nope", payload={"x": 1}),
    ]
    results = await journaled_results(db, asked)
    assert [(r.id, r.status) for r in results] == [("b", "failed")]
    assert await journaled_results(tmp_path / "missing.db", asked) == []
    assert await journaled_results(":memory:", asked) == []


def test_task_digest_depends_on_what_is_asked_not_on_key_order():
    from actoros.kernel.scheduler import task_digest

    assert task_digest("k", {"a": 1, "b": [1, 2]}) == task_digest("k", {"b": [1, 2], "a": 1})
    assert task_digest("k", {"a": 1}) != task_digest("k", {"a": 2})
    assert task_digest("k", {"a": 1}) != task_digest("j", {"a": 1})


async def test_wait_gives_the_result_of_a_known_id_without_asking_anything(tmp_path: Path):
    from actoros.kernel.scheduler import Wait

    db = str(tmp_path / "tasks.db")
    gate = asyncio.Event()

    async def gated(task: Task) -> int:
        await gate.wait()
        return task.payload["x"] * 2

    async with ActorSystem("a") as system:
        sched = await system.spawn(Scheduler, {"g": gated}, db)
        await sched.ask(Submit(task=Task(kind="g", id="t", payload={"x": 5})))
        waiting = asyncio.ensure_future(sched.ask(Wait(id="t")))
        await sched.ask(Stats())
        assert not waiting.done()
        gate.set()
        assert await waiting == TaskResult(id="t", status="done", result=10)
        with pytest.raises(LookupError, match="knows no task 'nope'"):
            await sched.ask(Wait(id="nope"))
    async with ActorSystem("b") as system:  # finished: answered from the journal
        sched = await system.spawn(Scheduler, {"g": gated}, db)
        assert await sched.ask(Wait(id="t")) == TaskResult(id="t", status="done", result=10)


async def test_a_new_version_submitted_while_the_old_result_is_journaled_gets_its_own(
    system: ActorSystem,
):
    """The old version's result reaches its waiters only after the journal write; a new
    version submitted in between must not be answered with it."""

    async def shout(task: Task) -> str:
        return str(task.payload["text"]).upper()

    sched = await system.spawn(Scheduler, {"shout": shout}, workers=1)
    for i in range(20):  # the old result is on its way to the journal when the new one comes
        task_id = await sched.ask(Submit(task=Task(kind="shout", payload={"text": f"a{i}"})))
        new = Task(kind="shout", id=task_id, payload={"text": f"b{i}"})
        assert (await sched.ask(SubmitAndWait(task=new))).result == f"B{i}"
