"""The thread store: persistence, reads, and prompts that always fit their budget."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actoros import ActorSystem
from actoros.kernel.threads import (
    MAX_MESSAGE_BYTES,
    TRUNCATION_MARKER,
    Append,
    BuildPrompt,
    CreateThread,
    GetThread,
    ListThreads,
    MessageTooLarge,
    NewMessage,
    PromptMessage,
    Read,
    ThreadMessage,
    ThreadNotFound,
    ThreadStore,
    build_prompt,
    default_count_tokens,
    truncate_to_fit,
)

pytestmark = pytest.mark.timeout(5)


class Summaries:
    """A deterministic summarizer that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], str | None]] = []

    async def __call__(self, messages: list[ThreadMessage], previous: str | None) -> str:
        self.calls.append(([m.seq for m in messages], previous))
        folded = ",".join(str(m.seq) for m in messages)
        return f"{previous};{folded}" if previous else folded


def total(prompt: list[PromptMessage], count=default_count_tokens) -> int:
    return sum(count(m) for m in prompt)


def msg(seq: int, content: str, role: str = "user") -> ThreadMessage:
    return ThreadMessage(seq=seq, role=role, content=content, created=0.0)


async def test_create_append_read_list_roundtrip(system: ActorSystem):
    store = await system.spawn(ThreadStore, Summaries(), name="threads")
    tid = await store.ask(CreateThread(title="support"))
    calls = [{"name": "calculator", "arguments": {"expr": "1+1"}}]
    seqs = await store.ask(
        Append(
            thread_id=tid,
            messages=[
                NewMessage(role="user", content="hi"),
                NewMessage(role="assistant", content="hello", agent="faq", tool_calls=calls),
                NewMessage(role="user", content="bye"),
            ],
        )
    )
    assert seqs == sorted(seqs) and len(seqs) == 3
    everything = await store.ask(Read(thread_id=tid))
    assert [m.content for m in everything] == ["hi", "hello", "bye"]
    assert everything[1].agent == "faq" and everything[1].tool_calls == calls
    assert [m.content for m in await store.ask(Read(thread_id=tid, limit=2))] == ["hello", "bye"]
    older = await store.ask(Read(thread_id=tid, limit=1, before=seqs[2]))
    assert [m.content for m in older] == ["hello"]
    other = await store.ask(CreateThread())
    infos = await store.ask(ListThreads())
    assert [(i.id, i.title, i.messages) for i in infos] == [(tid, "support", 3), (other, None, 0)]


async def test_unknown_thread_is_an_error_reply_not_a_crash(system: ActorSystem):
    store = await system.spawn(ThreadStore, Summaries(), name="threads")
    with pytest.raises(ThreadNotFound):
        await store.ask(Read(thread_id="nope"))
    with pytest.raises(ThreadNotFound):
        await store.ask(BuildPrompt(thread_id="nope", system_prompt="s", budget_tokens=100))
    with pytest.raises(ThreadNotFound):
        await store.ask(Append(thread_id="nope", messages=[NewMessage(role="user", content="x")]))
    (info,) = [i for i in system.snapshot() if i.path == store.path]
    assert info.restarts == 0  # the store answered the errors and kept running


async def test_a_stray_message_is_refused_and_an_in_memory_store_keeps_its_threads(
    system: ActorSystem,
):
    store = await system.spawn(ThreadStore, Summaries(), name="threads")
    tid = await store.ask(CreateThread(title="kept"))
    with pytest.raises(TypeError):
        await store.ask("not a thread request")
    assert (await store.ask(GetThread(thread_id=tid))).title == "kept"  # no restart: not lost


async def test_a_thread_keeps_no_build_lock_once_its_prompts_are_built(system: ActorSystem):
    """The per-thread lock that serializes prompt builds lives only while a build holds or
    waits for it: a store serving many threads keeps none for the threads it is done with."""
    made: list[ThreadStore] = []

    def store_factory() -> ThreadStore:
        made.append(ThreadStore(Summaries()))
        return made[-1]

    store = await system.spawn(store_factory, name="threads")
    for _ in range(3):
        tid = await store.ask(CreateThread())
        await store.ask(Append(thread_id=tid, messages=[NewMessage(role="user", content="x")]))
        await store.ask(BuildPrompt(thread_id=tid, system_prompt="s", budget_tokens=100))
    assert len(made[0]._locks) == 0


async def test_a_message_over_the_size_limit_is_refused_and_nothing_of_its_append_is_stored(
    system: ActorSystem,
):
    store = await system.spawn(ThreadStore, Summaries(), max_message_bytes=100)
    tid = await store.ask(CreateThread())
    fits = NewMessage(role="user", content="é" * 50)  # 100 bytes of UTF-8: the limit exactly
    too_big = NewMessage(role="user", content="é" * 51)  # 51 characters, but 102 bytes
    with pytest.raises(MessageTooLarge) as info:
        await store.ask(Append(thread_id=tid, messages=[fits, too_big]))
    assert str(info.value) == (
        "a thread message (user) of 102 bytes is over the limit of 100 bytes"
        " (services.threads.max_message_bytes)"
    )
    calls = NewMessage(role="assistant", content="x", tool_calls={"args": "y" * 100})
    with pytest.raises(MessageTooLarge, match=r"a thread message \(assistant\) of 1.. bytes"):
        await store.ask(Append(thread_id=tid, messages=[calls]))
    assert await store.ask(Read(thread_id=tid)) == []  # all or nothing
    await store.ask(Append(thread_id=tid, messages=[fits]))
    assert [m.content for m in await store.ask(Read(thread_id=tid))] == [fits.content]
    (info_,) = [i for i in system.snapshot() if i.path == store.path]
    assert info_.restarts == 0


async def test_the_default_message_limit_is_one_mebibyte(system: ActorSystem):
    store = await system.spawn(ThreadStore, Summaries())
    tid = await store.ask(CreateThread())
    big = NewMessage(role="user", content="z" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(MessageTooLarge, match="1,048,577 bytes is over the limit of 1,048,576"):
        await store.ask(Append(thread_id=tid, messages=[big]))
    limit = NewMessage(role="user", content="z" * MAX_MESSAGE_BYTES)
    assert len(await store.ask(Append(thread_id=tid, messages=[limit]))) == 1


async def test_get_thread_answers_one_threads_info_with_its_owner(system: ActorSystem):
    store = await system.spawn(ThreadStore, Summaries(), name="threads")
    mine = await store.ask(CreateThread(title="faq", owner="alice"))
    await store.ask(Append(thread_id=mine, messages=[NewMessage(role="user", content="hi")]))
    anyones = await store.ask(CreateThread())
    info = await store.ask(GetThread(thread_id=mine))
    assert (info.id, info.title, info.owner, info.messages) == (mine, "faq", "alice", 1)
    assert (await store.ask(GetThread(thread_id=anyones))).owner is None
    assert [i.owner for i in await store.ask(ListThreads())] == ["alice", None]
    with pytest.raises(ThreadNotFound):
        await store.ask(GetThread(thread_id="nope"))


def test_get_thread_is_a_lookup_by_key_not_a_scan() -> None:
    from actoros.kernel.threads import _SCHEMA, _info

    conn = sqlite3.connect(":memory:")
    conn.executescript(_SCHEMA)
    plans: list[str] = []
    conn.set_trace_callback(plans.append)
    with pytest.raises(ThreadNotFound):
        _info(conn, "nope")
    (query,) = plans
    plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + query))
    assert "SEARCH t USING" in plan and "(id=?)" in plan, plan  # the primary key's index
    assert "SCAN t" not in plan, plan


async def test_a_threads_file_from_before_owners_gets_the_column(tmp_path: Path):
    db = tmp_path / "threads.db"
    old = sqlite3.connect(db)
    old.executescript(
        "CREATE TABLE threads (id TEXT PRIMARY KEY, title TEXT, created REAL NOT NULL,"
        " updated REAL NOT NULL, summary TEXT, summary_upto INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO threads (id, title, created, updated) VALUES ('old', 'faq', 1, 1);"
    )
    old.close()
    async with ActorSystem("a") as system:
        store = await system.spawn(ThreadStore, Summaries(), str(db))
        assert (await store.ask(GetThread(thread_id="old"))).owner is None
        new = await store.ask(CreateThread(owner="bob"))
        assert (await store.ask(GetThread(thread_id=new))).owner == "bob"


async def test_threads_persist_across_store_restarts(tmp_path: Path):
    db = str(tmp_path / "threads.db")
    async with ActorSystem("a") as system:
        store = await system.spawn(ThreadStore, Summaries(), db)
        tid = await store.ask(CreateThread(title="t"))
        await store.ask(Append(thread_id=tid, messages=[NewMessage(role="user", content="x")]))
    async with ActorSystem("b") as system:
        store = await system.spawn(ThreadStore, Summaries(), db)
        assert [m.content for m in await store.ask(Read(thread_id=tid))] == ["x"]


async def test_prompt_is_the_whole_thread_when_it_fits(system: ActorSystem):
    summaries = Summaries()
    store = await system.spawn(ThreadStore, summaries, name="threads")
    tid = await store.ask(CreateThread())
    await store.ask(Append(thread_id=tid, messages=[NewMessage(role="user", content="hi")]))
    prompt = await store.ask(BuildPrompt(thread_id=tid, system_prompt="be nice", budget_tokens=100))
    assert prompt == [PromptMessage("system", "be nice"), PromptMessage("user", "hi")]
    assert summaries.calls == []


async def test_older_turns_fold_into_a_stored_running_summary(system: ActorSystem):
    summaries = Summaries()
    store = await system.spawn(ThreadStore, summaries, name="threads")
    tid = await store.ask(CreateThread())
    turns = [NewMessage(role="user", content=f"message {i:02d} " + "x" * 30) for i in range(10)]
    seqs = await store.ask(Append(thread_id=tid, messages=turns))
    ask = BuildPrompt(thread_id=tid, system_prompt="sys", budget_tokens=80)
    first = await store.ask(ask)
    assert total(first) <= 80
    assert first[0] == PromptMessage("system", "sys")
    assert first[1].role == "system" and first[1].content.startswith("Summary of")
    assert first[-1].content == turns[-1].content  # the newest turn is always there
    assert len(summaries.calls) == 1
    folded, previous = summaries.calls[0]
    assert previous is None and folded == seqs[: len(folded)]
    # Asking again does not summarize the same turns twice.
    assert await store.ask(ask) == first
    assert len(summaries.calls) == 1
    # New turns: the next fold continues from the stored summary.
    more = [NewMessage(role="user", content=f"later {i} " + "y" * 30) for i in range(4)]
    await store.ask(Append(thread_id=tid, messages=more))
    again = await store.ask(ask)
    assert total(again) <= 80 and again[-1].content == more[-1].content
    assert len(summaries.calls) == 2 and summaries.calls[1][1] is not None
    # The thread itself keeps everything.
    assert len(await store.ask(Read(thread_id=tid))) == 14


async def test_a_huge_message_is_truncated_with_a_marker(system: ActorSystem):
    store = await system.spawn(ThreadStore, Summaries(), name="threads")
    tid = await store.ask(CreateThread())
    await store.ask(Append(thread_id=tid, messages=[NewMessage(role="user", content="z" * 10_000)]))
    prompt = await store.ask(BuildPrompt(thread_id=tid, system_prompt="s", budget_tokens=200))
    assert total(prompt) <= 200
    assert prompt[-1].role == "user" and prompt[-1].content.endswith(TRUNCATION_MARKER)


async def test_custom_token_counter_is_used(system: ActorSystem):
    store = await system.spawn(ThreadStore, Summaries(), name="threads")
    tid = await store.ask(CreateThread())
    words = [NewMessage(role="user", content=f"w{i} " * 5) for i in range(20)]
    await store.ask(Append(thread_id=tid, messages=words))

    def count(m: PromptMessage) -> int:
        return len(m.content.split()) + 1

    prompt = await store.ask(
        BuildPrompt(thread_id=tid, system_prompt="s", budget_tokens=30, count_tokens=count)
    )
    assert total(prompt, count) <= 30 and prompt[-1].content == words[-1].content


def test_truncate_to_fit_edges():
    m = PromptMessage("user", "abcdef" * 100)
    assert truncate_to_fit(m, 1000, default_count_tokens) is m
    cut = truncate_to_fit(m, 20, default_count_tokens)
    assert cut is not None and default_count_tokens(cut) <= 20
    assert cut.content.endswith(TRUNCATION_MARKER)
    assert truncate_to_fit(m, 3, default_count_tokens) is None  # not even an empty message fits


texts = st.text(max_size=400)
conversations = st.lists(
    st.tuples(st.sampled_from(["user", "assistant", "tool"]), texts), max_size=30
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    system_prompt=texts,
    turns=conversations,
    budget=st.integers(min_value=0, max_value=600),
    split=st.integers(min_value=0, max_value=30),
    previous=st.none() | texts,
    by_words=st.booleans(),
)
async def test_prompt_never_exceeds_budget(system_prompt, turns, budget, split, previous, by_words):
    count = (lambda m: len(m.content.split()) * 2 + 3) if by_words else default_count_tokens
    summaries = Summaries()
    messages = [msg(i + 1, content, role) for i, (role, content) in enumerate(turns)]
    prompt, folded, summary = await build_prompt(
        system_prompt, messages, previous, budget, summaries, count
    )
    assert total(prompt, count) <= budget
    if prompt:
        assert prompt[0].role == "system"
    # Folded turns are the oldest ones, and every turn is either folded or still unsummarized.
    assert folded == messages[: len(folded)]
    if folded:
        assert summary == await Summaries()(folded, previous)
    sys_cost = count(PromptMessage("system", system_prompt))
    costs = [count(PromptMessage(m.role, m.content)) for m in messages]
    if previous is None and sys_cost + sum(costs) <= budget:
        assert folded == [] and prompt[1:] == [PromptMessage(m.role, m.content) for m in messages]
    # The newest turn is in the prompt, whole, whenever it fits in two thirds of the room left.
    avail = budget - sys_cost
    if messages and avail >= 0 and 3 * costs[-1] <= 2 * avail:
        assert prompt[-1] == PromptMessage(messages[-1].role, messages[-1].content)


async def test_a_failing_summarizer_fails_the_request_not_the_store(system: ActorSystem):
    async def broken(messages: list[ThreadMessage], previous: str | None) -> str:
        raise RuntimeError("model unavailable")

    store = await system.spawn(ThreadStore, broken, name="threads")
    tid = await store.ask(CreateThread())
    turns = [NewMessage(role="user", content="q" * 300) for _ in range(5)]
    await store.ask(Append(thread_id=tid, messages=turns))
    with pytest.raises(RuntimeError, match="model unavailable"):
        await store.ask(BuildPrompt(thread_id=tid, system_prompt="s", budget_tokens=150))
    assert len(await store.ask(Read(thread_id=tid))) == 5  # still serving, nothing folded
