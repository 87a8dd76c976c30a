"""``run_system``: a config becomes a running system, runs its workload, and stops.

Runs the real assembly — kernel services, agent groups, the fake engine — with state in a
temporary folder; no CLI involved.
"""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actoros import LifecycleEvent
from actoros.agents import AgentReply
from actoros.config import Config, ConfigError, parse_config
from actoros.kernel import Subscribe, Subscribers
from actoros.kernel.access import Publish
from actoros.runner import RunSummary, chat, run_system, start_system
from actoros.testing import capture_events, spawn_probe

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parent.parent


def fake_config(state: Path) -> Config:  # the shipped example, with its state in ``state``
    text = (REPO / "configs" / "fake.yaml").read_text(encoding="utf-8")
    text = text.replace("state_dir: ../.actoros/fake", f"state_dir: {state}")
    assert text != (REPO / "configs" / "fake.yaml").read_text(encoding="utf-8")
    return parse_config(text, base_dir=REPO / "configs")


def lines_of(out: io.StringIO) -> list[dict[str, object]]:
    return [msgspec.json.decode(line) for line in out.getvalue().splitlines()]


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


async def test_a_second_run_answers_finished_tasks_from_the_journal(tmp_path: Path) -> None:
    config = fake_config(tmp_path)
    first, second = io.StringIO(), io.StringIO()
    await run_system(config, out=first)
    summary = await run_system(config, out=second)
    key = lambda line: line["id"]  # noqa: E731
    # same outputs and the same recorded seconds: nothing was asked again
    assert sorted(lines_of(second), key=key) == sorted(lines_of(first), key=key)
    assert summary.output_tokens == 0


async def test_an_agent_error_is_an_error_line_not_a_crash(tmp_path: Path) -> None:
    config = parse_config(
        f"""
system: {{state_dir: {tmp_path}}}
agents:
  - name: greeter
    kind: rule
    rules:
      - match: {{text: hi}}
        reply: hello
workload:
  agent: greeter
  tasks:
    - {{id: a, input: hi}}
    - {{id: b, input: something else}}
"""
    )
    out = io.StringIO()
    summary = await run_system(config, out=out)
    by_id = {line["id"]: line for line in lines_of(out)}
    assert by_id["a"]["output"] == "hello"
    assert "no rule matches" in by_id["b"]["error"]
    assert "output" not in by_id["b"]
    assert (summary.ok, summary.failed) == (1, 1)


async def test_without_a_workload_it_serves_until_stopped(tmp_path: Path) -> None:
    config = msgspec.structs.replace(fake_config(tmp_path), workload=None)
    stop = asyncio.Event()
    running = asyncio.ensure_future(run_system(config, out=io.StringIO(), stop_event=stop))
    await asyncio.sleep(0.05)
    assert not running.done()
    stop.set()
    summary = await asyncio.wait_for(running, 10)
    assert summary == RunSummary()


async def test_the_kernel_starts_its_services_in_order_and_agents_in_groups(
    tmp_path: Path,
) -> None:
    config = msgspec.structs.replace(fake_config(tmp_path), workload=None)
    system = await start_system(config)
    try:
        assert system.actors.lookup("/kernel") is not None
        for service in ("scheduler", "threads", "kv", "tools", "pubsub", "inference"):
            assert system.service(service) is not None, service
        assert system.agent("router").path == "/front/router"
        assert system.agent("faq").path == "/workers/faq"
    finally:
        await system.shutdown()


async def test_topic_subscribers_are_subscribed_at_start(tmp_path: Path) -> None:
    config = msgspec.structs.replace(fake_config(tmp_path), workload=None)
    system = await start_system(config)
    try:
        pubsub = system.service("pubsub")
        assert pubsub is not None
        subscribers = await pubsub.ask(Subscribers(topic="escalations"))
        assert subscribers == [system.agent("faq")]
    finally:
        await system.shutdown()


async def test_chat_writes_the_reply_piece_by_piece_as_it_streams(tmp_path: Path) -> None:
    config = fake_config(tmp_path)
    lines = iter(["What are your opening hours?\n", "hello\n", ""])
    writes: list[str] = []
    # read_line runs in a thread: hand it the next line only after the previous reply ended
    turn_done = threading.Semaphore(0)

    def read_line() -> str:
        line = next(lines)
        if line != "What are your opening hours?\n":
            turn_done.acquire(timeout=20)
        return line

    def write(text: str) -> None:
        writes.append(text)
        if text.endswith("\n"):
            turn_done.release()

    await asyncio.wait_for(chat(config, "router", read_line=read_line, write=write), 20)
    first_end = writes.index("\n")
    prefix, pieces = writes[0], writes[1:first_end]
    assert prefix == "router: "
    # the faq agent's answer (fake engine: one word per token) came in several pieces
    assert len(pieces) >= 3, writes
    assert all(piece for piece in pieces)
    answer = "".join(pieces)
    assert answer == answer.strip() and len(answer.split()) >= len(pieces)
    assert writes[first_end + 1 :] == [
        "router: ",
        "Hello! Ask me about your order or our shop.",
        "\n",
    ]


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


async def test_subscriptions_survive_a_restart_of_the_pubsub_actor(tmp_path: Path) -> None:
    config = parse_config(
        f"""
system: {{state_dir: {tmp_path}}}
agents:
  - name: announcer
    kind: rule
    permissions: {{topics: [news]}}
    rules: [{{match: {{text: never}}, reply: unused}}]
  - name: listener
    kind: rule
    rules: [{{match: {{topic: news}}, reply: "heard {{message}}"}}]
  - name: bystander
    kind: rule
    rules: [{{reply: "not for me"}}]
topics:
  - {{name: news, subscribers: [listener]}}
  - {{name: sports, subscribers: [listener, bystander]}}
"""
    )
    system = await start_system(config)
    try:
        pubsub = system.service("pubsub")
        assert pubsub is not None
        # the publisher: a probe that the system knows as the agent ``announcer`` (rule agents
        # have no publish action), so the listener's reply is told back to it
        probe_ref, probe = await spawn_probe(system.actors, "announcer-probe")
        system.agent_names[probe_ref.path] = "announcer"
        with capture_events(system.actors, LifecycleEvent) as events:
            # a Subscribe without a ref is a fault inside the service: it fails and restarts
            pubsub.tell(Subscribe(topic="news", ref="not a ref"))  # type: ignore[arg-type]
            await events.wait_for(lambda e: e.path == pubsub.path and e.kind == "restarted")
        # the fresh incarnation knows the configured subscribers again (asked after the
        # runner's re-subscriptions, from the same sender, so they are in)
        assert await pubsub.ask(Subscribers(topic="news")) == [system.agent("listener")]
        sports = await pubsub.ask(Subscribers(topic="sports"))
        assert sports == [system.agent("listener"), system.agent("bystander")]
        pubsub.tell(Publish(topic="news", message="rain"), sender=probe_ref)
        reply = await probe.expect(AgentReply)
        assert (reply.agent, reply.text) == ("listener", "heard rain")
    finally:
        await system.shutdown()


async def test_a_restart_of_the_whole_kernel_leaves_the_agents_working(tmp_path: Path) -> None:
    """The kernel gives up (its intensity is exceeded), the root restarts it with fresh
    services, and everything started after it restarts too (rest_for_one): agents then reach
    the new services, and the topic subscriptions are back."""
    config = parse_config(
        f"""
system: {{state_dir: {tmp_path}}}
inference: {{engine: fake}}
agents:
  - {{name: helper, kind: llm, max_tokens: 8, max_steps: 1}}
  - name: listener
    kind: rule
    rules: [{{match: {{topic: news}}, reply: "heard {{message}}"}}]
topics:
  - {{name: news, subscribers: [listener]}}
"""
    )
    system = await start_system(config)
    try:
        helper = system.agent("helper")
        assert helper is not None
        assert isinstance(await helper.ask("hello", timeout=10), AgentReply)
        pubsub = system.service("pubsub")
        assert pubsub is not None
        with capture_events(system.actors, LifecycleEvent) as events:
            # a Subscribe without a ref fails the service: more often than the kernel's
            # intensity allows (10 in 60 s) makes /kernel fail, and the root restart it
            for _ in range(11):
                pubsub.tell(Subscribe(topic="news", ref="not a ref"))  # type: ignore[arg-type]
                await events.wait_for(lambda e: e.path == pubsub.path and e.kind == "failed")
                events.clear()
            await events.wait_for(LifecycleEvent("/kernel", "restarted", None))
            # rest_for_one: the agent group, started after the kernel, restarts with it
            await events.wait_for(LifecycleEvent("/agents", "restarted", None))
        assert system.actors.failure is None
        fresh = system.service("pubsub")
        assert fresh is not None and fresh != pubsub
        helper = system.agent("helper")
        assert helper is not None
        reply = await helper.ask("hello again", timeout=10)  # through the new inference actor
        assert isinstance(reply, AgentReply) and reply.completion_tokens > 0
        listener = system.agent("listener")
        # asked after the runner's re-subscriptions (told on the listener's start)
        assert await fresh.ask(Subscribers(topic="news")) == [listener]
    finally:
        await system.shutdown()


async def test_a_workload_survives_a_restart_of_the_scheduler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler fails mid-workload: its waiting askers hear of it, the runner submits
    the same ids to the restarted scheduler, which resumes them from its journal; every
    task is answered."""
    from actoros.kernel import Scheduler, Stats
    from actoros.runner import _engine_ready, _run_workload

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
        await _engine_ready(system, stop)
        system.open.set()
        out = io.StringIO()
        running = asyncio.ensure_future(_run_workload(system, out, None, stop))
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


# -- the journal: a stop is no outcome, a task is what it asks, one run per state dir ------


def slow_fake_config(state: Path, token_delay: float = 0.02) -> Config:
    config = fake_config(state)
    assert config.inference is not None
    inference = msgspec.structs.replace(
        config.inference, engine_args={**config.inference.engine_args, "token_delay": token_delay}
    )
    return msgspec.structs.replace(config, inference=inference)


def journal(state: Path) -> dict[str, tuple[str, str | None]]:
    """The scheduler journal's workload tasks: id -> (status, result)."""
    import sqlite3

    with sqlite3.connect(state / "scheduler.sqlite") as conn:
        rows = conn.execute("SELECT id, status, result FROM tasks WHERE kind = 'workload'")
        return {row[0].removeprefix("workload:"): (row[1], row[2]) for row in rows}


class StopAtFirstLine(io.StringIO):
    """A results file that sets ``stop`` once the first line is written (a Ctrl-C then)."""

    def __init__(self, stop: asyncio.Event) -> None:
        super().__init__()
        self.stop = stop

    def write(self, text: str) -> int:
        self.stop.set()
        return super().write(text)


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


def rule_workload(state: Path, lines: list[str]) -> Config:
    """A rule agent that knows two answers, its workload a file of plain questions."""
    tasks = state / "tasks.jsonl"
    tasks.write_text("".join(f'"{line}"\n' for line in lines), encoding="utf-8")
    return parse_config(
        f"""
system: {{state_dir: {state}}}
agents:
  - name: a
    kind: rule
    rules:
      - {{contains: {{text: "2+2"}}, reply: "4"}}
      - {{contains: {{text: France}}, reply: Paris}}
      - {{reply: dunno}}
workload: {{agent: a, file: {tasks}}}
"""
    )


async def test_a_line_inserted_at_the_top_of_a_workload_gives_no_task_another_ones_answer(
    tmp_path: Path,
) -> None:
    """Before: default ids were positions (task-0001...), so after the insert every task was
    answered with the result of the question that had been on its line."""
    answers = {"capital of France?": "Paris", "what is 2+2?": "4", "hello": "dunno"}
    first = io.StringIO()
    await run_system(rule_workload(tmp_path, ["capital of France?", "what is 2+2?"]), out=first)
    second = io.StringIO()
    config = rule_workload(tmp_path, ["hello", "capital of France?", "what is 2+2?"])
    await run_system(config, out=second)
    lines = lines_of(second)
    assert {line["input"]: line["output"] for line in lines} == answers
    before = {line["id"]: line for line in lines_of(first)}
    for line in lines:  # the tasks that were there keep their ids and their journaled answer
        if line["input"] != "hello":
            assert before[line["id"]] == line


async def test_ids_not_given_come_from_what_the_task_asks_and_repeats_stay_apart(
    tmp_path: Path,
) -> None:
    from actoros.runner import workload_tasks

    config = rule_workload(tmp_path, ["what is 2+2?", "what is 2+2?", "hello"])
    ids = [task.id for task in workload_tasks(config)]
    assert len(set(ids)) == 3 and all(i is not None and i.startswith("task-") for i in ids)
    assert ids[1] == f"{ids[0]}-2"
    assert [task.id for task in workload_tasks(config)] == ids  # the same on every run
    out = io.StringIO()
    summary = await run_system(config, out=out)
    assert (summary.ok, sorted(line["id"] for line in lines_of(out))) == (3, sorted(ids))
    grown = rule_workload(tmp_path, ["capital of France?", "what is 2+2?", "what is 2+2?", "hello"])
    assert [task.id for task in workload_tasks(grown)][1:] == ids


async def test_a_task_whose_input_changed_under_its_id_is_asked_again(tmp_path: Path) -> None:
    def config(question: str) -> Config:
        return parse_config(
            f"""
system: {{state_dir: {tmp_path}}}
agents:
  - {{name: a, kind: rule, rules: [{{match: {{text: hi}}, reply: hello}}, {{reply: "what?"}}]}}
workload: {{agent: a, tasks: [{{id: q1, input: "{question}"}}]}}
"""
        )

    await run_system(config("hi"), out=io.StringIO())
    out = io.StringIO()
    await run_system(config("bye"), out=out)
    [line] = lines_of(out)
    assert (line["id"], line["input"], line["output"]) == ("q1", "bye", "what?")
    assert journal(tmp_path)["q1"][0] == "done"


async def test_a_second_system_on_a_state_dir_in_use_is_refused_naming_the_holder(
    tmp_path: Path,
) -> None:
    import os

    config = msgspec.structs.replace(fake_config(tmp_path), workload=None)
    system = await start_system(config)
    try:
        with pytest.raises(ConfigError) as caught:
            await start_system(config)
        [line] = caught.value.lines()
        assert line == (
            f"config: system.state_dir: {tmp_path} is in use by another actoros run "
            f"(pid {os.getpid()}): stop that run first, or give this one another "
            "system.state_dir"
        )
    finally:
        await system.shutdown()
    again = await start_system(config)  # the first one gave it up
    await again.shutdown()


@pytest.mark.parametrize(
    ("name", "key", "reason"),
    [
        ("scheduler.sqlite", "services.scheduler.db", "it is a directory"),
        ("threads.sqlite", "services.threads.db", "it is not an SQLite database"),
    ],
)
async def test_a_sqlite_file_that_cannot_be_opened_is_a_config_error_naming_it(
    tmp_path: Path, name: str, key: str, reason: str
) -> None:
    """Before: the database thread died in connect() and the start waited forever."""
    config = fake_config(tmp_path)  # the file goes bad after the checks passed
    bad = tmp_path / name
    if reason == "it is a directory":
        bad.mkdir()
    else:
        bad.write_bytes(b"not a database, only some text that is long enough to look at\n" * 4)
    with pytest.raises(ConfigError) as caught:
        await run_system(config, out=io.StringIO())
    [line] = caught.value.lines()
    assert line.startswith(f"config: {key}: cannot open the SQLite file {bad}: {reason} (")
    await run_system(  # nothing is left running or locked: a good config starts
        msgspec.structs.replace(fake_config(tmp_path / "ok"), workload=None),
        out=io.StringIO(),
        stop_event=_set(asyncio.Event()),
    )


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event
