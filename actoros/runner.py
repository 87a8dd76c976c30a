"""From a typed ``Config`` to a running system: the assembly behind ``actoros run``.

``run_system(config, out=...)`` starts, in this order (and stops in reverse):

1. ``/kernel`` — a one_for_one supervisor of the kernel services: ``scheduler``, ``threads``,
   ``kv``, ``tools``, ``pubsub`` and, when the config has an ``inference`` section,
   ``inference`` (engine ``vllm`` with the configured model, or ``fake`` only when the config
   says ``engine: fake``);
2. one supervisor per agent group (``/<group>/<agent>``), strategy and intensity from the
   config; agents in no group run in an implicit ``/agents`` group. Every agent shares one
   ``AccessControl`` with the tool service and pub/sub, so a syscall is judged the same way
   wherever it lands; topic subscribers are subscribed once the agents are up;
3. with a ``gateway`` section, ``/gateway``: the HTTP server (OpenAI-compatible API, metrics,
   live page). It serves while the workload runs, or until ``stop_event`` without one.

One process owns a state dir: ``start_system`` locks it (``StateDirLock``) before any of its
SQLite files opens, and a second system on the same dir is a ``ConfigError`` naming the
holder's pid. A SQLite file that cannot be opened is a ``ConfigError`` naming the file.

Then the workload: each task goes through the scheduler as a durable ``workload`` task (id
``workload:<task id>``, payload its agent and input) whose handler asks the named agent, at
most ``concurrency`` at once, each bounded by ``timeout``. A task's outcome — the reply or the
error — is journaled, so a run killed midway resumes the unfinished tasks on the next run and
answers finished ones from the journal without asking the agent again, as long as the task
still asks the same agent the same input (otherwise it runs again). Ids not given in the
workload come from what the task asks (``task-<digest>``, ``-2``, ``-3``... for repeats), so
inserting or removing a line changes no other task's id (``fresh=True``, ``actoros run
--fresh``: the journal's finished workload tasks are forgotten first, so every task is asked
again; tasks a killed run left unfinished still resume). A stop (``stop_event``, Ctrl-C,
SIGTERM) is not an outcome: once the system is stopping, a task whose agent could not answer
is interrupted, not finished — it stays pending and the next run asks it. Each result is
written to ``out`` as one JSON line ``{"id", "agent", "input", "output" | "error",
"seconds"}`` in completion order; after a stop, every task the journal holds as finished gets
its line before ``run_system`` returns.

No workload: the system serves until ``stop_event`` is set (the CLI sets it on Ctrl-C and
SIGTERM). This module takes typed config only; it never reads YAML.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import msgspec
import structlog

from actoros.agents import (
    AgentDelta,
    AgentError,
    AgentReply,
    AgentStream,
    LLMAgent,
    RuleAgent,
    UserMessage,
)
from actoros.agents.permissions import access_permissions
from actoros.config import AgentConfig, Config, ConfigError, Problem, WorkloadTask
from actoros.config import load_workload_file as _load_workload_file
from actoros.core import (
    Actor,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    ChildSpec,
    LifecycleEvent,
    MailboxSpec,
    SupervisorSpec,
)
from actoros.core import Backoff as CoreBackoff
from actoros.gateway import GatewayActor
from actoros.inference.actor import InferenceActor, InferenceMetrics, InferenceStats
from actoros.inference.engine import Engine, make_engine
from actoros.inference.messages import ChatMessage, Completion, Generate
from actoros.kernel import (
    AccessControl,
    KVService,
    PubSub,
    Scheduler,
    SubmitAndWait,
    Subscribe,
    Task,
    TaskResult,
    ThreadMessage,
    ThreadStore,
    ToolRegistry,
    ToolService,
    load_user_tool,
)
from actoros.kernel._sqlite import DatabaseOpenError
from actoros.kernel.scheduler import (
    Drain,
    Forget,
    TaskInterrupted,
    journaled_results,
    task_digest,
)
from actoros.kernel.state_lock import StateDirBusy, StateDirLock

__all__ = ["KERNEL", "RunSummary", "System", "run_system", "start_system"]

log = structlog.get_logger("actoros.runner")

KERNEL = "kernel"
GATEWAY = "gateway"  # the HTTP gateway's actor, /gateway, when the config has `gateway:`
IMPLICIT_GROUP = "agents"
WORKLOAD_KIND = "workload"
DEFAULT_CONTEXT = 2048  # the fake engine's default max_model_len
ENGINE_START_TIMEOUT = 900.0  # seconds a model may take to load
CHAT_TIMEOUT = 300.0  # seconds a chat turn may take


class RunSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What a run did: tasks in the workload, answered, failed, and how long it took."""

    tasks: int = 0
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    output_tokens: int = 0


class System:
    """A started system: the ``ActorSystem``, its kernel services and agents by name."""

    def __init__(self, config: Config, actors: ActorSystem) -> None:
        self.config = config
        self.actors = actors
        self.agent_paths: dict[str, str] = {}
        self.agent_names: dict[str, str] = {}  # path -> name (the services name callers by it)
        # set once agents (and the engine) are up: tasks the scheduler resumes from its
        # journal start with the kernel, before the agents they are for exist
        self.open = asyncio.Event()
        # set before anything stops (a shutdown, or the root giving up): from then on an
        # agent that cannot answer was stopped, so its task is interrupted, not finished
        self.stopping = False
        self.lock = StateDirLock(config.system.state_dir)

    def service(self, name: str) -> ActorRef | None:
        return self.actors.lookup(f"/{KERNEL}/{name}")

    def agent(self, name: str) -> ActorRef | None:
        path = self.agent_paths.get(name)
        return self.actors.lookup(path) if path is not None else None

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop everything (agents before the kernel) and give the state dir up. The scheduler
        first stops handing out tasks: what is queued stays queued for the next run."""
        self.stopping = True
        try:
            scheduler = self.service("scheduler")
            if scheduler is not None:
                try:
                    await scheduler.ask(Drain(), timeout=5.0)
                except Exception as exc:  # restarting or gone: its journal keeps the queue
                    log.debug("runner.drain_failed", error=repr(exc))
            await self.actors.shutdown(timeout=timeout)
        finally:
            self.lock.release()


# -- assembly -------------------------------------------------------------------------------


def _problem(path: str, message: str) -> ConfigError:
    return ConfigError("config", [Problem(path, None, message)])


def _normalize_tools(config: Config) -> tuple[Config, dict[str, str]]:
    """Agents may list ``module:function`` tools directly; tool names cannot hold ':', so such
    a tool is registered under its function's name and the agent's lists are rewritten."""
    user = dict(config.services.tools.user)
    agents = []
    for agent in config.agents:
        renamed = {}
        for spec in (*agent.tools, *(agent.permissions.tools or ())):
            if ":" in spec:
                name = spec.rpartition(":")[2].rpartition(".")[2]
                if user.get(name, spec) != spec:
                    raise _problem(f"agents.{agent.name}.tools", f"tool name {name!r} is taken")
                user[name] = spec
                renamed[spec] = name
        if renamed:
            perms = agent.permissions
            if perms.tools is not None:
                perms = msgspec.structs.replace(
                    perms, tools=tuple(renamed.get(t, t) for t in perms.tools)
                )
            agent = msgspec.structs.replace(
                agent, tools=tuple(renamed.get(t, t) for t in agent.tools), permissions=perms
            )
        agents.append(agent)
    return msgspec.structs.replace(config, agents=tuple(agents)), user


def _engine_factory(config: Config) -> Callable[[], Engine]:
    """The inference engine the config names: ``fake`` only when it says so."""
    inference = config.inference
    assert inference is not None
    args = dict(inference.engine_args)
    if inference.engine == "fake":
        return lambda: make_engine("fake", **args)
    from actoros.inference.models import DEFAULT_MODEL
    from actoros.inference.vllm_engine import VLLMEngine

    named = set(inspect.signature(VLLMEngine).parameters) - {"model", "engine_args"}
    direct = {k: v for k, v in args.items() if k in named}
    rest = {k: v for k, v in args.items() if k not in named}
    model = inference.model or DEFAULT_MODEL
    return lambda: make_engine("vllm", model=model, engine_args=rest, **direct)


def _context_tokens(config: Config) -> int:
    if config.services.threads.context_budget is not None:
        return config.services.threads.context_budget
    assert config.inference is not None
    return int(config.inference.engine_args.get("max_model_len", DEFAULT_CONTEXT))


def _summarizer(actors: ActorSystem) -> Callable[[list[ThreadMessage], str | None], Any]:
    """The thread store's ``summarize``: one short model call over the folded turns."""

    async def summarize(messages: list[ThreadMessage], previous: str | None) -> str:
        inference = actors.lookup(f"/{KERNEL}/inference")
        text = "\n".join(f"{m.role}: {m.content}" for m in messages)
        if inference is None:  # no model: keep the newest text, cut to size
            return ((previous or "") + "\n" + text)[-1000:]
        prompt = (
            f"Summary so far: {previous}\n\n" if previous else ""
        ) + f"New turns:\n{text}\n\nWrite an updated summary in at most five sentences."
        gen = Generate(
            messages=(
                ChatMessage("system", "You summarize conversations briefly and exactly."),
                ChatMessage("user", prompt),
            ),
            max_tokens=128,
        )
        completion = await inference.ask(gen, timeout=120.0)
        assert isinstance(completion, Completion)
        return completion.text

    return summarize


def _kernel_spec(config: Config, system: System, access: AccessControl) -> SupervisorSpec:
    actors = system.actors
    services = config.services
    tools_config = services.tools
    user_tools = dict(tools_config.user)
    state = Path(config.system.state_dir)
    workload = config.workload
    workers = services.scheduler.workers
    if workload is not None:
        workers = max(workers, workload.concurrency)
    timeout = workload.timeout if workload is not None else 120.0

    async def run_workload_task(task: Task) -> dict[str, Any]:
        await system.open.wait()
        outcome = await _ask_agent(system, task.payload["agent"], task.payload["input"], timeout)
        if "error" in outcome and system.stopping:  # the stop's doing, not the task's outcome
            raise TaskInterrupted(f"the system is stopping: {outcome['error']}")
        return outcome

    def tool_service() -> Actor:
        kv = actors.lookup(f"/{KERNEL}/kv")
        registry = ToolRegistry.with_builtins(kv)
        for name, spec in user_tools.items():
            registry.register(load_user_tool(spec, name=name))
        return ToolService(
            registry,
            access=access,
            agents=system.agent_names,
            timeout=tools_config.timeout,
            threads=tools_config.threads,
        )

    children = [
        ChildSpec(
            "scheduler",
            Scheduler,
            ({WORKLOAD_KIND: run_workload_task}, services.scheduler.db or ":memory:"),
            {"workers": workers, "policy": services.scheduler.policy},
        ),
        ChildSpec(
            "threads",
            ThreadStore,
            (_summarizer(actors), services.threads.db or ":memory:"),
            {"max_message_bytes": services.threads.max_message_bytes},
        ),
        ChildSpec(
            "kv",
            KVService,
            (str(state / "kv.sqlite"),),
            {"max_value_bytes": services.kv.max_value_bytes},
        ),
        ChildSpec("tools", tool_service),
        ChildSpec("pubsub", PubSub, (), {"access": access, "agents": system.agent_names}),
    ]
    if config.inference is not None:
        inference = config.inference
        children.append(
            ChildSpec(
                "inference",
                InferenceActor,
                (_engine_factory(config),),
                {"max_in_flight": inference.max_in_flight, "max_waiting": inference.max_waiting},
                shutdown=30.0,
            )
        )
    return SupervisorSpec(strategy="one_for_one", max_restarts=10, within=60.0, children=children)


def _groups(config: Config) -> list[tuple[str, Any, tuple[str, ...]]]:
    """The configured groups, then the implicit one of the agents in no group (the config's
    checks refuse a group named like it, or like the kernel)."""
    grouped = {child for group in config.groups for child in group.children}
    groups: list[tuple[str, Any, tuple[str, ...]]] = [
        (g.name, g, g.children) for g in config.groups
    ]
    rest = tuple(a.name for a in config.agents if a.name not in grouped)
    if rest:
        groups.append((IMPLICIT_GROUP, None, rest))
    return groups


def _agent_spec(
    config: Config,
    agent: AgentConfig,
    system: System,
    access: AccessControl,
    tool_schemas: Mapping[str, str],
) -> ChildSpec:
    timeout = config.workload.timeout if config.workload is not None else 120.0
    mailbox = MailboxSpec(capacity=agent.mailbox) if agent.mailbox is not None else None

    def resolve(name: str) -> ActorRef | None:
        return system.agent(name)

    def service(name: str) -> ActorRef | None:
        return system.service(name)

    if agent.kind == "rule":

        def factory() -> Actor:
            return RuleAgent(
                agent, resolve_agent=resolve, tools=service("tools"),
                scheduler=service("scheduler"), access=access, timeout=timeout,
            )  # fmt: skip
    else:
        context = _context_tokens(config)

        def factory() -> Actor:
            inference, threads = service("inference"), service("threads")
            if inference is None or threads is None:
                raise RuntimeError(f"agent {agent.name!r}: the kernel is not running")
            return LLMAgent(
                agent, inference=inference, threads=threads, tools=service("tools"),
                resolve_agent=resolve, tool_schemas=tool_schemas, access=access,
                timeout=timeout, context_tokens=context,
            )  # fmt: skip

    return ChildSpec(agent.name, factory, restart=agent.restart, mailbox=mailbox)


async def start_system(config: Config) -> System:
    """Start the kernel, then the agent groups (see the module docstring)."""
    config, user_tools = _normalize_tools(config)
    config = msgspec.structs.replace(
        config,
        services=msgspec.structs.replace(
            config.services,
            tools=msgspec.structs.replace(config.services.tools, user=user_tools),
        ),
    )
    groups = _groups(config)
    # rest_for_one: agents and the gateway hold refs to the kernel's services, so a restart
    # of the whole kernel (its own intensity exceeded) restarts everything started after it
    actors = ActorSystem(config.system.name, strategy="rest_for_one")
    system = System(config, actors)
    _lock_state_dir(system)
    access = AccessControl({a.name: access_permissions(a) for a in config.agents})
    for name, _, children in groups:
        for child in children:
            path = f"/{name}/{child}"
            system.agent_paths[child] = path
            system.agent_names[path] = child
    try:
        await actors.start()
        try:
            await actors.spawn_supervisor(_kernel_spec(config, system, access), name=KERNEL)
        except DatabaseOpenError as exc:
            raise _problem(_database_key(config, exc.path), str(exc)) from exc
        # what the LLM agents' prompts say of each tool (the kv tools need the running store)
        registry = ToolRegistry.with_builtins(system.service("kv"))
        for tool_name, spec in user_tools.items():
            registry.register(load_user_tool(spec, name=tool_name))
        schemas = registry.summaries()
        by_name = {a.name: a for a in config.agents}
        for name, group, children in groups:
            specs = [_agent_spec(config, by_name[c], system, access, schemas) for c in children]
            if group is None:
                spec = SupervisorSpec(children=specs)
            else:
                b = group.backoff
                spec = SupervisorSpec(
                    strategy=group.strategy,
                    max_restarts=group.max_restarts,
                    within=group.within,
                    children=specs,
                    backoff=CoreBackoff(min=b.min, max=b.max, jitter=b.jitter),
                )
            await actors.spawn_supervisor(spec, name=name)
        await _subscribe(system)

        # Subscriptions live in the pub/sub actor and name subscribers by ref: a fresh pub/sub
        # actor (restarted, or new after a restart of the whole kernel) needs them again, and
        # so does a subscriber that is a new actor (its group restarted after the kernel).
        # Subscribing twice is harmless; dead subscribers are dropped by the service.
        watched = {f"/{KERNEL}/pubsub"} | {
            system.agent_paths[s] for topic in config.topics for s in topic.subscribers
        }

        def resubscribe_on_start(event: LifecycleEvent) -> None:
            if event.kind in ("restarted", "started") and event.path in watched:
                _resubscribe(system)

        actors.events.subscribe(resubscribe_on_start, LifecycleEvent)

        def root_gives_up(event: LifecycleEvent) -> None:  # it stops everything next
            if event.kind == "escalated" and event.path == "/":
                system.stopping = True

        actors.events.subscribe(root_gives_up, LifecycleEvent)
        if config.gateway is not None:  # last: it stops first, before the agents it serves
            await actors.spawn(GatewayActor, system, name=GATEWAY, shutdown=10.0)
    except BaseException:
        await system.shutdown(timeout=30.0)
        raise
    log.info("system.ready", system=config.system.name, agents=len(config.agents),
             groups=[g[0] for g in groups])  # fmt: skip
    return system


def _lock_state_dir(system: System) -> None:
    """Own the state dir before any SQLite file in it opens (see ``StateDirLock``)."""
    state_dir = system.config.system.state_dir
    try:
        system.lock.acquire()
    except StateDirBusy as exc:
        holder = f"pid {exc.pid}" if exc.pid is not None else "another process"
        raise _problem(
            "system.state_dir",
            f"{state_dir} is in use by another actoros run ({holder}): stop that run first, "
            "or give this one another system.state_dir",
        ) from exc
    except OSError as exc:
        raise _problem(
            "system.state_dir", f"cannot use {state_dir} as the state dir: {exc.strerror or exc}"
        ) from exc


def _database_key(config: Config, path: str) -> str:
    """The config key that names the SQLite file at ``path``."""
    services = config.services
    if path == services.scheduler.db:
        return "services.scheduler.db"
    if path == services.threads.db:
        return "services.threads.db"
    return "system.state_dir"


def _subscriptions(system: System) -> list[Subscribe]:
    """The configured topic subscriptions of the running agents."""
    subscriptions = []
    for topic in system.config.topics:
        for subscriber in topic.subscribers:
            ref = system.agent(subscriber)
            if ref is not None:
                subscriptions.append(Subscribe(topic=topic.name, ref=ref))
    return subscriptions


async def _subscribe(system: System) -> None:
    pubsub = system.service("pubsub")
    if pubsub is not None:
        for subscription in _subscriptions(system):
            await pubsub.ask(subscription)


def _resubscribe(system: System) -> None:
    pubsub = system.service("pubsub")
    if pubsub is not None:
        for subscription in _subscriptions(system):
            pubsub.tell(subscription)


# -- the workload ---------------------------------------------------------------------------


def _message(value: str | dict[str, Any]) -> UserMessage:
    if isinstance(value, str):
        return UserMessage(text=value)
    rest = {k: v for k, v in value.items() if k not in ("text", "thread_id")}
    return UserMessage(text=str(value.get("text", "")), thread_id=value.get("thread_id"),
                       data=rest)  # fmt: skip


async def _ask_agent(system: System, agent: str, value: Any, timeout: float) -> dict[str, Any]:
    """One workload task: the agent's reply or the error, and the seconds it took."""
    began = time.perf_counter()
    ref = system.agent(agent)
    try:
        if ref is None:
            raise AgentError(agent, "no such agent is running")
        reply = await ref.ask(_message(value), timeout=timeout)
        if not isinstance(reply, AgentReply):
            raise AgentError(agent, f"answered {type(reply).__name__}")
        outcome: dict[str, Any] = {"output": reply.text}
    except AskTimeout:
        outcome = {"error": f"timed out after {timeout:g} s"}
    except Exception as exc:  # an agent's error is the task's result, not a worker crash
        error = str(exc) if isinstance(exc, AgentError) else f"{type(exc).__name__}: {exc}"
        outcome = {"error": error}
    outcome["seconds"] = round(time.perf_counter() - began, 4)
    return outcome


def workload_tasks(config: Config) -> list[WorkloadTask]:
    """The workload's tasks, each with its id and agent filled in.

    A task without an id gets one from what it asks: ``task-<digest of agent and input>``,
    then ``-2``, ``-3``... for the second and third task that asks the same (ids given in the
    workload are never taken). The same workload gives the same ids on every run, and adding
    or removing a task changes no other task's id."""
    workload = config.workload
    if workload is None:
        return []
    tasks = list(workload.tasks)
    if workload.file is not None:
        tasks = _load_workload_file(workload.file)
    given = {task.id for task in tasks if task.id is not None}
    repeats: dict[str, int] = {}
    filled = []
    for task in tasks:
        agent = task.agent or workload.agent
        task_id = task.id
        if task_id is None:
            base = f"task-{task_digest(WORKLOAD_KIND, _payload(agent, task.input))[:16]}"
            n = repeats.get(base, 0)
            while task_id is None or task_id in given:
                n += 1
                task_id = base if n == 1 else f"{base}-{n}"
            repeats[base] = n
        filled.append(msgspec.structs.replace(task, id=task_id, agent=agent))
    return filled


def _payload(agent: str | None, value: str | dict[str, Any]) -> dict[str, Any]:
    return {"agent": agent, "input": value}


def _job(task: WorkloadTask) -> Task:
    """The scheduler task of a workload task: what it asks is its payload (and identity)."""
    return Task(
        kind=WORKLOAD_KIND,
        payload=_payload(task.agent, task.input),
        priority=task.priority,
        id=f"workload:{task.id}",
    )


class _Lines:
    """The result lines of a run, one per task: which tasks have theirs, how many answered."""

    def __init__(self, out: TextIO, tasks: list[WorkloadTask]) -> None:
        self.out = out
        self.tasks = {task.id: task for task in tasks}
        self.written: set[str | None] = set()
        self.ok = self.failed = 0

    def write(self, task: WorkloadTask, result: TaskResult) -> None:
        line: dict[str, Any] = {"id": task.id, "agent": task.agent, "input": task.input}
        value = result.result if result.status == "done" and isinstance(result.result, dict) else {}
        if "output" in value:
            line["output"] = value["output"]
            self.ok += 1
        else:
            line["error"] = value.get("error") or result.error or "failed"
            self.failed += 1
        line["seconds"] = value.get("seconds", 0.0)
        self.out.write(msgspec.json.encode(line).decode() + "\n")
        self.out.flush()
        self.written.add(task.id)

    async def add_journaled(self, journal: str) -> int:
        """After the system stopped: the line of every task the journal holds as finished
        that has none yet (finished while the run was stopping, or by an earlier run)."""
        missing = [_job(task) for key, task in self.tasks.items() if key not in self.written]
        if not missing:
            return 0
        results = await journaled_results(journal, missing)
        for result in results:
            self.write(self.tasks[result.id.removeprefix(f"{WORKLOAD_KIND}:")], result)
        return len(results)


class _Progress:
    """One line on a terminal, rewritten in place: done/total and tokens/s."""

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream, self.total, self.done = stream, total, 0
        self.tokens_per_s = 0.0

    def show(self) -> None:
        if self.stream is not None:
            self.stream.write(
                f"\r{self.done}/{self.total} tasks  {self.tokens_per_s:7.1f} tokens/s\x1b[K"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


async def _run_workload(
    system: System,
    out: TextIO,
    progress: TextIO | None,
    stop: asyncio.Event,
    lines: _Lines | None = None,
) -> RunSummary:
    workload = system.config.workload
    assert workload is not None
    if lines is None:
        lines = _Lines(out, workload_tasks(system.config))
    tasks = list(lines.tasks.values())
    gate = asyncio.Semaphore(workload.concurrency)
    bar = _Progress(progress, len(tasks))
    began = time.perf_counter()
    # the handler bounds the agent by ``timeout``; the wait adds room for the queue
    wait = workload.timeout * 2 + 30.0

    async def one(task: WorkloadTask) -> None:
        assert task.id is not None
        async with gate:
            result = await _submit_and_wait(system, _job(task), wait)
        if result is None:  # stopped before it had an outcome: the journal keeps it pending
            return
        lines.write(task, result)
        bar.done += 1
        bar.show()

    async def ticker() -> None:
        inference = system.service("inference")
        while True:
            if inference is not None:
                try:
                    metrics = await inference.ask(InferenceStats(), timeout=2.0)
                    if isinstance(metrics, InferenceMetrics):
                        bar.tokens_per_s = metrics.tokens_per_s
                except Exception:  # progress is best effort
                    pass
            bar.show()
            await asyncio.sleep(0.5)

    ticking = asyncio.ensure_future(ticker()) if progress is not None else None
    running = asyncio.ensure_future(asyncio.gather(*(one(t) for t in tasks)))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        pending = [f for f in (running, stopping, ticking) if f is not None and not f.done()]
        for fut in pending:
            fut.cancel()
        # let them unwind, and take their outcome: a cancelled gather holds a CancelledError
        # that asyncio would report as "exception was never retrieved"
        await asyncio.gather(*pending, return_exceptions=True)
        if ticking is not None:
            bar.close()
    if running in pending:
        log.warning("workload.interrupted", done=bar.done, total=len(tasks))
    else:
        running.result()
    tokens = 0
    inference = system.service("inference")
    if inference is not None:
        try:
            metrics = await inference.ask(InferenceStats(), timeout=2.0)
            tokens = metrics.output_tokens if isinstance(metrics, InferenceMetrics) else 0
        except Exception:
            tokens = 0
    return RunSummary(
        tasks=len(tasks), ok=lines.ok, failed=lines.failed,
        seconds=round(time.perf_counter() - began, 3), output_tokens=tokens,
    )  # fmt: skip


async def _submit_and_wait(system: System, job: Task, wait: float) -> TaskResult | None:
    """The task's result; ``None`` when the system stops before the task has one. A scheduler
    that stops meanwhile (restarted, or the whole kernel restarted) answers ``ActorStopped``:
    the same id is submitted again to its successor, which resumes the task from its journal
    or answers from it."""
    deadline = time.monotonic() + wait
    while True:
        scheduler = system.service("scheduler")
        try:
            if scheduler is None:
                raise ActorStopped("the scheduler is not running")
            result = await scheduler.ask(SubmitAndWait(task=job), timeout=wait)
        except ActorStopped as exc:
            if system.stopping or system.actors.failure is not None:
                return None
            wait = deadline - time.monotonic()
            if wait <= 0:
                return TaskResult(id=job.id or "", status="failed", error=f"{exc}")
            log.info("workload.resubmit", task=job.id, reason=str(exc))
            await asyncio.sleep(0.05)  # the kernel restarts its services meanwhile
            continue
        except Exception as exc:
            return TaskResult(id=job.id or "", status="failed", error=f"{exc}")
        assert isinstance(result, TaskResult)
        return result


async def run_system(
    config: Config,
    *,
    out: TextIO,
    stop_event: asyncio.Event | None = None,
    progress: TextIO | None = None,
    shutdown_timeout: float = 30.0,
    fresh: bool = False,
) -> RunSummary:
    """Start the system of ``config``, run its workload (results to ``out``), stop it.

    Without a workload it serves until ``stop_event`` is set. ``progress``: where the live
    progress line goes (a terminal), or ``None``. ``fresh``: forget the workload tasks the
    journal holds as finished, so they are asked again. Raises ``ConfigError`` for a config the
    runner cannot assemble, and whatever failed when the system could not start.
    """
    stop = stop_event or asyncio.Event()
    lines = _Lines(out, workload_tasks(config)) if config.workload is not None else None
    system = await start_system(config)
    try:
        if config.workload is None:
            system.open.set()
            log.info("system.serving", system=config.system.name)
            await _wait_stop_or_failure(system, stop)
            summary = RunSummary()
        else:
            if fresh:
                await _forget_finished_workload(system)
            await _engine_ready(system, stop)
            system.open.set()
            summary = await _run_workload(system, out, progress, stop, lines)
    finally:
        try:
            await system.shutdown(timeout=shutdown_timeout)
        finally:
            if lines is not None:  # nothing changes the journal any more
                await _add_journaled_lines(lines, config.services.scheduler.db)
    if lines is not None:
        summary = msgspec.structs.replace(summary, ok=lines.ok, failed=lines.failed)
    if system.actors.failure is not None:
        raise RuntimeError(f"the system failed: {system.actors.failure}")
    log.info("system.stopped", **msgspec.structs.asdict(summary))
    return summary


async def _add_journaled_lines(lines: _Lines, journal: str | None) -> None:
    try:
        added = await lines.add_journaled(journal or ":memory:")
    except Exception as exc:  # the results so far are written; the journal keeps the rest
        log.error("workload.journal_unreadable", journal=journal, error=repr(exc))
        return
    if added:
        log.info("workload.lines_from_journal", lines=added)


async def _forget_finished_workload(system: System) -> None:
    """Drop the journal's finished workload tasks before any is submitted (``--fresh``)."""
    scheduler = system.service("scheduler")
    assert scheduler is not None
    forgotten = await scheduler.ask(Forget(kind=WORKLOAD_KIND), timeout=30.0)
    log.info("workload.fresh", system=system.config.system.name, forgotten=forgotten)


async def _engine_ready(system: System, stop: asyncio.Event) -> None:
    """Wait until the inference engine has started (vLLM: tens of seconds), so the workload's
    timeouts and seconds measure answers, not the engine's start. Raises ``RuntimeError`` when
    the kernel gave up on it, or after ``ENGINE_START_TIMEOUT`` seconds."""
    inference = system.service("inference")
    if inference is None:
        return
    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    while not stop.is_set():
        if system.actors.failure is not None:
            raise RuntimeError(f"the inference engine did not start: {system.actors.failure}")
        try:
            metrics = await inference.ask(InferenceStats(), timeout=5.0)
        except Exception as exc:  # restarting: ask again
            log.debug("runner.engine_not_ready", error=repr(exc))
            metrics = None
        if isinstance(metrics, InferenceMetrics) and metrics.engine_ready:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the inference engine did not start in {ENGINE_START_TIMEOUT} s")
        await asyncio.sleep(0.1)


async def _wait_stop_or_failure(system: System, stop: asyncio.Event) -> None:
    waits = {
        asyncio.ensure_future(stop.wait()),
        asyncio.ensure_future(system.actors.wait_terminated()),
    }
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in waits:
            fut.cancel()


async def _chat_turn(ref: ActorRef, message: UserMessage, write: Callable[[str], None]) -> Any:
    """One streamed chat turn written as it comes; the reply's thread id (``None`` on error)."""
    started = False
    try:
        async with asyncio.timeout(CHAT_TIMEOUT):
            stream = await ref.ask(message, timeout=CHAT_TIMEOUT)
            if not isinstance(stream, AgentStream):
                raise AgentError(ref.name, f"answered {type(stream).__name__}, not a stream")
            async with stream:
                write(f"{stream.agent}: ")
                started = True
                async for item in stream:
                    if isinstance(item, AgentDelta):
                        write(item.text)
                    elif isinstance(item, AgentReply):
                        write("\n")
                        return item.thread_id
    except Exception as exc:
        error = f"no reply within {CHAT_TIMEOUT:g} s" if isinstance(exc, TimeoutError) else exc
        write(("\n" if started else "") + f"[error] {error}\n")
    return None


async def chat(
    config: Config,
    agent: str,
    *,
    read_line: Callable[[], str],
    write: Callable[[str], None],
    stop_event: asyncio.Event | None = None,
) -> None:
    """An interactive chat with ``agent``: each line read is a turn of one conversation
    thread. The reply is streamed: ``write`` gets the agent's name as a prefix, then each
    piece of text as the agent produces it (an LLM agent's tokens as the model generates
    them), then a newline; a failed turn writes ``[error] ...``. Ends at the end of input or
    when ``stop_event`` is set (a turn still running is cancelled)."""
    names = sorted(a.name for a in config.agents)
    if agent not in names:  # said before anything (a model) starts
        raise _problem("--chat", f"unknown agent {agent!r} (known: {', '.join(names) or 'none'})")
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def reader() -> None:  # a daemon thread: a blocked read must not hold up the exit
        while True:
            line = read_line()
            loop.call_soon_threadsafe(lines.put_nowait, line)
            if not line:
                return

    system = await start_system(msgspec.structs.replace(config, workload=None))
    try:
        system.open.set()
        ref = system.agent(agent)
        assert ref is not None
        threading.Thread(target=reader, name="actoros-chat-input", daemon=True).start()
        thread_id: str | None = None
        stopped = asyncio.ensure_future(stop.wait())
        try:
            while True:
                next_line = asyncio.ensure_future(lines.get())
                await asyncio.wait({next_line, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not next_line.done():
                    next_line.cancel()
                    break
                line = next_line.result()
                if not line:
                    break
                text = line.strip()
                if not text:
                    continue
                message = UserMessage(text=text, thread_id=thread_id, stream=True)
                turn = asyncio.ensure_future(_chat_turn(ref, message, write))
                await asyncio.wait({turn, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not turn.done():  # stopped mid-turn: cancelling it closes the stream
                    turn.cancel()
                    await asyncio.gather(turn, return_exceptions=True)
                    break
                thread_id = turn.result() or thread_id
        finally:
            stopped.cancel()
    finally:
        await system.shutdown()
