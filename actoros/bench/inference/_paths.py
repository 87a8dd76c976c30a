"""The three ways ``actoros bench inference`` drives one engine, and what a run measures.

- **direct**: ``concurrency`` asyncio tasks, each streaming its share of the requests straight
  from the engine (vLLM's ``AsyncLLM.generate``, or ``FakeEngine.generate``) — the limit.
- **actor**: ``concurrency`` agent actors; each, from its ``receive``, streams its requests
  from the ``InferenceActor`` (an ask answered with a ``CompletionStream``) one after
  another — the product path.
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
from time import perf_counter, process_time
from typing import Any, NamedTuple, Protocol

import msgspec

from actoros import Actor, ActorRef, ActorSystem, Context
from actoros.inference.actor import CompletionStream
from actoros.inference.engine import Engine
from actoros.inference.messages import ChatMessage, Completion, Generate, TokenDelta

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


class Prompt(NamedTuple):
    """One request's prompt, the text both paths send (each tokenizes it once)."""

    text: str


class Backend(Protocol):
    """One engine, built once by ``start`` and shared: ``direct`` streams a request of the
    workload straight from it, ``engine`` serves the inference actor from it, ``gen`` is the
    workload's request as the actor gets it (its prompt replaced by each request's own).
    ``prompts`` draws the prompts of a run before it is timed. ``close`` stops the engine."""

    engine: Engine
    gen: Generate
    start_seconds: float

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def info(self) -> EngineInfo: ...

    def notes(self) -> list[str]: ...

    def prompts(self, count: int, distinct: bool) -> list[Prompt]:
        """``count`` prompts of the workload's length: each one new (random tokens, so no
        two requests share a prefix), or the one shared prompt ``count`` times."""
        ...

    async def direct(self, request_id: str, prompt: Prompt) -> RequestSample:
        """Stream one request of the workload straight from the engine, timed."""
        ...


# -- statistics ----------------------------------------------------------------------------


def split(total: int, workers: int) -> list[int]:
    """``total`` requests over ``workers`` as evenly as possible (the first ones get the rest)."""
    base, extra = divmod(total, workers)
    return [base + (1 if w < extra else 0) for w in range(workers)]


def summarize(
    samples: Sequence[RequestSample], seconds: float, cpu_seconds: float | None = None
) -> dict[str, float]:
    """vLLM's benchmark metrics for one run: rates over the wall time, latencies in ms; with
    ``cpu_seconds`` (this process's CPU time over the run) its cost per output token, in µs."""
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
    if cpu_seconds is not None and output:
        stats["cpu_us_per_tok"] = cpu_seconds / output * 1e6
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2el", e2el)):
        if values:
            stats[f"{name}_ms_p50"] = percentile(values, 50) * 1e3
            stats[f"{name}_ms_p99"] = percentile(values, 99) * 1e3
    return stats


class Timed(NamedTuple):
    """One run of a path: its requests, its wall time, and this process's CPU time over it
    (``time.process_time``: every thread of the process — the loop, vLLM's output handling
    and detokenizing — but not the engine's own processes)."""

    samples: list[RequestSample]
    seconds: float
    cpu_seconds: float

    def summary(self) -> dict[str, float]:
        return summarize(self.samples, self.seconds, self.cpu_seconds)


async def _timed(launch: Callable[[], Awaitable[list[list[RequestSample]]]]) -> Timed:
    gc.collect()
    cpu = process_time()
    started = perf_counter()
    batches = await launch()
    seconds = perf_counter() - started
    cpu = process_time() - cpu
    return Timed([s for batch in batches for s in batch], seconds, cpu)


def _shares(items: Sequence[Any], workers: int) -> list[Sequence[Any]]:
    """``items`` cut into ``split(len(items), workers)`` consecutive shares."""
    shares, at = [], 0
    for n in split(len(items), workers):
        shares.append(items[at : at + n])
        at += n
    return shares


# -- direct --------------------------------------------------------------------------------


async def run_direct(
    backend: Backend, concurrency: int, prompts: Sequence[Prompt], tag: str
) -> Timed:
    """``concurrency`` tasks stream one request per prompt straight from the engine."""

    async def worker(w: int, share: Sequence[Prompt]) -> list[RequestSample]:
        return [await backend.direct(f"{tag}-{w}-{i}", p) for i, p in enumerate(share)]

    async def launch() -> list[list[RequestSample]]:
        shares = _shares(prompts, concurrency)
        return await asyncio.gather(*(worker(w, share) for w, share in enumerate(shares)))

    return await _timed(launch)


# -- through the inference actor -----------------------------------------------------------


class Work(msgspec.Struct, frozen=True):
    """Ask an agent to make ``requests`` requests to the inference actor, one after another;
    with ``prompts`` (one per request), each request has its own prompt instead of the
    agent's."""

    requests: int
    prompts: tuple[str, ...] | None = None

    def gens(self, gen: Generate) -> list[Generate]:
        if self.prompts is None:
            return [gen] * self.requests
        if gen.messages is not None:  # a chat: the prompt is its last message's content
            *head, last = gen.messages
            return [
                msgspec.structs.replace(gen, messages=(*head, ChatMessage(last.role, p)))
                for p in self.prompts
            ]
        return [msgspec.structs.replace(gen, prompt=p) for p in self.prompts]


class StreamingAgent(Actor):
    """An agent that streams each of its requests from the inference actor, from ``receive``:
    it asks with ``Generate(stream=True)`` and iterates the ``CompletionStream`` it gets, as
    ``LLMAgent`` and the gateway do."""

    def __init__(self, inference: ActorRef, gen: Generate) -> None:
        self.inference = inference
        self.gen = gen

    async def receive(self, message: Work, ctx: Context) -> list[RequestSample]:
        samples = []
        for gen in message.gens(self.gen):
            stamps: list[float] = []
            completion: Completion | None = None
            start = perf_counter()
            reply: CompletionStream = await self.inference.ask(gen, timeout=None)
            try:
                async for item in reply:
                    if isinstance(item, TokenDelta):
                        stamps.append(perf_counter())
                    else:
                        completion = item
            finally:
                await reply.aclose()
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
        for gen in message.gens(self.gen):
            start = perf_counter()
            completion: Completion = await self.inference.ask(gen, timeout=None)
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


def _work(requests: int, prompts: Sequence[Prompt] | None) -> Work:
    return Work(requests, None if prompts is None else tuple(p.text for p in prompts))


async def run_actor(
    agents: Sequence[ActorRef],
    concurrency: int,
    requests: int,
    prompts: Sequence[Prompt] | None = None,
) -> Timed:
    """The first ``concurrency`` agents share ``requests`` requests (one per prompt, when
    given), all at once."""
    if prompts is None:
        work = [Work(n) for n in split(requests, concurrency)]
    else:
        work = [_work(len(share), share) for share in _shares(prompts, concurrency)]

    async def launch() -> list[list[RequestSample]]:
        return await asyncio.gather(
            *(agent.ask(w, timeout=None) for agent, w in zip(agents, work, strict=False))
        )

    return await _timed(launch)


async def run_sequential(
    agent: ActorRef, requests: int, prompts: Sequence[Prompt] | None = None
) -> Timed:
    work = _work(requests, prompts)

    async def launch() -> list[list[RequestSample]]:
        return [await agent.ask(work, timeout=None)]

    return await _timed(launch)
