"""Messages the runtime itself sends: msgspec Structs, frozen.

Public ones (``Terminated``, ``DeadLetter``, ``LifecycleEvent``, ``StartChild``) reach user code;
the underscored ones travel only in an actor's system lane, which overtakes its user mailbox.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec

if TYPE_CHECKING:
    from .cell import ActorCell

LifecycleKind = Literal["started", "restarted", "stopped", "failed", "escalated"]


class Terminated(msgspec.Struct, frozen=True):
    """Delivered to a watcher's ``receive`` when a watched actor stops for good.

    ``reason`` is ``"normal"``, ``"stopped"``, ``"killed"``, or the repr of the failure.
    A restart is not a termination: watchers see nothing while the ref stays valid.
    """

    ref: Any
    reason: str


class DeadLetter(msgspec.Struct, frozen=True):
    """A message that could not be delivered or whose reply had nowhere to go.

    Published on ``system.events`` and logged; nothing is lost silently.
    """

    message: Any
    recipient: Any
    reason: str


class LifecycleEvent(msgspec.Struct, frozen=True):
    """An actor started, restarted, stopped, failed, or (a supervisor) escalated."""

    path: str
    kind: LifecycleKind
    reason: str | None = None


class ActorInfo(msgspec.Struct, frozen=True, kw_only=True, tag=True, omit_defaults=True):
    """One actor as ``ActorSystem.snapshot()`` sees it, at that instant. Tagged (JSON
    ``"type": "ActorInfo"``), so a union of it with other rows decodes (the live feed's).

    ``kind``: the actor's class name (its factory's name while no instance exists);
    ``state``: "starting", "running", "ended" (between incarnations) or "stopped";
    ``restarts``: incarnations after the first; ``mailbox``: messages waiting (system ones
    included); ``processed``: user messages handled over all incarnations; ``supervisor``:
    whether it has children now; ``node``: the cluster node it runs on (``None`` in a
    single-process system, and in any one node's own snapshot — ``Head.snapshot()`` sets it;
    left out of the JSON while ``None``, so a single-process system's rows read as before).
    """

    path: str
    parent: str | None
    name: str
    kind: str
    state: str
    restarts: int
    mailbox: int
    processed: int
    children: int
    node: str | None = None


class StartChild(msgspec.Struct, frozen=True):
    """Ask a supervisor to start a dynamic child; the reply is the child's ``ActorRef``."""

    spec: Any  # ChildSpec


# -- system lane (internal) ----------------------------------------------------------------


class _Stop(msgspec.Struct, frozen=True):
    """End the current incarnation; ``final`` also removes the actor for good."""

    final: bool
    done: asyncio.Future[None] | None
    reason: str


class _Restart(msgspec.Struct, frozen=True):
    """Start a fresh incarnation (sent by the parent after deciding to restart)."""

    done: asyncio.Future[None] | None


class _ChildExited(msgspec.Struct, frozen=True):
    """A child reports that its incarnation ended on its own (failure or normal exit)."""

    child: ActorCell
    incarnation: int
    reason: BaseException | None  # None: normal exit


class _RestartGroup(msgspec.Struct, frozen=True):
    """A supervisor's delayed (backoff) restart of a group of children, in start order."""

    children: tuple[ActorCell, ...]


# What travels in an actor's system lane (``Terminated`` is moved to the front of the user lane
# when the lane is drained).
SystemMessage: TypeAlias = "_Stop | _Restart | _ChildExited | _RestartGroup | Terminated"
