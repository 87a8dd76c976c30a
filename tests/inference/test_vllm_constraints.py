"""Constraints, logprobs and output kinds on the real vLLM engine with SmolLM2 (``-m vllm``).

One engine serves the module (SmolLM2-135M, a 256 MiB KV cache, 64-token blocks). The
headline check is issue 11's: five mixed order questions in one batch, unconstrained and then
constrained by the orders agent's tool-call schema; constrained, every reply parses and
validates. (``python -m tests.inference.test_vllm_constraints`` prints the measured numbers.)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

pytest.importorskip("vllm", reason="needs vLLM: pip install -e '.[cpu]'")
jsonschema = pytest.importorskip("jsonschema")

from actoros.inference.engine import EngineOutput  # noqa: E402
from actoros.inference.errors import ConstraintInvalid  # noqa: E402
from actoros.inference.messages import (  # noqa: E402
    ChatMessage,
    Choice,
    Generate,
    JsonSchema,
    Regex,
)
from actoros.inference.models import DEFAULT_MODEL, ModelNotFound, resolve  # noqa: E402
from actoros.inference.vllm_engine import VLLMEngine  # noqa: E402

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="module", loop_factories=["uvloop"]),
    pytest.mark.timeout(300),
]

BLOCK = 64

ORDERS_PROMPT = (
    'You look up orders. To read order 1042, reply {"tool": "kv_get", "arguments": {"key": '
    '"order:1042"}}. To compute a refund, use the calculator, for example {"tool": '
    '"calculator", "arguments": {"expression": "59.90 * 0.2"}}. Then answer in one sentence. '
    "If the order is not found, say so."
)

QUESTIONS = (
    "Where is my order 1042?",
    "Can I get a refund for order 1017?",
    "How much is order 1042 with 20% off?",
    "Has order 1055 shipped yet?",
    "What is the status of order 1061?",
)


def _call(tool: str, argument: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "tool": {"const": tool},
            "arguments": {
                "type": "object",
                "properties": {argument: {"type": "string"}},
                "required": [argument],
                "additionalProperties": False,
            },
        },
        "required": ["tool", "arguments"],
        "additionalProperties": False,
    }


TOOL_CALL_SCHEMA: dict[str, Any] = {
    "anyOf": [
        _call("kv_get", "key"),
        _call("calculator", "expression"),
        {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
            "additionalProperties": False,
        },
    ]
}


def order_question(question: str, constrained: bool) -> Generate:
    return Generate(
        messages=(ChatMessage("system", ORDERS_PROMPT), ChatMessage("user", question)),
        max_tokens=96,
        constraint=JsonSchema(TOOL_CALL_SCHEMA) if constrained else None,
    )


def smollm2_engine() -> VLLMEngine:
    return VLLMEngine(
        DEFAULT_MODEL,
        max_model_len=1024,
        max_num_seqs=8,
        dtype="float32",
        kv_cache_memory_gib=0.25,
        block_size=BLOCK,
    )


async def collect(engine: VLLMEngine, request_id: str, gen: Generate) -> list[EngineOutput]:
    prompt, _ = engine.render(gen)
    return [out async for out in engine.generate(request_id, prompt, gen)]


def text_of(outputs: list[EngineOutput]) -> str:
    return "".join(out.text for out in outputs)


def valid(text: str) -> bool:
    try:
        jsonschema.validate(json.loads(text), TOOL_CALL_SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


async def order_batch(engine: VLLMEngine, constrained: bool) -> tuple[list[str], float]:
    """The five questions in one batch: their replies and the batch's seconds."""
    began = time.perf_counter()
    outputs = await asyncio.gather(
        *(
            collect(engine, f"orders-{constrained}-{i}", order_question(q, constrained))
            for i, q in enumerate(QUESTIONS)
        )
    )
    return [text_of(o) for o in outputs], time.perf_counter() - began


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def engine() -> AsyncIterator[VLLMEngine]:
    try:
        resolve(DEFAULT_MODEL)
    except ModelNotFound:
        pytest.skip(f"{DEFAULT_MODEL} is not pulled: run 'actoros model pull' (make setup does)")
    engine = smollm2_engine()
    await engine.start()
    yield engine
    await engine.shutdown()


async def test_the_canary_finds_constraints_supported(engine: VLLMEngine) -> None:
    assert engine.supports_constraints and engine.constraints_reason is None


async def test_constrained_order_replies_all_parse_and_validate(engine: VLLMEngine) -> None:
    constrained, _ = await order_batch(engine, constrained=True)
    assert all(valid(text) for text in constrained), constrained
    unconstrained, _ = await order_batch(engine, constrained=False)
    # the tiny model left alone rarely follows the protocol: the constraint is what does it
    assert sum(valid(text) for text in unconstrained) < len(QUESTIONS), unconstrained


async def test_choice_and_regex_are_enforced(engine: VLLMEngine) -> None:
    question = (ChatMessage("user", "Is Paris in France?"),)
    choice = await collect(
        engine,
        "choice",
        Generate(messages=question, max_tokens=8, constraint=Choice(("yes", "no"))),
    )
    assert text_of(choice) in ("yes", "no")
    key = await collect(
        engine,
        "regex",
        Generate(messages=question, max_tokens=16, constraint=Regex(r"order:[0-9]{4}")),
    )
    text = text_of(key)
    assert text.startswith("order:") and len(text) == 10 and text[6:].isdigit()


async def test_a_schema_vllm_cannot_compile_fails_that_request_only(engine: VLLMEngine) -> None:
    bad = Generate(prompt="x", max_tokens=4, constraint=JsonSchema({"type": "teapot"}))
    with pytest.raises(ConstraintInvalid, match="constraint"):
        await collect(engine, "bad-schema", bad)
    assert text_of(await collect(engine, "after-bad", Generate(prompt="hello", max_tokens=3)))
    assert engine.alive


async def test_vllm_skips_its_params_copy_unless_a_callers_schema_is_in_them(
    engine: VLLMEngine,
) -> None:
    # params are made per request, so vLLM need not deep-copy them (~20 us), as with
    # `vllm serve`'s; a constrained request's schema is the caller's and must stay untouched
    assert engine._sampling_params("plain", Generate(prompt="hi", max_tokens=4)).skip_clone
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    gen = Generate(prompt="A number:", max_tokens=8, constraint=JsonSchema(schema))
    assert not engine._sampling_params("constrained", gen).skip_clone
    before = json.dumps(schema, sort_keys=True)
    assert text_of(await collect(engine, "schema-kept", gen))
    assert json.dumps(schema, sort_keys=True) == before


async def test_a_request_not_streamed_gets_one_final_output(engine: VLLMEngine) -> None:
    gen = Generate(prompt="Count to ten:", max_tokens=12, ignore_eos=True)
    final = await collect(engine, "final-only", gen)
    streamed = await collect(
        engine,
        "delta",
        Generate(prompt="Count to ten:", max_tokens=12, ignore_eos=True, stream=True),
    )
    assert len(final) == 1 and final[0].finished and final[0].token_count == 12
    assert final[0].ttft is not None and final[0].ttft > 0
    assert len(streamed) > 1 and text_of(streamed) == text_of(final)


async def test_logprobs_come_per_token_with_k_alternatives(engine: VLLMEngine) -> None:
    for stream in (False, True):
        gen = Generate(
            prompt="The capital of France is",
            max_tokens=6,
            ignore_eos=True,
            logprobs=3,
            stream=stream,
        )
        outputs = await collect(engine, f"logprobs-{stream}", gen)
        tokens = [lp for out in outputs for lp in out.logprobs or ()]
        assert len(tokens) == sum(out.token_count for out in outputs) == 6
        assert "".join(lp.token for lp in tokens) == text_of(outputs)
        for lp in tokens:
            assert lp.logprob <= 0 and len(lp.top) == 3
            assert [t.logprob for t in lp.top] == sorted((t.logprob for t in lp.top), reverse=True)
            # greedy: the chosen token is the likeliest
            assert lp.top[0].token == lp.token and lp.top[0].logprob == pytest.approx(lp.logprob)


async def test_prefix_cache_counts_hits_on_full_blocks_of_a_shared_prompt(
    engine: VLLMEngine,
) -> None:
    shared = "You are a careful assistant. " * 40  # well over two 64-token blocks
    before = engine.prefix_cache_stats()
    assert before is not None and before.enabled and before.block_size == BLOCK
    for i in range(2):
        await collect(
            engine, f"prefix-{i}", Generate(prompt=shared + f"Question {i}?", max_tokens=2)
        )
    after = engine.prefix_cache_stats()
    assert after is not None
    assert after.queries > before.queries
    assert after.hits - before.hits >= 2 * BLOCK


async def main() -> None:
    """The numbers of issue 11's check, measured side by side in one run."""
    engine = smollm2_engine()
    await engine.start()
    try:
        await order_batch(engine, constrained=True)  # warm-up: the grammar's first compile
        await order_batch(engine, constrained=False)
        for constrained in (False, True, False, True):
            texts, seconds = await order_batch(engine, constrained)
            ok = sum(valid(t) for t in texts)
            kind = "constrained" if constrained else "unconstrained"
            print(f"{kind}: {ok}/{len(texts)} valid, batch {seconds:.2f} s")  # noqa: T201
            for t in texts:
                print("   ", json.dumps(t))  # noqa: T201
    finally:
        await engine.shutdown()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
