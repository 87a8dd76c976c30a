"""What the gateway needs of a running system (``actoros.app.System`` provides it)."""

from __future__ import annotations

from typing import Protocol

from actoros.config import Config
from actoros.core import ActorInfo, ActorRef, ActorSystem


class Host(Protocol):
    """A started system: its typed config, its ``ActorSystem``, agents and kernel services.

    ``agent_paths``: agent name → actor path (every configured agent, running or not);
    ``snapshot()``: every actor of the system, on every node of its cluster if it leads one
    (then each row's ``node`` says which), else ``actors.snapshot()``.
    """

    config: Config
    actors: ActorSystem
    agent_paths: dict[str, str]

    def agent(self, name: str) -> ActorRef | None: ...

    def service(self, name: str) -> ActorRef | None: ...

    async def snapshot(self) -> list[ActorInfo]: ...
