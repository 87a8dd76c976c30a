"""Threads through the gateway: each belongs to the token and the agent it was opened for, and
a thread id is looked up by key.

Issue 9: a token limited to ``router`` continued another token's ``faq`` thread (and read back
that user's secret); an unknown ``X-Actoros-Thread`` listed every thread (0.9 s each with
200k threads).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

from actoros.gateway import THREAD_HEADER
from actoros.kernel.threads import CreateThread, Read

from .conftest import RunningGateway, start_gateway

pytestmark = pytest.mark.timeout(60)

SECRET = [{"role": "user", "content": "my card number is 4111 1111 1111 1111"}]
ASK = [{"role": "user", "content": "what did I just tell you?"}]

TOKENS = {
    "tokens": [
        {"name": "alice", "token": "alice-secret-token"},
        {"name": "mallory", "token": "mallory-secret-token", "agents": ["router", "echo"]},
        {"name": "bob", "token": "bob-secret-token"},
    ]
}


def body(error: openai.APIStatusError) -> dict[str, Any]:
    assert isinstance(error.body, dict)
    return error.body


async def opened(client: openai.AsyncOpenAI, model: str) -> str:
    """A new conversation with ``model``; its thread id."""
    reply = await client.chat.completions.create(model=model, messages=SECRET)  # type: ignore[arg-type]
    thread: str = reply.thread_id  # type: ignore[attr-defined]
    return thread


async def assert_not_theirs(client: openai.AsyncOpenAI, model: str, thread: str) -> None:
    """Continuing ``thread`` with ``model`` is 404, streamed or not, as for no thread."""
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(
                model=model, messages=ASK, stream=stream, extra_headers={THREAD_HEADER: thread}
            )  # type: ignore[call-overload]
        error = body(caught.value)
        assert error["code"] == "thread_not_found" and error["param"] == THREAD_HEADER
        assert error["type"] == "invalid_request_error"


async def history(gateway: RunningGateway, thread: str) -> list[str]:
    store = gateway.system.service("threads")
    assert store is not None
    return [m.content for m in await store.ask(Read(thread_id=thread))]


async def test_a_thread_belongs_to_the_token_that_opened_it(tmp_path: Path) -> None:
    async with start_gateway(tmp_path, gateway=TOKENS) as gateway:
        alice = gateway.client(api_key="alice-secret-token")
        mallory = gateway.client(api_key="mallory-secret-token")
        bob = gateway.client(api_key="bob-secret-token")
        thread = await opened(alice, "faq")
        before = await history(gateway, thread)
        await assert_not_theirs(mallory, "router", thread)  # the request
        await assert_not_theirs(bob, "faq", thread)  # a token that may reach faq, too
        assert await history(gateway, thread) == before  # nothing reached the thread
        again = await alice.chat.completions.create(
            model="faq", messages=ASK, extra_headers={THREAD_HEADER: thread}
        )  # type: ignore[call-overload]
        assert again.thread_id == thread  # type: ignore[attr-defined]
        assert len(await history(gateway, thread)) == len(before) + 2


async def test_a_thread_belongs_to_the_agent_it_was_opened_for(gateway: RunningGateway) -> None:
    client = gateway.client()  # no tokens: everyone is the same caller
    thread = await opened(client, "faq")
    await assert_not_theirs(client, "router", thread)
    await assert_not_theirs(client, "echo", thread)
    routed = await opened(client, "router")
    await assert_not_theirs(client, "faq", routed)
    for model, own in (("faq", thread), ("router", routed)):
        reply = await client.chat.completions.create(
            model=model, messages=ASK, extra_headers={THREAD_HEADER: own}
        )  # type: ignore[call-overload]
        assert reply.thread_id == own  # type: ignore[attr-defined]


async def test_a_thread_opened_outside_the_gateway_is_nobodys_to_continue(
    gateway: RunningGateway,
) -> None:
    store = gateway.system.service("threads")
    assert store is not None
    workload_thread = await store.ask(CreateThread(title="faq"))  # as an agent opens one
    await assert_not_theirs(gateway.client(), "faq", workload_thread)


async def test_not_yours_and_no_such_thread_are_the_same_answer(tmp_path: Path) -> None:
    async with start_gateway(tmp_path, gateway=TOKENS) as gateway:
        thread = await opened(gateway.client(api_key="alice-secret-token"), "faq")
        bob = gateway.client(api_key="bob-secret-token")
        answers = []
        for given in (thread, uuid.uuid4().hex):
            with pytest.raises(openai.NotFoundError) as caught:
                await bob.chat.completions.create(
                    model="faq", messages=ASK, extra_headers={THREAD_HEADER: given}
                )  # type: ignore[call-overload]
            answers.append(body(caught.value)["message"].replace(given, "<id>"))
        assert answers[0] == answers[1]


def add_threads(path: Path, count: int) -> None:
    """``count`` threads straight into a threads file (a store with a long history)."""
    conn = sqlite3.connect(path)
    now = time.time()
    with conn:
        conn.executemany(
            "INSERT INTO threads (id, title, created, updated) VALUES (?, 'faq', ?, ?)",
            ((uuid.uuid4().hex, now, now) for _ in range(count)),
        )
    conn.close()


async def store_work(gateway: RunningGateway, unknown: int) -> int:
    """SQLite virtual-machine steps the thread store runs while the gateway answers
    ``unknown`` requests naming threads that do not exist: a count, not a time."""
    store = gateway.system.service("threads")
    assert store is not None
    db = store._cell._actor._db  # type: ignore[union-attr]
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    await db.call(lambda conn: conn.set_progress_handler(step, 1))
    client = gateway.client()
    for _ in range(unknown):
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="faq", messages=ASK, extra_headers={THREAD_HEADER: uuid.uuid4().hex}
            )  # type: ignore[call-overload]
    await db.call(lambda conn: conn.set_progress_handler(None, 0))
    return steps


async def test_an_unknown_thread_costs_one_lookup_however_many_threads_there_are(
    tmp_path: Path,
) -> None:
    work = []
    for count in (10, 20_000):
        (tmp_path / str(count)).mkdir()
        async with start_gateway(tmp_path / str(count)) as gateway:
            add_threads(tmp_path / str(count) / "state" / "threads.sqlite", count)
            work.append(await store_work(gateway, unknown=20))
    few, many = work
    # a lookup by key: the same few steps (a deeper b-tree at most); a scan: 2,000 times more
    assert many <= 2 * few + 20, work
