"""``InferenceActor`` on the real vLLM engine (``-m vllm``): SmolLM2 knows that Paris is the
capital of France; an ask that times out leaves nothing running in the engine; SIGKILL of the
EngineCore process mid-generation fails the requests with ``EngineUnavailable``, the
supervisor restarts the actor with a fresh engine, and the next request succeeds.

Engines take 15-35 s to start on this CPU, so each test builds as few as it can: the SmolLM2
actor is shared by the module, the kill test builds the tiny model twice (before and after).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

pytest.importorskip("vllm", reason="needs vLLM: pip install -e '.[cpu]'")
psutil = pytest.importorskip("psutil")

from actoros import ActorRef, ActorSystem, AskTimeout, LifecycleEvent  # noqa: E402
from actoros.inference.actor import InferenceActor, InferenceStats, stream  # noqa: E402
from actoros.inference.errors import EngineUnavailable  # noqa: E402
from actoros.inference.messages import ChatMessage, Completion, Generate  # noqa: E402
from actoros.inference.models import DEFAULT_MODEL, ModelNotFound, resolve  # noqa: E402
from actoros.inference.tiny_model import make_tiny_llama  # noqa: E402
from actoros.inference.vllm_engine import VLLMEngine  # noqa: E402
from actoros.testing import capture_events, test_system  # noqa: E402

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module", loop_factories=["uvloop"]),
    pytest.mark.timeout(240),
]

START = 180.0  # seconds an ask may wait for an engine that is still starting


def engine_cores() -> set[int]:
    children = psutil.Process().children(recursive=True)
    return {child.pid for child in children if "EngineCore" in child.name()}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def system() -> AsyncIterator[ActorSystem]:
    async with test_system(
        real_time=True, max_restarts=5, within=600.0, shutdown_timeout=120.0
    ) as system:
        yield system


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def smollm2(system: ActorSystem) -> AsyncIterator[ActorRef]:
    try:
        resolve(DEFAULT_MODEL)
    except ModelNotFound:
        pytest.skip(f"{DEFAULT_MODEL} is not pulled: run 'actoros model pull' (make setup does)")
    ref = await system.spawn(
        InferenceActor,
        # float32: in bfloat16 (the folder's dtype, ~2x faster on this CPU) greedy decoding of
        # this question starts "L'Étoile..." — "L" beats "The" by 0.13 nats; float32 says Paris
        lambda: VLLMEngine(DEFAULT_MODEL, max_model_len=2048, max_num_seqs=8, dtype="float32"),
        name="smollm2",
        shutdown=60.0,  # on_stop shuts the engine's processes down
    )
    yield ref
    await ref.stop()


async def test_smollm2_knows_the_capital_of_france(smollm2: ActorRef) -> None:
    question = (ChatMessage("user", "What is the capital of France?"),)
    completion = await smollm2.ask(Generate(messages=question, max_tokens=24), timeout=START)
    assert isinstance(completion, Completion)
    assert "Paris" in completion.text, completion.text
    assert completion.usage.prompt_tokens > 5 and completion.usage.completion_tokens > 0
    assert completion.timings.ttft <= completion.timings.total


async def test_smollm2_streams_deltas_that_add_up_to_the_completion(smollm2: ActorRef) -> None:
    question = (ChatMessage("user", "Name a colour."),)
    items = [x async for x in stream(smollm2, Generate(messages=question, max_tokens=12), START)]
    *deltas, completion = items
    assert isinstance(completion, Completion) and deltas
    assert [d.index for d in deltas] == list(range(len(deltas)))
    assert "".join(d.text for d in deltas) == completion.text


async def test_an_ask_that_times_out_aborts_its_engine_request(smollm2: ActorRef) -> None:
    await smollm2.ask(Generate(prompt="Warm up.", max_tokens=2), timeout=START)
    long = Generate(prompt="Tell a very long story.", max_tokens=1500, ignore_eos=True)
    with pytest.raises(AskTimeout):
        await smollm2.ask(long, timeout=1.0)
    for _ in range(200):  # the abort reaches the engine within a few of its steps
        stats = await smollm2.ask(InferenceStats())
        if stats.in_flight == 0 and stats.engine_unfinished == 0:
            break
        await asyncio.sleep(0.05)
    assert stats.in_flight == 0 and stats.engine_unfinished == 0, stats


async def test_sigkill_of_the_engine_core_fails_requests_then_the_actor_recovers(
    system: ActorSystem, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    engines: list[VLLMEngine] = []

    def build() -> VLLMEngine:
        engine = VLLMEngine(
            str(model),
            max_model_len=256,
            max_num_seqs=8,
            load_format="dummy",
            dtype="float32",
            kv_cache_memory_gib=0.0625,
        )
        engines.append(engine)
        return engine

    before = engine_cores()
    ref = await system.spawn(InferenceActor, build, name="tiny", shutdown=60.0)
    try:
        await ref.ask(Generate(prompt="warm up", max_tokens=2), timeout=START)
        (core,) = engine_cores() - before
        with capture_events(system, LifecycleEvent) as events:
            long = Generate(prompt="a long story", max_tokens=240, ignore_eos=True)
            streaming = Generate(prompt="s", max_tokens=240, ignore_eos=True, stream=True)
            streams = [await ref.ask(streaming, timeout=START) for _ in range(2)]
            asks = [asyncio.ensure_future(ref.ask(long, timeout=START)) for _ in range(3)]
            await anext(streams[0])  # generation is under way

            os.kill(core, signal.SIGKILL)

            results = await asyncio.gather(*asks, return_exceptions=True)
            assert all(isinstance(r, EngineUnavailable) for r in results), results
            for s in streams:
                with pytest.raises(EngineUnavailable):
                    async for _ in s:
                        pass
            after = await ref.ask(Generate(prompt="after", max_tokens=4), timeout=START)
        assert isinstance(after, Completion) and after.usage.completion_tokens == 4
        assert len(engines) == 2, "the supervisor restarts the actor with a fresh engine"
        assert any(e.kind == "restarted" and e.path == ref.path for e in events)
    finally:
        await ref.stop()
    assert not (engine_cores() - before), "no EngineCore process is left behind"
