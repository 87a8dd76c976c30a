"""What the inference actor carries of constraints and logprobs: each token's logprobs on the
deltas that carry its text and on the ``Completion``, and whether the engine enforces
constraints (``EngineReady``, ``InferenceMetrics``)."""

from __future__ import annotations

import json

import pytest

from actoros import ActorSystem
from actoros.inference.actor import InferenceActor, InferenceMetrics, stream
from actoros.inference.errors import ConstraintsUnsupported
from actoros.inference.events import EngineReady
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import (
    Completion,
    Generate,
    InferenceStats,
    JsonObject,
    TokenDelta,
)
from actoros.testing import capture_events

pytestmark = pytest.mark.timeout(15)


async def test_a_completion_carries_one_logprob_per_output_token(rt_system: ActorSystem) -> None:
    llm = await rt_system.spawn(InferenceActor, FakeEngine)
    completion = await llm.ask(Generate(prompt="hello there", logprobs=2), timeout=5)
    assert isinstance(completion, Completion) and completion.logprobs is not None
    assert len(completion.logprobs) == completion.usage.completion_tokens
    assert "".join(lp.token for lp in completion.logprobs) == completion.text
    assert all(len(lp.top) == 2 for lp in completion.logprobs)
    plain = await llm.ask(Generate(prompt="hello there"), timeout=5)
    assert plain.logprobs is None


async def test_streamed_deltas_carry_the_logprobs_of_their_tokens(rt_system: ActorSystem) -> None:
    llm = await rt_system.spawn(InferenceActor, FakeEngine)
    # a stop string makes the engine hold text back: its tokens' logprobs wait for their text
    gen = Generate(prompt="tell me", logprobs=1, stop=("zzz-never",), max_tokens=12)
    deltas: list[TokenDelta] = []
    completion = None
    async for item in stream(llm, gen):
        if isinstance(item, TokenDelta):
            deltas.append(item)
        else:
            completion = item
    assert isinstance(completion, Completion) and completion.logprobs is not None
    carried = [lp for d in deltas for lp in d.logprobs or ()]
    assert carried == list(completion.logprobs)
    assert all(d.logprobs for d in deltas)


async def test_engine_ready_and_metrics_say_whether_constraints_are_enforced(
    rt_system: ActorSystem,
) -> None:
    with capture_events(rt_system, EngineReady) as events:
        good = await rt_system.spawn(InferenceActor, FakeEngine)
        bad = await rt_system.spawn(InferenceActor, lambda: FakeEngine(constraints="unsupported"))
        await events.wait_for(EngineReady, count=2)
    by_path = {e.path: e.supports_constraints for e in events}
    assert by_path == {good.path: True, bad.path: False}
    good_metrics = await good.ask(InferenceStats(), timeout=5)
    bad_metrics = await bad.ask(InferenceStats(), timeout=5)
    assert isinstance(good_metrics, InferenceMetrics) and good_metrics.supports_constraints
    assert isinstance(bad_metrics, InferenceMetrics) and not bad_metrics.supports_constraints
    with pytest.raises(ConstraintsUnsupported):
        await bad.ask(Generate(prompt="q", constraint=JsonObject()), timeout=5)
    reply = await good.ask(Generate(prompt="q", constraint=JsonObject()), timeout=5)
    assert isinstance(json.loads(reply.text), dict)
    # the refused request failed alone: the actor and its engine still serve
    assert (await bad.ask(Generate(prompt="q", max_tokens=2), timeout=5)).text
