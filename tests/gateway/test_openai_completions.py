"""What vLLM's server offers clients beside chat: ``POST /v1/completions`` (streamed and
not, usage, ``include_usage``), ``n > 1`` on both endpoints, ``logprobs`` / ``top_logprobs``
in both formats, and readiness: ``GET /health`` and ``actoros_ready`` in ``/v1/models``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import RunningGateway, engine_ready, start_gateway
from .test_openai_errors import body, still_serving

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hello there"}]


async def test_a_text_completion_has_text_usage_and_a_finish_reason(
    gateway: RunningGateway,
) -> None:
    client = gateway.client()
    completion = await client.completions.create(
        model="fake", prompt="Once upon a time", max_tokens=5
    )
    assert completion.object == "text_completion"
    assert completion.id.startswith("cmpl-")
    assert completion.model == "fake"
    [choice] = completion.choices
    assert choice.index == 0 and choice.text
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 4  # the fake engine counts words
    assert 1 <= completion.usage.completion_tokens <= 5
    exact = await client.completions.create(
        model="fake", prompt="Once upon a time", max_tokens=7, extra_body={"ignore_eos": True}
    )
    assert exact.usage is not None and exact.usage.completion_tokens == 7
    assert exact.choices[0].finish_reason == "length"


async def test_a_streamed_text_completion_ends_with_its_usage(gateway: RunningGateway) -> None:
    client = gateway.client()
    fields: dict[str, Any] = {"model": "fake", "prompt": "Once upon a time", "max_tokens": 6}
    whole = await client.completions.create(**fields, seed=3)
    stream = await client.completions.create(
        **fields, seed=3, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert {c.object for c in chunks} == {"text_completion"}
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length") and not any(finishes[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    assert all(c.usage is None for c in chunks[:-1])


async def test_n_choices_are_indexed_with_distinct_seeds(gateway: RunningGateway) -> None:
    client = gateway.client()
    chat = await client.chat.completions.create(
        model="fake", messages=USER, n=3, seed=11, max_tokens=12
    )
    assert [c.index for c in chat.choices] == [0, 1, 2]
    texts = [c.message.content for c in chat.choices]
    assert len(set(texts)) > 1  # seeds 11, 12, 13
    for i, text in enumerate(texts):  # choice i is the answer of seed 11 + i
        one = await client.chat.completions.create(
            model="fake", messages=USER, seed=11 + i, max_tokens=12
        )
        assert one.choices[0].message.content == text
    assert chat.usage is not None
    one_prompt = one.usage.prompt_tokens  # type: ignore[union-attr]
    assert chat.usage.prompt_tokens == one_prompt  # the prompt counts once
    text_n = await client.completions.create(
        model="fake", prompt=["a b", "c d e"], n=2, max_tokens=3, extra_body={"ignore_eos": True}
    )
    assert [c.index for c in text_n.choices] == [0, 1, 2, 3]
    assert text_n.usage is not None
    assert (text_n.usage.prompt_tokens, text_n.usage.completion_tokens) == (2 + 3, 4 * 3)


async def test_n_streamed_choices_each_finish(gateway: RunningGateway) -> None:
    client = gateway.client()
    stream = await client.chat.completions.create(
        model="fake",
        messages=USER,
        n=3,
        seed=5,
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts = {0: "", 1: "", 2: ""}
    finished: list[int] = []
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            assert choice.index not in finished
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.append(choice.index)
    assert sorted(finished) == [0, 1, 2]
    whole = await client.chat.completions.create(
        model="fake", messages=USER, n=3, seed=5, max_tokens=10
    )
    assert [c.message.content for c in whole.choices] == [texts[0], texts[1], texts[2]]
    assert usage is not None and whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


async def test_chat_logprobs_have_each_token_and_its_alternatives(
    gateway: RunningGateway,
) -> None:
    client = gateway.client()
    completion = await client.chat.completions.create(
        model="fake", messages=USER, logprobs=True, top_logprobs=3, max_tokens=6
    )
    [choice] = completion.choices
    assert choice.logprobs is not None and choice.logprobs.content
    assert completion.usage is not None
    assert len(choice.logprobs.content) == completion.usage.completion_tokens
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    for token in choice.logprobs.content:
        assert token.logprob <= 0
        assert token.bytes == list(token.token.encode())
        assert len(token.top_logprobs) == 3
    plain = await client.chat.completions.create(model="fake", messages=USER, max_tokens=6)
    assert plain.choices[0].logprobs is None
    stream = await client.chat.completions.create(
        model="fake", messages=USER, logprobs=True, max_tokens=6, stream=True
    )
    streamed = []
    async for chunk in stream:
        for c in chunk.choices:
            if c.delta.content:
                assert c.logprobs is not None and c.logprobs.content
                streamed.extend(c.logprobs.content)
                assert all(t.top_logprobs == [] for t in c.logprobs.content)  # top_logprobs 0
    assert "".join(t.token for t in streamed) == choice.message.content


async def test_completion_logprobs_are_in_the_completions_format(
    gateway: RunningGateway,
) -> None:
    client = gateway.client()
    completion = await client.completions.create(
        model="fake", prompt="Once upon a time", max_tokens=5, logprobs=2
    )
    [choice] = completion.choices
    logprobs = choice.logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs
    assert logprobs.top_logprobs is not None and logprobs.text_offset is not None
    n = len(logprobs.tokens)
    assert len(logprobs.token_logprobs) == len(logprobs.top_logprobs) == n
    assert "".join(logprobs.tokens) == choice.text
    offsets = [sum(len(t) for t in logprobs.tokens[:i]) for i in range(n)]
    assert logprobs.text_offset == offsets
    assert all(len(top) <= 2 and top for top in logprobs.top_logprobs)


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"model": "echo", "prompt": "hi"}, "model", "raw model only"),
        ({"model": "fake", "prompt": "hi", "echo": True}, "echo", "not supported"),
        ({"model": "fake", "prompt": "hi", "n": 17}, "n", "from 1 to 16"),
        ({"model": "fake", "prompt": "hi", "logprobs": 21}, "logprobs", "from 0 to 20"),
        ({"model": "fake", "prompt": [], "max_tokens": 2}, "prompt", "1 to 64"),
        ({"model": "fake", "prompt": "hi", "suffix": "x"}, "suffix", "not supported"),
        ({"model": "fake", "prompt": "hi", "extra_body": {"bogus": 1}}, "bogus", "Unrecognized"),
        (
            {"model": "fake", "prompt": "hi", "extra_body": {"repetition_penalty": 1.2}},
            "repetition_penalty",
            "not supported",
        ),
    ],
    ids=["agent", "echo", "n", "logprobs", "no-prompt", "suffix", "unknown", "repetition"],
)
async def test_bad_completion_requests_are_400s(
    gateway: RunningGateway, fields: dict[str, Any], param: str, says: str
) -> None:
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as caught:
        await client.completions.create(**fields)
    error = body(caught.value)
    assert error["param"] == param
    assert says in error["message"]
    await still_serving(gateway)


async def test_the_request_vllm_bench_serve_sends_is_served(gateway: RunningGateway) -> None:
    # vllm bench serve's completions client (vllm/benchmarks/lib/endpoint_request_func.py)
    # always sends vLLM's repetition_penalty, at its neutral 1.0: a 400 failed every request
    fields = {"model": "fake", "prompt": "Once upon a time", "max_tokens": 4, "stream": True}
    extra = {"repetition_penalty": 1.0, "ignore_eos": True}
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        for path, body_fields in (
            ("/v1/completions", {**fields, "logprobs": None}),
            ("/v1/chat/completions", {**fields, "prompt": None, "messages": USER}),
        ):
            sent = {k: v for k, v in {**body_fields, **extra}.items() if v is not None}
            reply = await http.post(path, json=sent)
            assert reply.status_code == 200, reply.text


async def test_health_is_503_until_the_engine_is_ready(tmp_path: Path) -> None:
    inference = {"engine": "fake", "engine_args": {"start_delay": 3600}}
    async with start_gateway(tmp_path, inference=inference, wait_engine=False) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            health = await http.get("/health")
            assert health.status_code == 503
            models = (await http.get("/v1/models")).json()["data"]
            ready = {m["id"]: m["actoros_ready"] for m in models}
            assert ready == {
                "echo": True,
                "hold": True,
                "faq": False,
                "router": True,
                "fake": False,
            }
            assert (await http.get("/v1/models/fake")).json()["actoros_ready"] is False


async def test_health_is_200_once_the_engine_is_ready(gateway: RunningGateway) -> None:
    await engine_ready(gateway.system)
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        health = await http.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        models = (await http.get("/v1/models")).json()["data"]
        assert all(m["actoros_ready"] for m in models)
