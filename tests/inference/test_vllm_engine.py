"""``VLLMEngine`` on the real vLLM engine, with the tiny random Llama (``-m vllm``).

One engine serves the module (it takes ~15 s to start on CPU); the test that kills an
EngineCore process builds its own. The tiny model's text is noise, but greedy decoding makes
it the same noise every run, which is what these tests compare.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

pytest.importorskip("vllm", reason="needs vLLM: pip install -e '.[cpu]'")
pytest.importorskip("transformers")

from actoros.inference.engine import EngineDead, EngineOutput  # noqa: E402
from actoros.inference.errors import InferenceError  # noqa: E402
from actoros.inference.messages import ChatMessage, Generate  # noqa: E402
from actoros.inference.tiny_model import make_tiny_llama  # noqa: E402
from actoros.inference.vllm_engine import VLLMEngine  # noqa: E402

# one event loop for the module: an AsyncLLM belongs to the loop that first used it
pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module", loop_factories=["uvloop"]),
    pytest.mark.timeout(120),
]

MAX_MODEL_LEN = 256


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def tiny_engine(model: Path) -> VLLMEngine:
    return VLLMEngine(
        str(model),
        max_model_len=MAX_MODEL_LEN,
        max_num_seqs=16,
        load_format="dummy",  # random weights without reading the file
        dtype="float32",  # see tiny_model.py: vLLM's "auto" would pick bfloat16 on CPU
        kv_cache_memory_gib=0.0625,
    )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def engine(tiny_model: Path) -> AsyncIterator[VLLMEngine]:
    engine = tiny_engine(tiny_model)
    await engine.start()
    yield engine
    await engine.shutdown()


async def collect(engine: VLLMEngine, request_id: str, gen: Generate) -> list[EngineOutput]:
    prompt, _ = engine.render(gen)
    return [out async for out in engine.generate(request_id, prompt, gen)]


def text_of(outputs: list[EngineOutput]) -> str:
    return "".join(out.text for out in outputs)


async def test_start_reports_the_engine_limits(engine: VLLMEngine) -> None:
    assert engine.max_model_len == MAX_MODEL_LEN
    assert engine.max_num_seqs == 16
    assert engine.alive
    # the canary's grammar forces "yes" or "no" whatever the random weights say
    assert engine.supports_constraints
    # its startup heap is frozen, as vllm serve freezes it: no full collection walks it
    assert gc.get_freeze_count() > 0


async def test_generate_streams_one_token_per_delta_then_finishes(engine: VLLMEngine) -> None:
    gen = Generate(prompt="Hello, world!", max_tokens=12, ignore_eos=True, stream=True)
    outputs = await collect(engine, "stream-1", gen)

    assert [out.finished for out in outputs] == [False] * (len(outputs) - 1) + [True]
    assert sum(out.token_count for out in outputs) == 12
    assert outputs[-1].finish_reason == "length"
    assert outputs[-1].prompt_tokens == engine.render(gen)[1]
    assert engine.num_unfinished() == 0


async def test_concurrent_streams_each_get_their_own_deltas_in_order(
    engine: VLLMEngine,
) -> None:
    gens = [
        Generate(prompt=f"request number {i}", max_tokens=16, ignore_eos=True) for i in range(4)
    ]
    alone = [text_of(await collect(engine, f"alone-{i}", g)) for i, g in enumerate(gens)]

    together = await asyncio.gather(*(collect(engine, f"batch-{i}", g) for i, g in enumerate(gens)))

    assert [text_of(outputs) for outputs in together] == alone
    assert len(set(alone)) > 1  # the prompts lead to different text: the check means something


async def test_chat_messages_go_through_the_chat_template(engine: VLLMEngine) -> None:
    gen = Generate(messages=(ChatMessage("user", "Hi there"),), max_tokens=4, ignore_eos=True)
    ids, count = engine.render(gen)

    tokenizer = engine._tokenizer
    expected = tokenizer.encode(
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False
    )
    assert ids == list(expected)
    assert count == len(ids)
    outputs = [out async for out in engine.generate("chat-1", ids, gen)]
    assert outputs[-1].prompt_tokens == count


async def test_stop_string_ends_the_text_before_it(engine: VLLMEngine) -> None:
    full = text_of(
        await collect(engine, "stop-ref", Generate(prompt="a b c", max_tokens=24, ignore_eos=True))
    )
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), f"pick a visible stop string from {full!r}"

    outputs = await collect(
        engine, "stop-1", Generate(prompt="a b c", max_tokens=24, ignore_eos=True, stop=(stop,))
    )

    assert outputs[-1].finish_reason == "stop"
    assert text_of(outputs) == full[: full.index(stop)]


async def test_abort_ends_the_stream_with_abort_and_frees_the_engine(engine: VLLMEngine) -> None:
    gen = Generate(prompt="tell me everything", max_tokens=200, ignore_eos=True, stream=True)
    prompt, _ = engine.render(gen)
    outputs: list[EngineOutput] = []
    async for out in engine.generate("abort-1", prompt, gen):
        outputs.append(out)
        if len(outputs) == 1:
            assert engine.num_unfinished() == 1
            await engine.abort("abort-1")

    assert outputs[-1].finished and outputs[-1].finish_reason == "abort"
    assert sum(out.token_count for out in outputs) < 200
    assert engine.num_unfinished() == 0


async def test_closing_the_stream_early_aborts_the_request(engine: VLLMEngine) -> None:
    gen = Generate(prompt="tell me everything", max_tokens=200, ignore_eos=True, stream=True)
    prompt, _ = engine.render(gen)
    stream = engine.generate("close-1", prompt, gen)
    first = await anext(stream)
    assert not first.finished

    await stream.aclose()

    assert engine.num_unfinished() == 0


async def test_aborting_an_unknown_request_does_nothing(engine: VLLMEngine) -> None:
    await engine.abort("never-sent")
    assert engine.num_unfinished() == 0


async def test_a_prompt_longer_than_the_context_fails_that_request_only(
    engine: VLLMEngine,
) -> None:
    too_long = [5] * (MAX_MODEL_LEN + 10)
    with pytest.raises(InferenceError, match="maximum context length"):
        async for _ in engine.generate("long-1", too_long, Generate(prompt="x", max_tokens=4)):
            pass

    outputs = await collect(engine, "after-long", Generate(prompt="still here", max_tokens=3))
    assert outputs[-1].finished
    assert engine.alive


def engine_cores() -> set[int]:
    import psutil

    children = psutil.Process().children(recursive=True)
    return {child.pid for child in children if "EngineCore" in child.name()}


async def test_killing_the_engine_core_fails_requests_with_engine_dead(tiny_model: Path) -> None:
    pytest.importorskip("psutil")
    others = engine_cores()  # the module's engine
    engine = tiny_engine(tiny_model)
    await engine.start()
    try:
        (core,) = engine_cores() - others
        gen = Generate(prompt="a long story", max_tokens=200, ignore_eos=True, stream=True)
        prompt, _ = engine.render(gen)
        stream = engine.generate("doomed", prompt, gen)
        await anext(stream)

        os.kill(core, signal.SIGKILL)

        with pytest.raises(EngineDead):
            async for _ in stream:
                pass
        assert not engine.alive
        with pytest.raises(EngineDead):
            engine.render(gen)
    finally:
        await engine.shutdown()
    assert engine_cores() == others
    with pytest.raises(EngineDead):
        await engine.start()
