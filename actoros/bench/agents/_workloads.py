"""The systems ``actoros bench agents`` drives, assembled from the real parts, and the driver.

Rule workload: a ``/kernel`` supervisor with the tool service (built-in tools, the kernel's
``AccessControl``), then ``groups`` supervisors of rule agents. Each agent has two rules —
a message whose text contains "calc" calls the ``calculator`` tool with the message's
``expr`` field, anything else gets a templated reply — so half the tasks are a syscall to the
tool service (permission-checked, run, answered) and half are answered by the agent itself.

LLM workload: ``/kernel`` holds the inference actor (one engine), the thread store (SQLite in
a temporary folder) and the tool service; 32 LLM agents under one supervisor. A task is a
``UserMessage`` on a new thread: the agent creates the thread, appends the user turn, has the
thread store build the prompt, asks the inference actor, parses the output and appends its
answer — every syscall of a real turn.

A task's latency runs from the ask to its reply; throughput is tasks over the wall time of
the whole batch, sent with at most ``concurrency`` tasks in flight.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import msgspec

from actoros import ActorRef, ActorSystem, ChildSpec, StartChild, SupervisorSpec
from actoros.agents import AgentError, AgentReply, LLMAgent, RuleAgent, UserMessage
from actoros.agents.permissions import access_permissions
from actoros.config.schema import AgentConfig, Rule
from actoros.inference.actor import InferenceActor
from actoros.inference.engine import Engine
from actoros.inference.messages import ChatMessage, Completion, Generate
from actoros.kernel import AccessControl, ThreadMessage, ThreadStore, ToolRegistry, ToolService
from actoros.kernel.tools import builtin_tools

from .._common import wait_engine_ready


class Batch(msgspec.Struct, frozen=True, kw_only=True):
    """What one batch of tasks measured."""

    tasks: int
    failed: int
    seconds: float
    latencies_ms: list[float]  # of the tasks that succeeded
    steps: int  # model calls (LLM) or rule actions, summed over successful tasks
    errors: list[str]  # the first few failures, for the notes

    @property
    def tasks_per_s(self) -> float:
        return (self.tasks - self.failed) / self.seconds if self.seconds > 0 else 0.0


async def drive(
    agents: list[ActorRef],
    make_task: Callable[[int], UserMessage],
    tasks: int,
    concurrency: int,
    timeout: float,
) -> Batch:
    """Ask ``tasks`` tasks (task i to agent ``i % len(agents)``), ``concurrency`` at a time."""
    latencies: list[float] = []
    errors: list[str] = []
    failed = 0
    steps = 0
    next_task = 0

    async def worker() -> None:
        nonlocal failed, steps, next_task
        while next_task < tasks:
            i = next_task
            next_task += 1
            message = make_task(i)
            began = perf_counter()
            try:
                reply = await agents[i % len(agents)].ask(message, timeout=timeout)
            except (AgentError, TimeoutError, Exception) as exc:  # a failed task, counted
                failed += 1
                if len(errors) < 5:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append((perf_counter() - began) * 1000.0)
            steps += reply.steps if isinstance(reply, AgentReply) else 1

    began = perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, tasks))))
    seconds = perf_counter() - began
    return Batch(
        tasks=tasks,
        failed=failed,
        seconds=seconds,
        latencies_ms=latencies,
        steps=steps,
        errors=errors,
    )


# -- rule agents --------------------------------------------------------------------------------


def rule_config(name: str) -> AgentConfig:
    return AgentConfig(
        name=name,
        kind="rule",
        tools=("calculator",),
        rules=(
            Rule(contains={"text": "calc"}, tool="calculator", args={"expression": "{expr}"}),
            Rule(reply="{text}: noted by " + name),
        ),
    )


def rule_task(i: int) -> UserMessage:
    if i % 2 == 0:
        return UserMessage(text=f"calc order {i}", data={"expr": f"({i} + 7) * 3 / 2"})
    return UserMessage(text=f"status of order {i}")


async def spawn_kernel_tools(
    system: ActorSystem, access: AccessControl, names: dict[str, str]
) -> ActorRef:
    """``/kernel`` with the tool service; returns the tool service's ref."""
    spec = SupervisorSpec(
        strategy="one_for_one",
        children=[
            ChildSpec(
                "tools",
                ToolService,
                args=(ToolRegistry(builtin_tools()),),
                kwargs={"access": access, "agents": names},
            )
        ],
    )
    await system.spawn_supervisor(spec, name="kernel")
    tools = system.lookup("/kernel/tools")
    assert tools is not None
    return tools


async def spawn_rule_agents(system: ActorSystem, agents: int, groups: int) -> list[ActorRef]:
    """``agents`` rule agents in ``groups`` one_for_one supervisors (``/rules-g/rule-i``)."""
    access = AccessControl()
    names: dict[str, str] = {}  # actor path -> agent name, for the tool service's check
    tools = await spawn_kernel_tools(system, access, names)
    refs: list[ActorRef] = []
    per_group = -(-agents // groups)
    for g in range(groups):
        children = []
        for i in range(g * per_group, min(agents, (g + 1) * per_group)):
            config = rule_config(f"rule-{i}")
            access.grant(config.name, access_permissions(config))
            names[f"/rules-{g}/{config.name}"] = config.name
            children.append(
                ChildSpec(
                    config.name,
                    RuleAgent,
                    args=(config,),
                    kwargs={"tools": tools, "access": access},
                )
            )
        sup = SupervisorSpec(strategy="one_for_one", max_restarts=10, within=5.0, children=children)
        await system.spawn_supervisor(sup, name=f"rules-{g}")
    for i in range(agents):
        ref = system.lookup(f"/rules-{i // per_group}/rule-{i}")
        assert ref is not None, f"rule agent {i} did not start"
        refs.append(ref)
    return refs


# -- LLM agents ---------------------------------------------------------------------------------

SYSTEM_PROMPT = "You are a helpful support agent for an online shop. Answer in one sentence."
QUESTIONS = (
    "Where is my order {i}?",
    "Can I return the shoes from order {i}?",
    "What payment methods do you take?",
    "How long does shipping to Lyon take?",
)


def llm_config(name: str, max_tokens: int) -> AgentConfig:
    return AgentConfig(
        name=name,
        kind="llm",
        system_prompt=SYSTEM_PROMPT,
        tools=("calculator",),
        max_steps=3,
        max_tokens=max_tokens,
        temperature=0.0,
        constrain=False,  # free text, as the earlier runs of this series: comparable numbers
    )


def llm_task(i: int) -> UserMessage:
    return UserMessage(text=QUESTIONS[i % len(QUESTIONS)].format(i=i))


def model_summarizer(inference: ActorRef) -> Callable[[list[ThreadMessage], str | None], Any]:
    """The thread store's summarizer: the same model folds older turns (rare in this bench:
    each task starts a new thread)."""

    async def summarize(messages: list[ThreadMessage], previous: str | None) -> str:
        text = "\n".join(f"{m.role}: {m.content}" for m in messages)
        if previous:
            text = f"Summary so far: {previous}\n{text}"
        gen = Generate(
            messages=(
                ChatMessage("system", "Summarize this conversation in two sentences."),
                ChatMessage("user", text[-4000:]),
            ),
            max_tokens=64,
        )
        completion = await inference.ask(gen, timeout=120.0)
        return completion.text if isinstance(completion, Completion) else str(completion)

    return summarize


async def spawn_llm_agents(
    system: ActorSystem,
    engine_factory: Callable[[], Engine],
    agents: int,
    max_tokens: int,
    context_tokens: int,
    state_dir: Path,
    *,
    agent_config: Callable[[str, int], AgentConfig] | None = None,
) -> list[ActorRef]:
    """``/kernel`` (inference, threads, tools) and ``agents`` LLM agents under ``/llm``
    (each ``agent_config(name, max_tokens)``, default ``llm_config``)."""
    make_config = agent_config or llm_config
    access = AccessControl()
    names: dict[str, str] = {}
    registry = ToolRegistry(builtin_tools())
    kernel = SupervisorSpec(
        strategy="one_for_one",
        children=[
            ChildSpec(
                "inference",
                InferenceActor,
                args=(engine_factory,),
                kwargs={"log_every": None},
                shutdown=60.0,
            ),
            ChildSpec(
                "tools", ToolService, args=(registry,), kwargs={"access": access, "agents": names}
            ),
        ],
    )
    kernel_sup = await system.spawn_supervisor(kernel, name="kernel")
    inference = system.lookup("/kernel/inference")
    tools = system.lookup("/kernel/tools")
    assert inference is not None and tools is not None
    # the store's summarizer needs the inference ref, so it joins /kernel once that exists
    store = ChildSpec(
        "threads",
        ThreadStore,
        args=(model_summarizer(inference), str(state_dir / "threads.sqlite")),
    )
    threads = await kernel_sup.ask(StartChild(store))
    await wait_engine_ready(system, inference)
    children = []
    for i in range(agents):
        config = make_config(f"llm-{i}", max_tokens)
        access.grant(config.name, access_permissions(config))
        names[f"/llm/{config.name}"] = config.name
        children.append(
            ChildSpec(
                config.name,
                LLMAgent,
                args=(config,),
                kwargs={
                    "inference": inference,
                    "threads": threads,
                    "tools": tools,
                    "tool_schemas": registry.summaries(config.tools),
                    "tool_parameters": {
                        s["name"]: s["parameters"] for s in registry.schemas(config.tools)
                    },
                    "access": access,
                    "context_tokens": context_tokens,
                },
            )
        )
    sup = SupervisorSpec(strategy="one_for_one", max_restarts=10, within=5.0, children=children)
    await system.spawn_supervisor(sup, name="llm")
    refs = [system.lookup(f"/llm/llm-{i}") for i in range(agents)]
    assert all(r is not None for r in refs)
    return refs  # type: ignore[return-value]


def temp_state_dir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="actoros-bench-agents-")
