"""Admission for the inference actor: which waiting request goes to the engine next.

Pure data structure, no I/O: lower ``priority`` first; within one priority, requesters take
turns (round robin), and each requester's own requests keep their order. So an agent with
1,000 queued requests delays another agent's single request by at most one turn.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Priority lanes of per-requester FIFO queues, served round robin within a lane."""

    __slots__ = ("_lanes", "_len")

    def __init__(self) -> None:
        self._lanes: dict[int, OrderedDict[Hashable, deque[T]]] = {}
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def push(self, item: T, *, priority: int, requester: Hashable) -> None:
        lane = self._lanes.get(priority)
        if lane is None:
            lane = self._lanes[priority] = OrderedDict()
        queue = lane.get(requester)
        if queue is None:
            queue = lane[requester] = deque()
        queue.append(item)
        self._len += 1

    def pop(self) -> T:
        """The next item: lowest priority lane, the requester whose turn it is."""
        if not self._len:
            raise IndexError("pop from an empty FairQueue")
        priority = min(self._lanes)
        lane = self._lanes[priority]
        requester, queue = next(iter(lane.items()))
        item = queue.popleft()
        if queue:
            lane.move_to_end(requester)  # next turn goes to the next requester
        else:
            del lane[requester]
            if not lane:
                del self._lanes[priority]
        self._len -= 1
        return item

    def remove_where(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove and return every item for which ``predicate(item)`` is true."""
        removed: list[T] = []
        for priority in list(self._lanes):
            lane = self._lanes[priority]
            for requester in list(lane):
                keep: deque[T] = deque()
                for item in lane[requester]:
                    (removed if predicate(item) else keep).append(item)
                if keep:
                    lane[requester] = keep  # same key: its turn in the round is kept
                else:
                    del lane[requester]
            if not lane:
                del self._lanes[priority]
        self._len -= len(removed)
        return removed

    def __iter__(self) -> Iterator[T]:
        for priority in sorted(self._lanes):
            for queue in self._lanes[priority].values():
                yield from queue
