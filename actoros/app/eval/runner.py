"""Running a config's workload for an evaluation, and recording what each task came to.

``evaluate(config, constrain=...)`` starts the system with the same assembly as ``actoros
run`` (``start_system``, the engine awaited with ``engine_ready``), with every state file —
journal, threads, key-value store — in a temporary folder, so a user's journal is neither
read nor changed, and without the gateway (an evaluation serves nobody). ``constrain`` sets
every agent's ``constrain`` (the grammar-constrained protocol, issue 11).

Tasks run in priority waves (lower first, as the scheduler's priority policy orders them,
so the demo's seed tasks write the order book before any question reads it), at most the
workload's ``concurrency`` at once, each asked of its agent within the workload's
``timeout``. Each task gets a thread of its own, created before it is asked and named in its
message, so what the agents did for it can be read back from the thread store afterwards:
the tool calls with their arguments (the ``tool_calls`` of the assistant messages) and the
steps that parsed (a malformed output is never stored, see ``agents/llm.py``). A task
answered by an LLM agent reports its model turns, the malformed ones, and its tokens
(``AgentReply.model_turns``, ``malformed_turns``). A failed task reports no counts, so its
malformed outputs are what its error says (``malformed model output twice``: two, ``no final
answer within N model calls``: the N less the stored steps). The run's exact count of
malformed outputs comes from the agents' log events: the ``malformed_turns`` of every
``agent.turn`` event (one per turn, failed ones too; a delegated turn is counted in its own
event and its caller's), or, from agents that log no ``agent.turn``, the ``agent.malformed``
events (one per first malformed output) plus one per ``malformed ... twice`` failure. The
larger of that count and the records' own is the run's (log events are dropped when logging
is set above ``info``).
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import structlog

from actoros.agents import AgentError, AgentReply, UserMessage
from actoros.config import Config, WorkloadTask
from actoros.core import ActorRef, AskTimeout
from actoros.inference.engines import model_id
from actoros.kernel import CreateThread, Read, ThreadMessage, ThreadNotFound

from ..assembly import start_system
from ..host import System
from ..run import engine_ready
from ..workload import workload_tasks
from .scoring import TaskRecord, ToolUse

__all__ = [
    "RunRecord",
    "config_tools",
    "eval_config",
    "evaluate",
    "thread_steps",
    "workload_task_ids",
]

log = structlog.get_logger("actoros.eval")

_TWICE = "malformed model output twice"
_NO_ANSWER = re.compile(r"no final answer within (\d+) model calls")


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One run of a workload: its tasks' records, the malformed outputs counted over the
    whole run, the model, and the seconds the run took once the engine was up."""

    constrain: bool
    model: str | None
    records: tuple[TaskRecord, ...]
    malformed: int
    seconds: float
    engine_start_seconds: float


def workload_task_ids(config: Config) -> list[str]:
    """The ids of the workload's tasks, as ``actoros run`` gives them."""
    return [task.id for task in workload_tasks(config) if task.id is not None]


def config_tools(config: Config) -> set[str]:
    """Every tool an agent of ``config`` may call (its ``tools``, its rules' tools)."""
    tools = {tool for agent in config.agents for tool in agent.tools}
    tools |= {rule.tool for agent in config.agents for rule in agent.rules if rule.tool}
    return tools


def eval_config(config: Config, state_dir: Path, *, constrain: bool) -> Config:
    """``config`` for an evaluation: every state file under ``state_dir``, no gateway, and
    every agent's ``constrain`` set to ``constrain``."""
    services = config.services
    return msgspec.structs.replace(
        config,
        system=msgspec.structs.replace(config.system, state_dir=str(state_dir)),
        services=msgspec.structs.replace(
            services,
            scheduler=msgspec.structs.replace(
                services.scheduler, db=str(state_dir / "scheduler.sqlite")
            ),
            threads=msgspec.structs.replace(services.threads, db=str(state_dir / "threads.sqlite")),
        ),
        agents=tuple(msgspec.structs.replace(a, constrain=constrain) for a in config.agents),
        gateway=None,
    )


async def evaluate(
    config: Config, *, constrain: bool, stop: asyncio.Event | None = None
) -> RunRecord:
    """Run ``config``'s workload once (see the module docstring) and record every task."""
    if config.workload is None:
        raise ValueError("the config has no workload: an evaluation runs its tasks")
    stop = stop or asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="actoros-eval-") as folder:
        config = eval_config(config, Path(folder), constrain=constrain)
        with _malformed_events() as events:
            began = time.perf_counter()
            system = await start_system(config)
            try:
                await engine_ready(system, stop)
                ready = time.perf_counter()
                system.open.set()
                records = await _run_tasks(system, workload_tasks(config), stop)
                done = time.perf_counter()
            finally:
                await system.shutdown(timeout=30.0)
    turns = [e for e in events if e["event"] == "agent.turn"]
    if turns:
        counted = sum(int(e.get("malformed_turns", 0)) for e in turns)
    else:
        twice = sum(1 for r in records if r.error is not None and _TWICE in r.error)
        counted = sum(1 for e in events if e["event"] == "agent.malformed") + twice
    inference = config.inference
    return RunRecord(
        constrain=constrain,
        model=model_id(inference) if inference is not None else None,
        records=tuple(records),
        malformed=max(counted, sum(r.malformed for r in records)),
        seconds=round(done - ready, 3),
        engine_start_seconds=round(ready - began, 3),
    )


async def _run_tasks(
    system: System, tasks: Sequence[WorkloadTask], stop: asyncio.Event
) -> list[TaskRecord]:
    workload = system.config.workload
    assert workload is not None
    gate = asyncio.Semaphore(workload.concurrency)
    records: dict[str, TaskRecord] = {}

    async def one(task: WorkloadTask) -> None:
        async with gate:
            if stop.is_set():
                return
            asked = asyncio.ensure_future(run_task(system, task, workload.timeout))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({asked, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not asked.done():  # stopped: the run is void, its tasks are not waited for
                asked.cancel()
                await asyncio.gather(asked, return_exceptions=True)
                return
            record = asked.result()
        records[record.id] = record
        log.info(
            "eval.task",
            task=record.id,
            ok=record.error is None,
            tools=[use.tool for use in record.tools],
            seconds=record.seconds,
        )

    for priority in sorted({task.priority for task in tasks}):
        await asyncio.gather(*(one(t) for t in tasks if t.priority == priority))
    return [records[t.id] for t in tasks if t.id in records]


async def run_task(system: System, task: WorkloadTask, timeout: float) -> TaskRecord:
    """Ask ``task`` of its agent in a thread of its own and record what it came to."""
    assert task.id is not None and task.agent is not None
    threads = system.service("threads")
    assert threads is not None
    message = _message(task.input)
    if message.thread_id is None:
        thread_id = await threads.ask(CreateThread(title=f"eval:{task.id}"), timeout=30.0)
        message = msgspec.structs.replace(message, thread_id=thread_id)
    assert message.thread_id is not None
    before = await _read(threads, message.thread_id, limit=1)
    last_seq = before[-1].seq if before else -1
    began = time.perf_counter()
    reply: AgentReply | None = None
    error: str | None = None
    ref = system.agent(task.agent)
    try:
        if ref is None:
            raise AgentError(task.agent, "no such agent is running")
        answer = await ref.ask(message, timeout=timeout)
        if not isinstance(answer, AgentReply):
            raise AgentError(task.agent, f"answered {type(answer).__name__}")
        reply = answer
    except AskTimeout:
        error = f"timed out after {timeout:g} s"
    except Exception as exc:  # an agent's error is the task's result
        error = str(exc) if isinstance(exc, AgentError) else f"{type(exc).__name__}: {exc}"
    seconds = round(time.perf_counter() - began, 4)
    messages = await _read(threads, message.thread_id)
    tools, valid = thread_steps([m for m in messages if m.seq > last_seq])
    return _record(task, reply, error, tools, valid, seconds)


async def _read(threads: ActorRef, thread_id: str, limit: int | None = None) -> list[ThreadMessage]:
    """The thread's messages; none when it does not exist (a task's input may name a thread
    of its own that no one created: its agent then fails the task, and nothing is recorded)."""
    try:
        messages = await threads.ask(Read(thread_id=thread_id, limit=limit), timeout=30.0)
    except ThreadNotFound:
        return []
    return list(messages)


def _record(
    task: WorkloadTask,
    reply: AgentReply | None,
    error: str | None,
    tools: tuple[ToolUse, ...],
    valid: int,
    seconds: float,
) -> TaskRecord:
    assert task.id is not None
    if reply is not None:
        if reply.model_turns:
            calls, malformed = reply.model_turns, reply.malformed_turns
        else:  # a rule's reply, or an agent that does not count its turns
            used_model = reply.prompt_tokens + reply.completion_tokens > 0
            calls = reply.steps if used_model else 0
            malformed = max(0, calls - valid)
        return TaskRecord(
            id=task.id,
            input=task.input,
            output=reply.text,
            tools=tools,
            model_calls=calls,
            malformed=malformed,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            seconds=seconds,
        )
    malformed = 0
    if error is not None and _TWICE in error:
        malformed = 2
    elif error is not None and (limit := _NO_ANSWER.search(error)) is not None:
        malformed = max(0, int(limit.group(1)) - valid)
    return TaskRecord(
        id=task.id,
        input=task.input,
        error=error,
        tools=tools,
        model_calls=valid + malformed,
        malformed=malformed,
        seconds=seconds,
    )


def thread_steps(messages: Sequence[ThreadMessage]) -> tuple[tuple[ToolUse, ...], int]:
    """The tool calls among ``messages`` (a task's part of a thread) and how many model steps
    they record (assistant messages: tool calls, delegations, final answers)."""
    tools: list[ToolUse] = []
    steps = 0
    for message in messages:
        if message.role != "assistant":
            continue
        steps += 1
        call = message.tool_calls
        if isinstance(call, dict) and isinstance(call.get("tool"), str):
            arguments = call.get("arguments")
            tools.append(ToolUse(call["tool"], arguments if isinstance(arguments, dict) else {}))
    return tuple(tools), steps


def _message(value: str | dict[str, Any]) -> UserMessage:
    # as the workload handler builds it (``workload.py``)
    if isinstance(value, str):
        return UserMessage(text=value)
    rest = {k: v for k, v in value.items() if k not in ("text", "thread_id")}
    thread_id = value.get("thread_id")
    return UserMessage(
        text=str(value.get("text", "")),
        thread_id=thread_id if isinstance(thread_id, str) else None,
        data=rest,
    )


@contextmanager
def _malformed_events() -> Iterator[list[dict[str, Any]]]:
    """The ``agent.turn`` and ``agent.malformed`` log events while the block runs. A
    processor is put in front of structlog's chain in place, as ``structlog.testing.capture_logs``
    does, because loggers cache the chain on first use."""
    seen: list[dict[str, Any]] = []

    def record(logger: Any, method: str, event_dict: Any) -> Any:
        if event_dict.get("event") in ("agent.turn", "agent.malformed"):
            seen.append(dict(event_dict))
        return event_dict

    processors = structlog.get_config()["processors"]
    processors.insert(0, record)
    try:
        yield seen
    finally:
        processors.remove(record)
