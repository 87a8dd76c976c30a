"""Streamed asks read by pulling (issue 12): once admitted, a ``CompletionStream``'s reader
drives its generation itself. What must hold regardless: deltas in index order, none lost
however slowly the stream is read, the ``Completion`` last and equal to the deltas' text, no
task per streamed request, and every way of leaving early (closing, dropping the stream,
cancelling the reader, closing from another task) frees the engine slot and aborts the
engine's request. No assertion depends on how long anything took.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from actoros import ActorSystem
from actoros.inference.errors import InferenceError
from actoros.inference.messages import Completion, Generate, TokenDelta

from .test_actor import (
    ENDLESS,
    ENDLESS_PACE,
    Engines,
    settle_engine,
    spawn_inference,
    stats,
    streaming,
    wait_stats,
)

pytestmark = pytest.mark.timeout(10)

SHORT = Generate(prompt="tell me", max_tokens=12, ignore_eos=True, stream=True)


async def read_all(items: object) -> tuple[list[TokenDelta], Completion]:
    deltas: list[TokenDelta] = []
    async for item in items:  # type: ignore[attr-defined]
        if isinstance(item, TokenDelta):
            deltas.append(item)
        else:
            assert isinstance(item, Completion)
            return deltas, item
    raise AssertionError("the stream ended without a completion")


async def test_a_stream_read_after_its_generation_finished_loses_no_token(
    rt_system: ActorSystem,
) -> None:
    engines = Engines()
    llm = await spawn_inference(rt_system, engines)
    first = await llm.ask(SHORT)
    # a second request runs to its end while the first stream is not read at all
    second_deltas, second = await read_all(await llm.ask(SHORT))
    deltas, completion = await read_all(first)

    assert [d.index for d in deltas] == list(range(len(deltas)))
    assert "".join(d.text for d in deltas) == completion.text == second.text
    assert completion.usage.completion_tokens == SHORT.max_tokens
    assert {d.request_id for d in deltas} == {completion.request_id}
    with pytest.raises(StopAsyncIteration):  # nothing after the completion
        await first.__anext__()
    await settle_engine(llm, engines.engine)


async def test_streamed_requests_run_in_their_readers_without_a_task_each(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines)
    before = len(asyncio.all_tasks())
    streams = [await llm.ask(streaming(ENDLESS)) for _ in range(20)]
    for s in streams:
        assert isinstance(await s.__anext__(), TokenDelta)  # admitted and generating
    assert (await stats(llm)).in_flight == 20
    assert len(asyncio.all_tasks()) == before  # no task per request: the readers drive them
    for s in streams:
        await s.aclose()
    await settle_engine(llm, engines.engine)


async def test_a_stream_dropped_unread_frees_its_slot_for_the_next_request(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines, max_in_flight=1)
    dropped = await llm.ask(streaming(ENDLESS))
    assert isinstance(await dropped.__anext__(), TokenDelta)
    del dropped
    gc.collect()
    # the only slot is free again: a short request completes
    _, completion = await read_all(await llm.ask(SHORT))
    assert completion.finish_reason == "length"
    await settle_engine(llm, engines.engine)


async def test_cancelling_the_reader_aborts_the_request_and_frees_its_slot(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines, max_in_flight=1)
    items = await llm.ask(streaming(ENDLESS))
    got_one = asyncio.Event()

    async def reader() -> None:
        async for _ in items:
            got_one.set()

    task = asyncio.create_task(reader())
    await got_one.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle_engine(llm, engines.engine)
    _, completion = await read_all(await llm.ask(SHORT))
    assert completion.finish_reason == "length"


async def test_closing_a_stream_while_another_task_reads_it_ends_that_read(
    rt_system: ActorSystem,
) -> None:
    engines = Engines(token_delay=ENDLESS_PACE)
    llm = await spawn_inference(rt_system, engines, max_in_flight=1)
    items = await llm.ask(streaming(ENDLESS))
    got_one = asyncio.Event()
    seen: list[object] = []

    async def reader() -> None:
        try:
            async for item in items:
                seen.append(item)
                got_one.set()
        except InferenceError as exc:
            seen.append(exc)

    task = asyncio.create_task(reader())
    await got_one.wait()
    await items.aclose()  # from this task, while the reader waits inside the generation
    await asyncio.wait_for(task, timeout=5)
    await settle_engine(llm, engines.engine)
    assert (await stats(llm)).completed == 0
    # the reader got deltas, then either stopped or met the abort; never a completion
    assert not any(isinstance(item, Completion) for item in seen)


async def test_waiting_streams_start_in_admission_order_as_slots_free(
    rt_system: ActorSystem,
) -> None:
    engines = Engines()
    llm = await spawn_inference(rt_system, engines, max_in_flight=2)
    streams = [await llm.ask(SHORT) for _ in range(6)]
    await wait_stats(llm, lambda m: (m.in_flight, m.waiting) == (2, 4))
    # read the last one first: it waits for admission while the others are unread, and is
    # admitted once earlier ones finish (read) and free their slots
    last = asyncio.create_task(read_all(streams[-1]))
    results = [await read_all(s) for s in streams[:-1]]
    results.append(await last)
    ids = [completion.request_id for _, completion in results]
    assert len(set(ids)) == 6
    assert all(c.usage.completion_tokens == SHORT.max_tokens for _, c in results)
    await settle_engine(llm, engines.engine)
