"""FairQueue: priority lanes, round robin across requesters, FIFO per requester."""

from __future__ import annotations

from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actoros.inference.admission import FairQueue

T = TypeVar("T")

pytestmark = pytest.mark.timeout(30)


def drain(queue: FairQueue[T]) -> list[T]:
    return [queue.pop() for _ in range(len(queue))]


def test_lower_priority_value_is_served_first_whatever_the_arrival_order() -> None:
    queue: FairQueue[str] = FairQueue()
    for item, priority in [("p5", 5), ("p0", 0), ("p3", 3), ("p-1", -1)]:
        queue.push(item, priority=priority, requester="a")
    assert drain(queue) == ["p-1", "p0", "p3", "p5"]


def test_one_requesters_items_keep_their_order() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(5):
        queue.push(f"a{i}", priority=0, requester="a")
    assert drain(queue) == ["a0", "a1", "a2", "a3", "a4"]


def test_requesters_take_turns_within_a_priority() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(3):
        queue.push(f"a{i}", priority=0, requester="a")
    for i in range(2):
        queue.push(f"b{i}", priority=0, requester="b")
    queue.push("c0", priority=0, requester="c")
    assert drain(queue) == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_a_single_request_waits_at_most_one_turn_behind_a_thousand() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(1000):
        queue.push(f"flood{i}", priority=0, requester="flood")
    queue.push("single", priority=0, requester="single")
    assert [queue.pop(), queue.pop()] == ["flood0", "single"]
    assert len(queue) == 999


def test_priority_beats_fairness() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a-low", priority=1, requester="a")
    queue.push("b-low", priority=1, requester="b")
    queue.push("b-high", priority=0, requester="b")
    assert drain(queue) == ["b-high", "a-low", "b-low"]


def test_a_requester_that_comes_back_joins_the_end_of_the_round() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.push("a0", priority=0, requester="a")
    queue.push("b0", priority=0, requester="b")
    assert queue.pop() == "a0"  # a's queue is now empty and leaves the round
    queue.push("a1", priority=0, requester="a")
    queue.push("c0", priority=0, requester="c")
    assert drain(queue) == ["b0", "a1", "c0"]


def test_len_and_iteration_follow_pushes_and_pops() -> None:
    queue: FairQueue[str] = FairQueue()
    assert len(queue) == 0 and not queue
    queue.push("x", priority=2, requester="a")
    queue.push("y", priority=1, requester="b")
    assert len(queue) == 2
    assert list(queue) == ["y", "x"]  # serving order of the lanes
    queue.pop()
    assert len(queue) == 1


def test_pop_from_an_empty_queue_raises_index_error() -> None:
    with pytest.raises(IndexError):
        FairQueue[str]().pop()


def test_remove_where_takes_out_matching_items_and_keeps_the_rest_in_order() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(4):
        queue.push(f"a{i}", priority=0, requester="a")
    queue.push("b0", priority=1, requester="b")
    removed = queue.remove_where(lambda item: item in ("a1", "a3", "b0"))
    assert sorted(removed) == ["a1", "a3", "b0"]
    assert len(queue) == 2
    assert drain(queue) == ["a0", "a2"]


def test_remove_where_everything_leaves_an_empty_queue_usable() -> None:
    queue: FairQueue[str] = FairQueue()
    for i in range(3):
        queue.push(f"a{i}", priority=i, requester="a")
    assert len(queue.remove_where(lambda item: True)) == 3
    assert len(queue) == 0
    queue.push("again", priority=0, requester="a")
    assert queue.pop() == "again"


pushes = st.lists(st.tuples(st.integers(0, 2), st.sampled_from("abcd")), min_size=1, max_size=60)


@given(pushes)
def test_serving_order_is_priority_then_round_robin_then_fifo(items: list[tuple[int, str]]) -> None:
    queue: FairQueue[tuple[int, str, int]] = FairQueue()
    for seq, (priority, requester) in enumerate(items):
        queue.push((priority, requester, seq), priority=priority, requester=requester)
    served = drain(queue)

    assert sorted(served) == sorted((p, r, s) for s, (p, r) in enumerate(items))
    # lanes in priority order
    assert [p for p, _, _ in served] == sorted(p for p, _, _ in served)
    # a requester's items of one priority keep their arrival order
    for priority in range(3):
        for requester in "abcd":
            mine = [s for p, r, s in served if (p, r) == (priority, requester)]
            assert mine == sorted(mine)
    # round robin: within a lane, no requester gets a second turn before every other requester
    # still waiting in that lane had one (counts never drift apart by more than one)
    for priority in range(3):
        lane = [r for p, r, _ in served if p == priority]
        total = {r: lane.count(r) for r in set(lane)}
        seen = dict.fromkeys(total, 0)
        for requester in lane:
            seen[requester] += 1
            for other, count in seen.items():
                if count < total[other]:  # other still has items waiting
                    assert seen[requester] <= count + 1
