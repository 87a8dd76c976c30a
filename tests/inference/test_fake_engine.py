"""FakeEngine: the deterministic engine behind the inference actor's tests and benchmarks."""

from __future__ import annotations

import asyncio

import pytest

from actoros.inference.engine import EngineDead, EngineOutput
from actoros.inference.fake_engine import FakeEngine, render_chat
from actoros.inference.messages import ChatMessage, Generate

pytestmark = pytest.mark.timeout(10)

PROMPT = "tell me about actors"


async def started(**options: object) -> FakeEngine:
    engine = FakeEngine(**options)  # type: ignore[arg-type]
    await engine.start()
    return engine


async def run(engine: FakeEngine, gen: Generate, request_id: str = "r1") -> list[EngineOutput]:
    prompt, _ = engine.render(gen)
    return [out async for out in engine.generate(request_id, prompt, gen)]


def text_of(outputs: list[EngineOutput]) -> str:
    return "".join(out.text for out in outputs)


def test_render_applies_a_chat_layout_and_counts_prompt_tokens_by_whitespace() -> None:
    engine = FakeEngine()
    chat = Generate(
        messages=(ChatMessage("system", "be brief"), ChatMessage("user", "hello there"))
    )
    prompt, n_tokens = engine.render(chat)
    assert prompt == render_chat(chat) == "<|system|> be brief\n<|user|> hello there\n<|assistant|>"
    assert n_tokens == 7
    assert engine.render(Generate(prompt="one two  three")) == ("one two  three", 3)


async def test_generate_before_start_is_refused() -> None:
    engine = FakeEngine()
    with pytest.raises(RuntimeError, match="before start"):
        await run(engine, Generate(prompt=PROMPT))


async def test_a_failing_start_raises() -> None:
    engine = FakeEngine(fail_start=True)
    with pytest.raises(RuntimeError, match="fail at start"):
        await engine.start()
    assert not engine.started


async def test_max_tokens_ends_the_request_with_length() -> None:
    engine = await started()
    outputs = await run(engine, Generate(prompt=PROMPT, max_tokens=5, ignore_eos=True))
    assert len(outputs) == 5
    assert all(out.token_count == 1 and out.text for out in outputs)
    assert [out.finished for out in outputs] == [False] * 4 + [True]
    assert outputs[-1].finish_reason == "length"
    assert outputs[-1].prompt_tokens == len(PROMPT.split())
    assert engine.num_unfinished() == 0


async def test_eos_ends_the_request_with_stop_unless_ignore_eos() -> None:
    engine = await started(eos_after=(3, 3))
    outputs = await run(engine, Generate(prompt=PROMPT, max_tokens=10))
    assert len(outputs) == 3 and outputs[-1].finish_reason == "stop"
    outputs = await run(engine, Generate(prompt=PROMPT, max_tokens=10, ignore_eos=True))
    assert len(outputs) == 10 and outputs[-1].finish_reason == "length"


async def test_a_stop_string_ends_the_text_just_before_it() -> None:
    engine = await started()
    full = text_of(await run(engine, Generate(prompt=PROMPT, max_tokens=12, ignore_eos=True)))
    stop = full.split()[4]
    gen = Generate(prompt=PROMPT, max_tokens=12, ignore_eos=True, stop=(stop,))
    outputs = await run(engine, gen)
    assert outputs[-1].finished and outputs[-1].finish_reason == "stop"
    assert text_of(outputs) == full[: full.find(stop)]


async def test_a_stop_string_spanning_tokens_is_left_out_whole() -> None:
    engine = await started()
    full = text_of(await run(engine, Generate(prompt=PROMPT, max_tokens=12, ignore_eos=True)))
    words = full.split()
    stop = f"{words[3]} {words[4]}"  # two tokens: the first is streamed before it is complete
    gen = Generate(prompt=PROMPT, max_tokens=12, ignore_eos=True, stop=(stop,))
    outputs = await run(engine, gen)
    assert outputs[-1].finish_reason == "stop"
    assert text_of(outputs) == full[: full.find(stop)]
    assert sum(out.token_count for out in outputs) == full[: full.find(stop)].count(" ") + 2


def test_an_empty_stop_string_is_refused_before_it_reaches_an_engine() -> None:
    with pytest.raises(ValueError, match="stop strings must not be empty"):
        Generate(prompt=PROMPT, stop=("end", ""))


async def test_same_prompt_and_seed_give_the_same_text_on_any_engine() -> None:
    gen = Generate(prompt=PROMPT, max_tokens=20, seed=7)
    first = text_of(await run(await started(), gen, "a"))
    second = text_of(await run(await started(token_delay=0.0001), gen, "b"))
    assert first == second and first
    seeds = {text_of(await run(await started(), Generate(prompt=PROMPT, seed=s))) for s in range(8)}
    assert len(seeds) > 1  # the seed matters


async def test_concurrent_requests_advance_together() -> None:
    engine = await started()
    gen = Generate(prompt=PROMPT, max_tokens=6, ignore_eos=True)
    prompt, _ = engine.render(gen)
    seen: list[int] = []

    async def consume(request_id: str) -> str:
        text = ""
        async for out in engine.generate(request_id, prompt, gen):
            seen.append(engine.num_unfinished())
            text += out.text
        return text

    a, b = await asyncio.gather(consume("a"), consume("b"))
    assert a == b  # same prompt, same seed
    assert max(seen) == 2  # both were in the engine at once (continuous batching)
    assert engine.generated == ["a", "b"]
    assert engine.num_unfinished() == 0


async def test_abort_ends_the_stream_with_abort_and_frees_the_request() -> None:
    engine = await started()
    gen = Generate(prompt=PROMPT, max_tokens=1000, ignore_eos=True)
    outputs = []
    async for out in engine.generate("r1", PROMPT, gen):
        outputs.append(out)
        if len(outputs) == 2:
            assert engine.num_unfinished() == 1
            await engine.abort("r1")
    assert outputs[-1].finished and outputs[-1].finish_reason == "abort"
    assert len(outputs) == 3
    assert engine.num_unfinished() == 0
    await engine.abort("unknown")  # aborting what is not there is a no-op


async def test_closing_the_generator_frees_the_request() -> None:
    engine = await started()
    gen = Generate(prompt=PROMPT, max_tokens=1000, ignore_eos=True)
    outputs = engine.generate("r1", PROMPT, gen)
    await outputs.__anext__()
    assert engine.num_unfinished() == 1
    await outputs.aclose()  # type: ignore[attr-defined]
    assert engine.num_unfinished() == 0


async def test_kill_fails_running_requests_and_every_later_call() -> None:
    engine = await started()
    gen = Generate(prompt=PROMPT, max_tokens=1000, ignore_eos=True)
    with pytest.raises(EngineDead, match="mid-generation"):
        async for _ in engine.generate("r1", PROMPT, gen):
            engine.kill()
    assert engine.num_unfinished() == 0
    with pytest.raises(EngineDead):
        engine.render(gen)
    with pytest.raises(EngineDead):
        await run(engine, Generate(prompt=PROMPT))
    with pytest.raises(EngineDead):
        await engine.abort("r1")


async def test_shutdown_aborts_running_requests() -> None:
    engine = await started()
    gen = Generate(prompt=PROMPT, max_tokens=1000, ignore_eos=True)
    outputs = []
    async for out in engine.generate("r1", PROMPT, gen):
        outputs.append(out)
        if len(outputs) == 1:
            await engine.shutdown()
    assert outputs[-1].finish_reason == "abort"
    assert engine.shutdowns == 1 and not engine.started
