"""The prefix-caching series of ``actoros bench agents``: vLLM's prefix cache on vs off.

32 ``LLMAgent``s share one long system prompt (a shop's handbook, at least 512 tokens: four
full blocks of CPU vLLM's default 128) and the same tools, so their prompts begin with the
same bytes (``agents/llm.py``: the stable part first). Two systems run side by side, each
with its own engine on the same model: one with ``enable_prefix_caching`` on, one with it
off. Rounds alternate between them (on, off, on, off, ...), after one warm-up round each; a
round is one task for every agent at once, each on a new thread with its own question.

Per mode: the time to first token of every request (the inference actor's
``InferenceRequestDone``: from the request reaching the actor to its first token), p50 and
p99 over all timed rounds; output tokens/s (the rounds' completion tokens over their wall
time, the median round); and the hit rate vLLM reports: the prefix-cache hits over queries
(in tokens) that each engine's scheduler counts (``VLLMEngine.prefix_cache_stats()``), over
the timed rounds, for both engines (the one with the cache off reports none).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from actoros import ActorRef, ActorSystem
from actoros.agents import UserMessage
from actoros.agents.llm import system_prompt
from actoros.config.schema import AgentConfig
from actoros.inference.engine import Engine
from actoros.inference.messages import ChatMessage, Generate, InferenceRequestDone
from actoros.kernel.tools import ToolRegistry

from .._common import median, percentile, progress
from ._workloads import Batch, drive, spawn_llm_agents, temp_state_dir

MIN_SHARED_TOKENS = 512  # the shared prompt spans at least four full CPU blocks of 128

#: The handbook every agent of the series starts its prompt with (about 600 tokens).
HANDBOOK = " ".join(
    [
        "You are a support agent of Northwind Goods, an online shop for kitchen and garden",
        "tools. Answer the customer in one or two short sentences, politely and precisely.",
        "Use only the facts of this handbook; when a fact is missing, say that you will ask",
        "a colleague. Never invent order numbers, prices or dates.",
        "Opening hours: the support desk is open Monday to Friday from 9:00 to 17:00 and on",
        "Saturday from 10:00 to 14:00, Central European Time; it is closed on Sundays and on",
        "public holidays in Germany. Orders placed outside these hours are processed on the",
        "next working day.",
        "Shipping: standard shipping within Germany takes 2 to 3 working days and costs 4.90",
        "EUR, free above 50 EUR. Shipping to the rest of the European Union takes 3 to 6",
        "working days and costs 9.90 EUR, free above 100 EUR. Shipping to Switzerland, Norway",
        "and the United Kingdom takes 5 to 8 working days and costs 14.90 EUR; customs duties",
        "are paid by the customer. We do not ship outside Europe. Express shipping within",
        "Germany (next working day when ordered before 12:00) costs 12.90 EUR.",
        "Returns: every item may be returned within 30 days of delivery, unused and in its",
        "original packaging. Returns within Germany are free; from other countries the",
        "customer pays the return shipping. A refund is paid to the original payment method",
        "within 5 working days after the return arrives at our warehouse in Kassel.",
        "Damaged goods: if an item arrives damaged, the customer sends a photo to",
        "support@northwind.example within 7 days; we send a replacement at no cost, or refund",
        "the item in full if no replacement is in stock. The damaged item need not be sent",
        "back unless we ask for it.",
        "Payment: we accept credit cards (Visa, Mastercard, American Express), PayPal, bank",
        "transfer (the order ships once the money arrives, usually within 2 working days) and",
        "invoice for customers in Germany and Austria after their second order. We do not",
        "accept cash on delivery, cheques or cryptocurrencies.",
        "Warranty: all tools carry a 2-year warranty; knives and garden shears carry a",
        "lifetime warranty against breakage in normal use. A warranty claim needs the order",
        "number and a short description of the fault.",
        "Discounts: newsletter subscribers get 10% off their first order; students get 5% off",
        "with a valid student card; there are no other discount codes. Discounts cannot be",
        "combined and do not apply to gift cards.",
        "Gift cards: sold in values of 25, 50 and 100 EUR, valid for three years, usable for",
        "several orders until the value is used up; they cannot be exchanged for cash.",
        "Accounts: a customer resets a password with the 'Forgot password' link on the login",
        "page; the link in the email is valid for one hour. We never ask for a password by",
        "email or phone. Deleting an account removes the order history after the legal",
        "retention period of ten years for invoices.",
        "Stores: we have no physical stores; orders can be picked up at our warehouse in",
        "Kassel (Mondays to Fridays, 10:00 to 16:00) when the pick-up option was chosen at",
        "checkout.",
        "Tone: address the customer formally, do not use emojis, do not promise anything",
        "that this handbook does not state, and end with an offer to help further when the",
        "question is not fully answered.",
    ]
)

QUESTIONS = (
    "How long does shipping to Austria take for order {i}?",
    "Can I pay order {i} by invoice?",
    "Item {i} arrived broken, what do I do?",
    "Do you have a shop in Kassel where I can buy item {i}?",
    "Is the warranty on knife {i} really lifetime?",
    "How do I reset my password, customer {i} here?",
    "Can I combine the student discount with code {i}?",
    "When will my refund for return {i} be paid?",
)


class PrefixSizes(msgspec.Struct, frozen=True, kw_only=True):
    agents: int  # LLM agents, one task each per round
    rounds: int  # timed rounds per mode, alternated
    max_tokens: int


class ModeStats(msgspec.Struct, kw_only=True):
    """What the timed rounds of one mode measured."""

    ttft_s: list[float] = []
    round_tok_per_s: list[float] = []
    failed: int = 0
    tasks: int = 0
    prompt_tokens: list[int] = []


def prefix_config(name: str, max_tokens: int) -> AgentConfig:
    return AgentConfig(
        name=name,
        kind="llm",
        system_prompt=HANDBOOK,
        tools=("calculator", "clock"),
        max_steps=1,  # one model call per task: the series times prefills, not tool loops
        max_tokens=max_tokens,
        temperature=0.0,
        constrain=False,  # the cache alone; grammars are measured elsewhere
    )


def prefix_task(i: int) -> UserMessage:
    return UserMessage(text=QUESTIONS[i % len(QUESTIONS)].format(i=1000 + i))


def system_prompt_tokens(engine: Any, agent_system_prompt: str) -> int:
    """Tokens of the agents' shared system message as the engine renders it."""
    _, tokens = engine.render(Generate(messages=(ChatMessage("system", agent_system_prompt),)))
    return int(tokens)


def engine_prefix_counters(engine: Any) -> tuple[float, float] | None:
    """(queries, hits) in tokens of ``engine``'s prefix cache so far (``None``: the engine
    does not count them, as the fake one)."""
    stats = getattr(engine, "prefix_cache_stats", None)
    counted = stats() if callable(stats) else None
    if counted is None:
        return None
    return float(counted.queries), float(counted.hits)


class _Side:
    """One system of the series: its agents and the requests its inference actor finished."""

    def __init__(self, system: ActorSystem, agents: list[ActorRef], engine: Any) -> None:
        self.agents = agents
        self.engine = engine
        self.done: list[InferenceRequestDone] = []
        system.events.subscribe(self.done.append, InferenceRequestDone)

    async def round(self, timeout: float) -> tuple[list[InferenceRequestDone], float, Batch]:
        self.done.clear()
        batch = await drive(self.agents, prefix_task, len(self.agents), len(self.agents), timeout)
        return list(self.done), batch.seconds, batch


async def _side(
    stack: contextlib.AsyncExitStack,
    cache_on: bool,
    engine_factory: Callable[[bool], Engine],
    sizes: PrefixSizes,
    context_tokens: int,
) -> _Side:
    """A system with the kernel and the series' agents on an engine with the cache on/off."""
    state = Path(stack.enter_context(temp_state_dir()))
    system = await stack.enter_async_context(
        ActorSystem(f"bench-prefix-{'on' if cache_on else 'off'}")
    )
    built: list[Engine] = []

    def engine() -> Engine:
        built.append(engine_factory(cache_on))
        return built[-1]

    agents = await spawn_llm_agents(
        system,
        engine,
        sizes.agents,
        sizes.max_tokens,
        context_tokens,
        state,
        agent_config=prefix_config,
    )
    return _Side(system, agents, built[-1])


async def prefix_series(
    sizes: PrefixSizes,
    engine_factory: Callable[[bool], Engine],
    context_tokens: int,
    timeout: float,
    metrics: dict[str, float],
    raw: dict[str, list[float]],
    notes: list[str],
    counters: Callable[[Any], tuple[float, float] | None] = engine_prefix_counters,
) -> dict[str, Any]:
    """Run the series (see the module docstring); fill ``metrics`` and ``raw``; return what
    describes it (the shared system prompt's tokens, prompt sizes). ``counters(engine)``:
    that engine's (queries, hits) prefix-cache counters (``None``: it has none)."""
    info: dict[str, Any] = {}
    stats = {True: ModeStats(), False: ModeStats()}
    queries = {True: 0.0, False: 0.0}
    hits = {True: 0.0, False: 0.0}
    found = True
    async with contextlib.AsyncExitStack() as stack:
        off = await _side(stack, False, engine_factory, sizes, context_tokens)
        on = await _side(stack, True, engine_factory, sizes, context_tokens)
        info["system_prompt_tokens"] = system_prompt_tokens(on.engine, shared_system_prompt())
        if info["system_prompt_tokens"] < MIN_SHARED_TOKENS:
            notes.append(
                f"prefix cache: the shared system prompt is {info['system_prompt_tokens']} "
                f"tokens, under the {MIN_SHARED_TOKENS} this series is meant to share"
            )
        progress.info("bench.prefix_warmup", agents=sizes.agents, **info)
        for side in (on, off):  # warm-up: first batches compile; the cache fills
            await side.round(timeout)
        for r in range(sizes.rounds):
            for cache_on, side in ((True, on), (False, off)):
                before = counters(side.engine)
                done, seconds, batch = await side.round(timeout)
                after = counters(side.engine)
                _record(stats[cache_on], done, seconds, batch)
                if before is not None and after is not None:
                    queries[cache_on] += after[0] - before[0]
                    hits[cache_on] += after[1] - before[1]
                found = found and after is not None
                progress.info(
                    "bench.prefix_round",
                    round=r + 1,
                    prefix_caching=cache_on,
                    seconds=round(seconds, 2),
                    failed=batch.failed,
                )
    if not found:
        notes.append("prefix cache: the engines do not count prefix-cache hits: no hit rate")
    else:
        for cache_on, mode in ((True, "on"), (False, "off")):
            rate = hits[cache_on] / queries[cache_on] if queries[cache_on] else 0.0
            metrics[f"prefix_{mode}_hit_rate"] = rate
            raw[f"prefix_{mode}_queries_hits"] = [queries[cache_on], hits[cache_on]]
    for cache_on, mode in ((True, "on"), (False, "off")):
        s = stats[cache_on]
        metrics[f"prefix_{mode}_ttft_p50_ms"] = percentile(s.ttft_s, 50) * 1000.0
        metrics[f"prefix_{mode}_ttft_p99_ms"] = percentile(s.ttft_s, 99) * 1000.0
        metrics[f"prefix_{mode}_output_tok_per_s"] = median(s.round_tok_per_s)
        metrics[f"prefix_{mode}_failed"] = float(s.failed)
        raw[f"prefix_{mode}_output_tok_per_s"] = s.round_tok_per_s
        raw[f"prefix_{mode}_ttft_ms"] = [t * 1000.0 for t in s.ttft_s]
        if s.prompt_tokens:
            info[f"prompt_tokens_median_{mode}"] = median([float(t) for t in s.prompt_tokens])
        if s.failed:
            notes.append(f"prefix cache {mode}: {s.failed} of {s.tasks} tasks failed")
    if metrics["prefix_on_ttft_p50_ms"] > 0:
        metrics["prefix_ttft_p50_off_over_on"] = (
            metrics["prefix_off_ttft_p50_ms"] / metrics["prefix_on_ttft_p50_ms"]
        )
    return info


def shared_system_prompt() -> str:
    """The system message every agent of the series sends: the handbook, then the protocol."""
    config = prefix_config("llm-0", 1)
    return system_prompt(config, ToolRegistry.with_builtins().summaries(config.tools))


def _record(s: ModeStats, done: list[InferenceRequestDone], seconds: float, batch: Batch) -> None:
    s.tasks += batch.tasks
    s.failed += batch.failed
    s.ttft_s.extend(d.ttft for d in done if d.ttft is not None)
    s.prompt_tokens.extend(d.prompt_tokens for d in done)
    tokens = sum(d.completion_tokens for d in done)
    s.round_tok_per_s.append(tokens / seconds if seconds > 0 else 0.0)
