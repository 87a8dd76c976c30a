"""``run_system``: a config becomes a running system, runs its workload, and stops.

Runs the real assembly — kernel services, agent groups, the fake engine — with state in a
temporary folder; no CLI involved.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actoros import LifecycleEvent
from actoros.app import RunSummary, run_system, start_system
from actoros.testing import capture_events

from .configs import StopAtFirstLine, fake_config, journal, lines_of, slow_fake_config

pytestmark = pytest.mark.timeout(30)


async def test_the_fake_example_answers_every_task_with_one_json_line(tmp_path: Path) -> None:
    config = fake_config(tmp_path)
    out = io.StringIO()
    summary = await run_system(config, out=out)
    lines = lines_of(out)
    assert summary == RunSummary(
        tasks=20, ok=20, failed=0, seconds=summary.seconds, output_tokens=summary.output_tokens
    )
    assert sorted(line["id"] for line in lines) == [f"q{i:02d}" for i in range(1, 21)]
    for line in lines:
        assert set(line) == {"id", "agent", "input", "output", "seconds"}
        assert line["agent"] == "router"
    hello = next(line for line in lines if line["id"] == "q01")
    assert hello["output"] == "Hello! Ask me about your order or our shop."
    assert summary.output_tokens > 0  # the LLM agents went through the inference actor


async def test_without_a_workload_it_serves_until_stopped(tmp_path: Path) -> None:
    config = msgspec.structs.replace(fake_config(tmp_path), workload=None)
    stop = asyncio.Event()
    running = asyncio.ensure_future(run_system(config, out=io.StringIO(), stop_event=stop))
    await asyncio.sleep(0.05)
    assert not running.done()
    stop.set()
    summary = await asyncio.wait_for(running, 10)
    assert summary == RunSummary()


async def test_fresh_asks_the_finished_tasks_again(tmp_path: Path) -> None:
    config = fake_config(tmp_path)  # the scheduler's journal is a file in tmp_path
    assert (await run_system(config, out=io.StringIO())).output_tokens > 0
    # by default a rerun answers from the journal: no agent is asked, no token generated
    journal = io.StringIO()
    assert (await run_system(config, out=journal)).output_tokens == 0
    fresh = io.StringIO()
    summary = await run_system(config, out=fresh, fresh=True)
    assert (summary.tasks, summary.ok) == (20, 20)
    assert summary.output_tokens > 0  # the LLM agents were asked again
    assert sorted(line["id"] for line in lines_of(fresh)) == [f"q{i:02d}" for i in range(1, 21)]
    # what the fresh run found is journaled in turn: the next plain run answers from it
    again = io.StringIO()
    assert (await run_system(config, out=again)).output_tokens == 0
    key = lambda line: line["id"]  # noqa: E731
    assert sorted(lines_of(again), key=key) == sorted(lines_of(fresh), key=key)


async def test_a_workload_survives_a_restart_of_the_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler fails mid-workload: its waiting askers hear of it, the workload submits
    the same ids to the restarted scheduler, which resumes them from its journal; every
    task is answered."""
    from actoros.app.run import engine_ready, run_workload
    from actoros.kernel import Scheduler, Stats

    receive = Scheduler.receive

    def crashable(self: Scheduler, message: object, ctx: Any) -> Any:  # the fault to inject
        if message == "crash":
            raise RuntimeError("crashed on purpose")
        return receive(self, message, ctx)

    monkeypatch.setattr(Scheduler, "receive", crashable)

    config = fake_config(tmp_path)
    inference = msgspec.structs.replace(
        config.inference, engine_args={**config.inference.engine_args, "token_delay": 0.005}
    )
    config = msgspec.structs.replace(config, inference=inference)
    system = await start_system(config)
    try:
        stop = asyncio.Event()
        await engine_ready(system, stop)
        system.open.set()
        out = io.StringIO()
        running = asyncio.ensure_future(run_workload(system, out, None, stop))
        scheduler = system.service("scheduler")
        assert scheduler is not None
        while (await scheduler.ask(Stats())).done < 3:  # some done, others still running
            await asyncio.sleep(0.01)
        with capture_events(system.actors, LifecycleEvent) as events:
            scheduler.tell("crash")  # the scheduler fails and restarts
            await events.wait_for(LifecycleEvent(scheduler.path, "restarted", None), timeout=20)
        summary = await asyncio.wait_for(running, 25)
        assert (summary.tasks, summary.ok, summary.failed) == (20, 20, 0)
        assert sorted(line["id"] for line in lines_of(out)) == [f"q{i:02d}" for i in range(1, 21)]
    finally:
        await system.shutdown()


async def test_a_stop_leaves_unfinished_tasks_pending_and_the_next_run_asks_them(
    tmp_path: Path,
) -> None:
    """Before: the agents stopped first, their turns were cancelled, and each running task was
    journaled as finished with "the turn was cancelled", which the next run served."""
    config = slow_fake_config(tmp_path)
    stop = asyncio.Event()
    out = StopAtFirstLine(stop)
    summary = await run_system(config, out=out, stop_event=stop)
    first = {line["id"]: line for line in lines_of(out)}
    rows = journal(tmp_path)
    finished = {i for i, (status, _) in rows.items() if status in ("done", "failed")}
    assert finished == set(first)  # every task the journal holds as finished has its line
    assert summary.ok + summary.failed == len(first) < 20
    assert any(status == "queued" for status, _ in rows.values())  # the ones that were running
    assert not any("cancelled" in (result or "") for _, result in rows.values())

    second = io.StringIO()
    await run_system(config, out=second)
    after = {line["id"]: line for line in lines_of(second)}
    assert sorted(after) == [f"q{i:02d}" for i in range(1, 21)]
    assert [line for line in after.values() if "error" in line] == []
    for task_id, line in first.items():  # answered from the journal, not asked again
        assert after[task_id] == line


async def test_a_stopped_run_writes_every_result_the_journal_holds(tmp_path: Path) -> None:
    """A run stopped at once still writes the line of each task an earlier run finished (its
    output replaces the earlier one's: nothing finished may be missing from it)."""
    config = fake_config(tmp_path)
    await run_system(config, out=io.StringIO())
    stop = asyncio.Event()
    stop.set()
    out = io.StringIO()
    summary = await run_system(config, out=out, stop_event=stop)
    assert sorted(line["id"] for line in lines_of(out)) == [f"q{i:02d}" for i in range(1, 21)]
    assert (summary.tasks, summary.ok, summary.failed) == (20, 20, 0)
