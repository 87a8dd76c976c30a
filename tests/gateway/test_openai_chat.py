"""The OpenAI-compatible API's answers, through the official ``openai`` client: agents and
the raw model, non-streaming and streaming (the SSE wire format line by line), threads,
usage, the sampling fields, and the models listing."""

from __future__ import annotations

import json

import pytest

from actoros.gateway import THREAD_HEADER
from actoros.kernel.threads import Read

from .conftest import RunningGateway

pytestmark = pytest.mark.timeout(30)

USER = [{"role": "user", "content": "hello there"}]


async def test_models_lists_every_agent_and_the_raw_model(gateway: RunningGateway) -> None:
    client = gateway.client()
    models = await client.models.list()
    assert [m.id for m in models.data] == ["echo", "hold", "faq", "router", "fake"]
    assert {m.object for m in models.data} == {"model"}
    assert {m.owned_by for m in models.data} == {"actoros"}
    faq = await client.models.retrieve("faq")
    assert faq.id == "faq"


async def test_an_agents_reply_is_the_completion(gateway: RunningGateway) -> None:
    client = gateway.client()
    raw = await client.chat.completions.with_raw_response.create(model="echo", messages=USER)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "echo"
    assert completion.id.startswith("chatcmpl-")
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello there"
    assert choice.finish_reason == "stop"
    # a rule agent calls no model: its turn used no tokens
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (0, 0)
    thread = raw.headers[THREAD_HEADER]
    assert completion.model_extra is not None and completion.model_extra["thread_id"] == thread


async def test_only_the_last_user_message_goes_to_the_agent(gateway: RunningGateway) -> None:
    client = gateway.client()
    messages = [
        {"role": "system", "content": "ignored: the agent has its own"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    completion = await client.chat.completions.create(model="echo", messages=messages)
    assert completion.choices[0].message.content == "echo: second"


async def test_a_conversation_continues_in_its_thread(gateway: RunningGateway) -> None:
    client = gateway.client()
    first = await client.chat.completions.with_raw_response.create(
        model="faq", messages=[{"role": "user", "content": "what are your hours?"}]
    )
    thread = first.headers[THREAD_HEADER]
    second = await client.chat.completions.with_raw_response.create(
        model="faq",
        messages=[{"role": "user", "content": "and on sundays?"}],
        extra_headers={THREAD_HEADER: thread},
    )
    assert second.headers[THREAD_HEADER] == thread
    store = gateway.system.service("threads")
    assert store is not None
    history = await store.ask(Read(thread_id=thread))
    assert [(m.role, m.content) for m in history] == [
        ("user", "what are your hours?"),
        ("assistant", first.parse().choices[0].message.content),
        ("user", "and on sundays?"),
        ("assistant", second.parse().choices[0].message.content),
    ]


async def test_each_new_conversation_gets_its_own_thread(gateway: RunningGateway) -> None:
    client = gateway.client()
    a = await client.chat.completions.with_raw_response.create(model="router", messages=USER)
    b = await client.chat.completions.with_raw_response.create(model="router", messages=USER)
    assert a.headers[THREAD_HEADER] != b.headers[THREAD_HEADER]
    # the router forwarded to faq, which kept the turn in the gateway's thread
    store = gateway.system.service("threads")
    assert store is not None
    history = await store.ask(Read(thread_id=a.headers[THREAD_HEADER]))
    assert [m.role for m in history] == ["user", "assistant"]


async def test_the_raw_model_gets_every_message_and_reports_usage(gateway: RunningGateway) -> None:
    client = gateway.client()
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "one two three"},
    ]
    completion = await client.chat.completions.create(
        model="fake", messages=messages, max_tokens=5, seed=7, temperature=0
    )
    assert completion.model == "fake"
    assert completion.choices[0].finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None
    # the fake engine counts the words of its chat layout: "<|system|> be brief" ... (3 + 4 + 1)
    assert usage.prompt_tokens == 8
    assert 1 <= usage.completion_tokens <= 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert "thread_id" not in (completion.model_extra or {})


async def test_ignore_eos_makes_the_raw_model_generate_max_tokens(gateway: RunningGateway) -> None:
    client = gateway.client()
    completion = await client.chat.completions.create(
        model="fake", messages=USER, max_tokens=40, extra_body={"ignore_eos": True}
    )
    assert completion.usage is not None and completion.usage.completion_tokens == 40
    assert completion.choices[0].finish_reason == "length"


async def test_max_tokens_and_stop_reach_the_model(gateway: RunningGateway) -> None:
    client = gateway.client()
    long = await client.chat.completions.create(model="fake", messages=USER, max_tokens=3, seed=1)
    assert long.choices[0].finish_reason == "length"
    assert long.usage is not None and long.usage.completion_tokens == 3
    words = (long.choices[0].message.content or "").split()
    stopped = await client.chat.completions.create(
        model="fake", messages=USER, max_tokens=3, seed=1, stop=[f" {words[1]}"]
    )
    assert stopped.choices[0].message.content == words[0]
    assert stopped.choices[0].finish_reason == "stop"
    newer = await client.chat.completions.create(
        model="fake", messages=USER, max_completion_tokens=2, seed=1
    )
    assert newer.usage is not None and newer.usage.completion_tokens == 2


async def test_the_seed_reaches_the_model(gateway: RunningGateway) -> None:
    client = gateway.client()

    async def text(seed: int) -> str:
        completion = await client.chat.completions.create(
            model="fake", messages=USER, max_tokens=12, seed=seed
        )
        return completion.choices[0].message.content or ""

    assert await text(1) == await text(1)
    assert await text(1) != await text(2)


# -- streaming --------------------------------------------------------------------------------


async def sse_lines(gateway: RunningGateway, **request: object) -> tuple[dict[str, str], list[str]]:
    """The response headers and the non-empty lines of a streamed answer, as sent."""
    client = gateway.client()
    async with client.chat.completions.with_streaming_response.create(
        stream=True, **request
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in response.iter_lines()]
        return dict(response.headers), [line for line in lines if line]


async def test_a_raw_stream_is_the_openai_wire_format(gateway: RunningGateway) -> None:
    _, lines = await sse_lines(gateway, model="fake", messages=USER, max_tokens=6, seed=3)
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"fake"}
    first, *middle, last = chunks
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert middle and all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in middle)
    assert last["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    ]
    assert all("usage" not in c for c in chunks)  # only asked for with include_usage
    streamed = "".join(c["choices"][0]["delta"]["content"] for c in middle)
    whole = await gateway.client().chat.completions.create(
        model="fake", messages=USER, max_tokens=6, seed=3
    )
    assert streamed == whole.choices[0].message.content


async def test_a_raw_stream_with_include_usage_ends_with_a_usage_chunk(
    gateway: RunningGateway,
) -> None:
    client = gateway.client()
    stream = await client.chat.completions.create(
        model="fake",
        messages=USER,
        max_tokens=4,
        seed=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    *rest, usage_chunk = chunks
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == 4
    assert usage_chunk.usage.prompt_tokens == 4  # "<|user|> hello there <|assistant|>"
    assert all(chunk.usage is None for chunk in rest)
    assert rest[-1].choices[0].finish_reason == "length"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in rest)
    assert len(text.split()) == 4


async def test_an_agent_streams_its_reply(gateway: RunningGateway) -> None:
    headers, lines = await sse_lines(gateway, model="faq", messages=USER)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    thread = headers[THREAD_HEADER.lower()]
    assert {c["thread_id"] for c in chunks} == {thread}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    store = gateway.system.service("threads")
    assert store is not None
    history = await store.ask(Read(thread_id=thread))
    assert [(m.role, m.content) for m in history] == [("user", "hello there"), ("assistant", text)]


async def test_an_agent_stream_with_include_usage_ends_with_the_turns_usage(
    gateway: RunningGateway,
) -> None:
    client = gateway.client()
    stream = await client.chat.completions.create(
        model="echo", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 0  # a rule agent calls no model
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert text == "echo: hello there"


async def test_an_llm_agents_usage_is_what_its_model_calls_used(gateway: RunningGateway) -> None:
    client = gateway.client()
    completion = await client.chat.completions.create(model="faq", messages=USER)
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    stream = await client.chat.completions.create(
        model="faq", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    streamed = chunks[-1].usage
    assert streamed is not None and streamed.completion_tokens == usage.completion_tokens
    assert streamed.total_tokens == streamed.prompt_tokens + streamed.completion_tokens
