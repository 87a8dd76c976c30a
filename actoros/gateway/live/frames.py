"""The live feed's JSON, declared once: the gateway encodes these Structs and ``actoros top``
decodes ``/api/tree`` into the same ones.

A frame's rows are a tagged union: an actor (``ActorInfo``, ``"type": "ActorInfo"``) or a
group of actors not listed (``ActorGroup``, ``"type": "ActorGroup"``). ``inference`` is the
inference actor's own ``InferenceMetrics``, as it answered ``InferenceStats()``.
"""

from __future__ import annotations

import msgspec

from actoros.core import ActorInfo
from actoros.inference.actor import InferenceMetrics

__all__ = ["ActorGroup", "Row", "Sample", "Totals", "TreeFrame"]


class ActorGroup(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A row standing for ``hidden`` actors not listed (siblings, with their subtrees).

    Same fields as ``ActorInfo``; ``restarts``, ``mailbox`` and ``processed`` are sums.
    """

    path: str
    parent: str | None
    name: str
    kind: str = ""
    state: str = ""
    restarts: int
    mailbox: int
    processed: int
    children: int = 0
    hidden: int


Row = ActorInfo | ActorGroup
"""A row of a frame."""


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """Every actor counted, the hidden ones too."""

    actors: int
    restarts: int
    mailbox: int
    processed: int
    dead_letters: int


class TreeFrame(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /api/tree``, and the data of each ``tree`` event."""

    system: str
    time: float  # the server's clock (Unix seconds)
    uptime_s: float
    totals: Totals
    hidden: int  # actors behind ``ActorGroup`` rows
    actors: list[Row]
    inference: InferenceMetrics | None


class Sample(msgspec.Struct, frozen=True, array_like=True):
    """One point of the throughput chart: ``[t, tokens_per_s]`` (Unix seconds)."""

    t: float
    tokens_per_s: float
