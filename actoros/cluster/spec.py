"""What a node runs: its name, its Ray resources, its groups (no Ray needed to say it)."""

from __future__ import annotations

import abc
from typing import Any

import msgspec

from actoros.core import ActorSystem, SupervisorSpec

__all__ = ["GroupBuilder", "GroupSpec", "NodeSpec"]


class GroupBuilder(abc.ABC):
    """Builds a group's ``SupervisorSpec`` on the node that runs it (``build(system)``), for a
    group whose actors need that node's refs (kernel services found through its lookup)."""

    @abc.abstractmethod
    def build(self, system: ActorSystem) -> SupervisorSpec: ...


class GroupSpec(msgspec.Struct, frozen=True):
    """A top-level group to run on a node: ``target`` is a ``SupervisorSpec`` (spawned with
    ``spawn_supervisor``), a ``GroupBuilder`` (its spec built there), or an actor class /
    factory (spawned with ``args``/``kwargs``). It travels to the node by Ray (pickle)."""

    name: str
    target: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}


class NodeSpec(msgspec.Struct, frozen=True):
    """One node: its name, the Ray resources of its process, the groups it hosts, and its
    system's ``throughput`` (messages an actor handles before the loop serves the others —
    the node's links among them: a node of CPU-bound actors answers other nodes sooner with
    a lower one)."""

    name: str
    groups: tuple[GroupSpec, ...] = ()
    resources: dict[str, float] = msgspec.field(default_factory=lambda: {"CPU": 1.0})
    throughput: int = 64
