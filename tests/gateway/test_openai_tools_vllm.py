"""A tool call on the real SmolLM2 through the gateway (``-m vllm``): the tools reach the
model as a system-prompt block (its chat template takes no tools), ``tool_choice: required``
is a grammar constraint in vLLM, and the answer is OpenAI's ``tool_calls`` with arguments
valid for the tool's schema. One engine, a few dozen tokens."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from .conftest import engine_ready, start_gateway

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.asyncio(loop_factories=["uvloop"]),
]

PARAMS = {
    "type": "object",
    "properties": {"key": {"type": "string", "maxLength": 24}},
    "required": ["key"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "kv_get", "description": "Read a stored value", "parameters": PARAMS},
    }
]


def needs_smollm2() -> None:
    pytest.importorskip("vllm", reason="needs vLLM: pip install -e '.[cpu]'")
    from actoros.inference.models import DEFAULT_MODEL, ModelNotFound, resolve

    try:
        resolve(DEFAULT_MODEL)
    except ModelNotFound:
        pytest.skip(f"{DEFAULT_MODEL} is not pulled: run 'actoros model pull' (make setup does)")


async def test_smollm2_makes_a_schema_valid_tool_call(tmp_path: Path) -> None:
    needs_smollm2()
    inference = {
        "engine": "vllm",
        "model": "smollm2-135m-instruct",
        "engine_args": {
            "dtype": "float32",
            "max_model_len": 1024,
            "max_num_seqs": 4,
            "kv_cache_memory_gib": 0.25,
        },
    }
    async with start_gateway(tmp_path, inference=inference, wait_engine=False) as gateway:
        await engine_ready(gateway.system, timeout=480)  # minutes on a loaded CPU
        client = gateway.client(timeout=120.0)
        messages = [{"role": "user", "content": "Read the value stored under order:1042."}]
        completion = await client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=messages,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice="required",
            parallel_tool_calls=False,
            temperature=0,
            max_tokens=48,
        )
        [choice] = completion.choices
        assert choice.finish_reason == "tool_calls", choice
        [call] = choice.message.tool_calls or []
        assert call.function.name == "kv_get"
        jsonschema.validate(json.loads(call.function.arguments), PARAMS)
