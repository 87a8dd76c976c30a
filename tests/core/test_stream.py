"""``ReplyStream``: items in order, then one final value or an error; closing early stops the
work. (``AgentStream`` and ``CompletionStream`` are its subclasses, tested with their actors.)"""

from __future__ import annotations

import pytest

from actoros.core.stream import ReplyStream

pytestmark = pytest.mark.timeout(5)


class Closes:
    """An ``on_close`` that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def stream(on_close: Closes | None = None) -> ReplyStream[str, int]:
    return ReplyStream(int, on_close or Closes(), "s")


async def read(s: ReplyStream[str, int]) -> list[str | int]:
    return [item async for item in s]


async def test_items_come_in_order_then_the_final_value_then_the_end() -> None:
    s = stream()
    s._push("a")
    s._push("b")
    s._end(3)
    assert await read(s) == ["a", "b", 3]
    assert s.closed and s.ended
    assert await read(s) == []  # a finished stream stays finished


async def test_nothing_is_queued_after_the_end() -> None:
    s = stream()
    s._end(1)
    s._push("late")
    s._end(2)
    assert await read(s) == [1]


async def test_an_error_end_is_raised_from_the_iteration_after_the_items() -> None:
    s = stream()
    s._push("a")
    s._end(ValueError("broken"))
    items: list[str | int] = []
    with pytest.raises(ValueError, match="broken"):
        async for item in s:
            items.append(item)
    assert items == ["a"] and s.closed


async def test_closing_before_the_end_calls_on_close_once() -> None:
    closes = Closes()
    s = stream(closes)
    s._push("a")
    await s.aclose()
    await s.aclose()
    assert closes.calls == 1 and s.closed
    assert await read(s) == []  # the queued item is dropped


async def test_closing_after_the_end_or_at_it_never_calls_on_close() -> None:
    ended, read_out = Closes(), Closes()
    unread = stream(ended)
    unread._end(1)
    await unread.aclose()  # the work is over: nothing to stop
    done = stream(read_out)
    done._end(2)
    async with done:
        assert await done.final() == 2
    assert (ended.calls, read_out.calls) == (0, 0)


async def test_leaving_async_with_closes_the_stream() -> None:
    closes = Closes()
    async with stream(closes) as s:
        s._push("a")
    assert closes.calls == 1 and s.closed


async def test_final_skips_the_items_and_names_a_stream_closed_before_its_end() -> None:
    s = stream()
    s._push("a")
    s._end(7)
    assert await s.final() == 7
    cut = stream()
    await cut.aclose()
    with pytest.raises(RuntimeError, match="<ReplyStream 's' closed> was closed before its final"):
        await cut.final()


def test_repr_says_the_label_and_the_state() -> None:
    s = stream()
    assert repr(s) == "<ReplyStream 's' open>"
    s._end(1)
    assert repr(s) == "<ReplyStream 's' ended>"
