"""What the agent tests run agents on: a real-time system with an inference actor on a test
engine, a thread store and a tool service (``start_kernel``), and ``Kernel`` to spawn LLM
agents on it and read their threads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

import msgspec

from actoros import ActorRef, ActorSystem
from actoros.agents import LLMAgent
from actoros.config.schema import AgentConfig
from actoros.inference.actor import InferenceActor
from actoros.inference.fake_engine import FakeEngine
from actoros.kernel.threads import Read, ThreadMessage, ThreadStore
from actoros.kernel.tools import ToolRegistry, ToolService
from actoros.testing import test_system

E = TypeVar("E", bound=FakeEngine)


def tool_parameters(registry: ToolRegistry) -> dict[str, dict[str, Any]]:
    """Tool name → its argument schema, as the assembly gives an ``LLMAgent``."""
    return {s["name"]: s["parameters"] for s in registry.schemas()}


async def no_summary(messages: list[ThreadMessage], previous: str | None) -> str:
    return previous or ""


class Kernel(msgspec.Struct, Generic[E]):
    system: ActorSystem
    engine: E
    inference: ActorRef
    threads: ActorRef
    tools: ActorRef
    agents: dict[str, ActorRef]

    async def spawn(self, config: AgentConfig, cls: type = LLMAgent, **kwargs: Any) -> ActorRef:
        ref = await self.system.spawn(
            cls,
            config,
            inference=self.inference,
            threads=self.threads,
            tools=self.tools,
            resolve_agent=self.agents.get,
            tool_schemas=ToolRegistry.with_builtins().summaries(),
            tool_parameters=tool_parameters(ToolRegistry.with_builtins()),
            **kwargs,
        )
        self.agents[config.name] = ref
        return ref

    async def thread(self, thread_id: str) -> list[tuple[str, str]]:
        messages = await self.threads.ask(Read(thread_id=thread_id))
        return [(m.role, m.content) for m in messages]


@contextlib.asynccontextmanager
async def start_kernel(engine: E) -> AsyncIterator[Kernel[E]]:
    async with test_system(real_time=True) as system:
        inference = await system.spawn(InferenceActor, lambda: engine, log_every=None)
        threads = await system.spawn(ThreadStore, no_summary)
        tools = await system.spawn(ToolService, ToolRegistry.with_builtins())
        yield Kernel(system, engine, inference, threads, tools, {})
