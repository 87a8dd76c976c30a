"""What the inference actor announces on ``system.events`` about its engine.

Why events: whoever must know whether the model can answer (``actoros run`` before its
workload, the gateway before a raw-model request) follows these instead of asking the actor
over and over. Per incarnation of an inference actor, at most one ``EngineReady`` and then at
most one ``EngineDown``; a restarted actor (same ``path``) announces again, so the sequence at
one path reads Ready, Down, Ready, Down... (Down may also come without a Ready: the engine
failed to start, or the actor stopped while it loaded). Both are published synchronously from
the actor, so a subscriber has the event before any later reply of that actor is received.
``readiness.py`` turns them into a wait and a flag.
"""

from __future__ import annotations

import msgspec

__all__ = ["EngineDown", "EngineReady"]


class EngineReady(msgspec.Struct, frozen=True, kw_only=True):
    """The engine of the inference actor at ``path`` has started: requests go in from now.

    ``model``: the id the model answers to, when the actor was told it (``None`` otherwise);
    ``max_model_len``, ``max_num_seqs``: what the started engine reports;
    ``supports_constraints``: whether it enforces ``Generate.constraint`` (its start-up
    canary passed); when false, a constrained request fails with ``ConstraintsUnsupported``.
    """

    path: str
    model: str | None
    max_model_len: int
    max_num_seqs: int
    supports_constraints: bool = True


class EngineDown(msgspec.Struct, frozen=True, kw_only=True):
    """The inference actor at ``path`` has no engine any more (it died, failed to start, or
    the actor stopped); ``reason`` says which. Its supervisor decides whether a new one comes."""

    path: str
    reason: str
