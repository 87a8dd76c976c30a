"""FakeEngine honours constraints and logprobs honestly, and its switches drive the fallbacks:
a failed canary turns constraints off (``ConstraintsUnsupported``), a canary that kills the
engine is restarted by supervision into an engine that serves without them."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from structlog.testing import capture_logs

from actoros import ActorSystem
from actoros.config import InferenceConfig
from actoros.inference.actor import InferenceActor
from actoros.inference.engine import EngineDead, EngineOutput
from actoros.inference.engines import engine_factory
from actoros.inference.errors import ConstraintInvalid, ConstraintsUnsupported
from actoros.inference.events import EngineDown, EngineReady
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import (
    ChatMessage,
    Choice,
    Completion,
    Generate,
    JsonObject,
    JsonSchema,
    Regex,
)
from actoros.testing import capture_events

from .test_constraints import TOOL_CALL

pytestmark = pytest.mark.timeout(15)


async def started(**options: Any) -> FakeEngine:
    engine = FakeEngine(**options)
    await engine.start()
    return engine


async def run(engine: FakeEngine, gen: Generate, request_id: str = "r1") -> list[EngineOutput]:
    prompt, _ = engine.render(gen)
    return [out async for out in engine.generate(request_id, prompt, gen)]


def text_of(outputs: list[EngineOutput]) -> str:
    return "".join(out.text for out in outputs)


def ask(content: str, **fields: Any) -> Generate:
    return Generate(messages=(ChatMessage("user", content),), **fields)


async def test_a_schema_constrained_request_yields_a_document_that_validates() -> None:
    engine = await started()
    validator = jsonschema.Draft202012Validator(TOOL_CALL)
    for n in range(20):
        outputs = await run(engine, ask(f"question {n}", constraint=JsonSchema(TOOL_CALL)))
        validator.validate(json.loads(text_of(outputs)))
        assert outputs[-1].finished and outputs[-1].finish_reason == "stop"
        assert len(outputs) > 1  # streamed in pieces, one token each
        assert all(out.token_count == 1 for out in outputs)


async def test_the_same_prompt_and_seed_give_the_same_document_and_seeds_vary_it() -> None:
    engine = await started()
    gen = ask("which order?", constraint=JsonSchema(TOOL_CALL))
    assert text_of(await run(engine, gen)) == text_of(await run(engine, gen))
    seeded = {
        text_of(await run(engine, ask("x", seed=s, constraint=JsonSchema(TOOL_CALL))))
        for s in range(12)
    }
    assert len(seeded) > 1


async def test_json_object_choice_and_regex_are_honoured() -> None:
    engine = await started()
    assert isinstance(
        json.loads(text_of(await run(engine, ask("a", constraint=JsonObject())))), dict
    )
    choice = text_of(await run(engine, ask("b", constraint=Choice(("kv_get", "final")))))
    assert choice in ("kv_get", "final")
    key = text_of(await run(engine, ask("c", constraint=Regex(r"order:\d{4}"))))
    assert len(key) == 10 and key.startswith("order:") and key[6:].isdigit()


async def test_max_tokens_cuts_a_constrained_document_with_length() -> None:
    engine = await started()
    outputs = await run(engine, ask("q", max_tokens=2, constraint=JsonSchema(TOOL_CALL)))
    assert len(outputs) == 2 and outputs[-1].finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(text_of(outputs))


async def test_a_constraint_it_cannot_generate_for_is_an_error_not_an_output() -> None:
    engine = await started()
    with pytest.raises(ConstraintInvalid, match="cannot generate"):
        await run(engine, ask("q", constraint=Regex(r"(?<=a)b")))
    with pytest.raises(ConstraintInvalid, match="`not`"):
        await run(engine, ask("q", constraint=JsonSchema({"not": {}})))
    assert engine.num_unfinished() == 0


async def test_logprobs_give_each_token_its_own_and_k_alternatives() -> None:
    engine = await started()
    for constraint in (None, JsonSchema(TOOL_CALL)):
        outputs = await run(engine, ask("q", logprobs=3, constraint=constraint))
        for out in outputs:
            assert out.logprobs is not None and len(out.logprobs) == out.token_count
            for lp in out.logprobs:
                assert lp.logprob < 0 and len(lp.top) == 3
                assert lp.top[0].token == lp.token and lp.top[0].logprob == lp.logprob
                assert [t.logprob for t in lp.top] == sorted(
                    (t.logprob for t in lp.top), reverse=True
                )
                assert len({t.token for t in lp.top}) == 3
                assert sum(math.exp(t.logprob) for t in lp.top) <= 1.0
    own_only = await run(engine, ask("q", logprobs=0))
    assert all(lp.top == () for out in own_only for lp in out.logprobs or ())
    assert all(out.logprobs is None for out in await run(engine, ask("q")))


async def test_the_canary_turns_constraints_on_and_costs_no_request() -> None:
    engine = await started(token_delay=0.5)  # the canary does not wait for the pace
    assert engine.supports_constraints and engine.constraints_reason is None
    assert engine.generated == [] and engine.num_unfinished() == 0


async def test_a_failed_canary_turns_constraints_off_in_one_log_line() -> None:
    with capture_logs() as logs:
        engine = await started(constraints="unsupported")
    assert not engine.supports_constraints
    lines = [e for e in logs if e["event"] == "inference.constraints_unsupported"]
    assert len(lines) == 1 and "canary failed" in lines[0]["reason"]
    with pytest.raises(ConstraintsUnsupported, match="without a constraint"):
        await run(engine, ask("q", constraint=Choice(("a", "b"))))
    assert text_of(await run(engine, ask("q")))  # unconstrained requests still work


async def test_a_canary_that_kills_the_engine_raises_engine_dead() -> None:
    engine = FakeEngine(constraints="crash")
    with pytest.raises(EngineDead, match="die on a constrained request"):
        await engine.start()
    assert engine.dead


async def test_the_actor_restarts_an_engine_the_canary_killed_into_one_without_constraints(
    rt_system: ActorSystem,
) -> None:
    factory = engine_factory(InferenceConfig(engine="fake", engine_args={"constraints": "crash"}))
    with capture_events(rt_system, EngineReady, EngineDown) as events:
        llm = await rt_system.spawn(InferenceActor, factory, name="llm")
        await events.wait_for(EngineReady)
    assert [type(e).__name__ for e in events] == ["EngineDown", "EngineReady"]
    assert "canary killed" in events[0].reason or "die on a constrained" in events[0].reason
    with pytest.raises(ConstraintsUnsupported, match="canary killed the engine"):
        await llm.ask(ask("q", constraint=JsonSchema(TOOL_CALL)), timeout=5)
    completion = await llm.ask(ask("q", max_tokens=3), timeout=5)
    assert isinstance(completion, Completion) and completion.text


async def test_constrained_requests_through_the_actor_validate(rt_system: ActorSystem) -> None:
    llm = await rt_system.spawn(InferenceActor, FakeEngine, name="llm")
    validator = jsonschema.Draft202012Validator(TOOL_CALL)
    for n in range(5):
        completion = await llm.ask(ask(f"order {n}", constraint=JsonSchema(TOOL_CALL)), timeout=5)
        validator.validate(json.loads(completion.text))
        assert completion.finish_reason == "stop"
        assert completion.usage.completion_tokens > 1
