"""The three ways ``actoros bench inference`` drives one engine, and what a run measures.

- **direct**: ``concurrency`` asyncio tasks, each streaming its share of the requests straight
  from the engine (vLLM's ``AsyncLLM.generate``, or ``FakeEngine.generate``) — the limit.
- **actor**: ``concurrency`` agent actors; each, from its ``receive``, streams its requests
  from the ``InferenceActor`` (``actoros.inference.actor.stream``) one after another — the
  product path.
- **sequential**: one agent that asks for one ``Completion`` at a time, as a naive agent loop
  does — what batching is measured against.

Every request is timed where its caller sees it: start before the request is sent, a stamp per
streamed chunk, end when the stream is over. Metrics follow vLLM's benchmark
(``vllm bench serve``): TTFT = first chunk − start; E2EL = end − start;
TPOT = (E2EL − TTFT) / (output tokens − 1); ITL = the gaps between consecutive chunks.
"""

from __future__ import annotations

import asyncio
import gc
import math
from collections.abc import Awaitable, Callable, Sequence
from time import perf_counter
from typing import NamedTuple, Protocol

import msgspec

from actoros import Actor, ActorRef, ActorSystem, Context
from actoros.inference.actor import stream
from actoros.inference.engine import Engine
from actoros.inference.messages import Completion, Generate, TokenDelta

from .._common import percentile
from .result import EngineInfo


class RequestSample(NamedTuple):
    """One request as its caller saw it: perf_counter() seconds and token counts."""

    start: float
    first: float  # first token arrived (NaN when unknown)
    end: float
    stamps: list[float]  # arrival of each streamed chunk (empty when not streamed)
    output_tokens: int
    prompt_tokens: int


class Backend(Protocol):
    """One engine, built once by ``start`` and shared: ``direct`` streams a request of the
    workload straight from it, ``engine`` serves the inference actor from it, ``gen`` is the
    workload's request as the actor gets it. ``close`` stops the engine."""

    engine: Engine
    gen: Generate
    start_seconds: float

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def info(self) -> EngineInfo: ...

    def notes(self) -> list[str]: ...

    async def direct(self, request_id: str) -> RequestSample:
        """Stream one request of the workload straight from the engine, timed."""
        ...


# -- statistics ----------------------------------------------------------------------------


def split(total: int, workers: int) -> list[int]:
    """``total`` requests over ``workers`` as evenly as possible (the first ones get the rest)."""
    base, extra = divmod(total, workers)
    return [base + (1 if w < extra else 0) for w in range(workers)]


def summarize(samples: Sequence[RequestSample], seconds: float) -> dict[str, float]:
    """vLLM's benchmark metrics for one run: rates over the wall time, latencies in ms."""
    output = sum(s.output_tokens for s in samples)
    prompt = sum(s.prompt_tokens for s in samples)
    ttft = [s.first - s.start for s in samples if not math.isnan(s.first)]
    e2el = [s.end - s.start for s in samples]
    tpot = [
        (s.end - s.first) / (s.output_tokens - 1)
        for s in samples
        if s.output_tokens > 1 and not math.isnan(s.first)
    ]
    itl = [b - a for s in samples for a, b in zip(s.stamps, s.stamps[1:], strict=False)]
    stats = {
        "req_per_s": len(samples) / seconds,
        "tok_per_s": output / seconds,
        "total_tok_per_s": (prompt + output) / seconds,
        "prompt_tokens": prompt / len(samples),
        "output_tokens": output / len(samples),
    }
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2el", e2el)):
        if values:
            stats[f"{name}_ms_p50"] = percentile(values, 50) * 1e3
            stats[f"{name}_ms_p99"] = percentile(values, 99) * 1e3
    return stats


async def _timed(
    launch: Callable[[], Awaitable[list[list[RequestSample]]]],
) -> tuple[list[RequestSample], float]:
    gc.collect()
    started = perf_counter()
    batches = await launch()
    seconds = perf_counter() - started
    return [s for batch in batches for s in batch], seconds


# -- direct --------------------------------------------------------------------------------


async def run_direct(
    backend: Backend, concurrency: int, requests: int, tag: str
) -> tuple[list[RequestSample], float]:
    """``concurrency`` tasks stream ``requests`` requests straight from the engine."""

    async def worker(w: int, count: int) -> list[RequestSample]:
        return [await backend.direct(f"{tag}-{w}-{i}") for i in range(count)]

    async def launch() -> list[list[RequestSample]]:
        counts = split(requests, concurrency)
        return await asyncio.gather(*(worker(w, n) for w, n in enumerate(counts)))

    return await _timed(launch)


# -- through the inference actor -----------------------------------------------------------


class Work(msgspec.Struct, frozen=True):
    """Ask an agent to make ``requests`` requests to the inference actor, one after another."""

    requests: int


class StreamingAgent(Actor):
    """An agent that streams each of its requests from the inference actor, from ``receive``."""

    def __init__(self, inference: ActorRef, gen: Generate) -> None:
        self.inference = inference
        self.gen = gen

    async def receive(self, message: Work, ctx: Context) -> list[RequestSample]:
        samples = []
        for _ in range(message.requests):
            stamps: list[float] = []
            completion: Completion | None = None
            start = perf_counter()
            async for item in stream(self.inference, self.gen, timeout=None):
                if isinstance(item, TokenDelta):
                    stamps.append(perf_counter())
                else:
                    completion = item
            end = perf_counter()
            assert completion is not None
            usage = completion.usage
            first = stamps[0] if stamps else math.nan
            samples.append(
                RequestSample(
                    start, first, end, stamps, usage.completion_tokens, usage.prompt_tokens
                )
            )
        return samples


class NaiveAgent(Actor):
    """An agent loop that asks for one whole ``Completion`` at a time (no streaming)."""

    def __init__(self, inference: ActorRef, gen: Generate) -> None:
        self.inference = inference
        self.gen = msgspec.structs.replace(gen, stream=False)

    async def receive(self, message: Work, ctx: Context) -> list[RequestSample]:
        samples = []
        for _ in range(message.requests):
            start = perf_counter()
            completion: Completion = await self.inference.ask(self.gen, timeout=None)
            end = perf_counter()
            usage = completion.usage
            # not streamed: the first token's time is the actor's own measure, from its mailbox
            first = start + completion.timings.ttft
            samples.append(
                RequestSample(start, first, end, [], usage.completion_tokens, usage.prompt_tokens)
            )
        return samples


async def spawn_agents(
    system: ActorSystem, factory: type[Actor], count: int, inference: ActorRef, gen: Generate
) -> list[ActorRef]:
    return [
        await system.spawn(factory, inference, gen, name=f"{factory.__name__.lower()}-{i}")
        for i in range(count)
    ]


async def run_actor(
    agents: Sequence[ActorRef], concurrency: int, requests: int
) -> tuple[list[RequestSample], float]:
    """The first ``concurrency`` agents share ``requests`` requests, all at once."""

    async def launch() -> list[list[RequestSample]]:
        counts = split(requests, concurrency)
        return await asyncio.gather(
            *(agent.ask(Work(n), timeout=None) for agent, n in zip(agents, counts, strict=False))
        )

    return await _timed(launch)


async def run_sequential(agent: ActorRef, requests: int) -> tuple[list[RequestSample], float]:
    async def launch() -> list[list[RequestSample]]:
        return [await agent.ask(Work(requests), timeout=None)]

    return await _timed(launch)
