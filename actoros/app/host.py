"""``System``: the running system a user holds — what ``start_system`` returns.

It is the handle on one assembled system: its typed ``config`` (with tool names normalised),
its ``ActorSystem``, the kernel services and agents by name (``service()``, ``agent()``), and
the state dir, which one process owns at a time (``StateDirLock``): ``lock_state_dir`` takes
it before any SQLite file in it opens, and ``shutdown`` gives it up last. The gateway reaches
the system only through this surface (``gateway.host.Host``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from actoros.config import Config, ConfigError, Problem
from actoros.core import ActorInfo, ActorRef, ActorSystem
from actoros.kernel.scheduler import Drain
from actoros.kernel.state_lock import StateDirBusy, StateDirLock

__all__ = ["GATEWAY", "KERNEL", "System", "config_problem"]

log = structlog.get_logger("actoros.app")

KERNEL = "kernel"
"""The kernel's supervisor, ``/kernel``: its services are ``/kernel/<name>``."""

GATEWAY = "gateway"
"""The HTTP gateway's actor, ``/gateway``, when the config has ``gateway:``."""


def config_problem(path: str, message: str) -> ConfigError:
    """A problem found while assembling (after the config's own checks passed)."""
    return ConfigError("config", [Problem(path, None, message)])


class System:
    """A started system: the ``ActorSystem``, its kernel services and agents by name."""

    def __init__(self, config: Config, actors: ActorSystem) -> None:
        self.config = config
        self.actors = actors
        self.agent_paths: dict[str, str] = {}
        self.agent_names: dict[str, str] = {}  # path -> name (the services name callers by it)
        # set once agents (and the engine) are up: tasks the scheduler resumes from its
        # journal start with the kernel, before the agents they are for exist
        self.open = asyncio.Event()
        # set before anything stops (a shutdown, or the root giving up): from then on an
        # agent that cannot answer was stopped, so its task is interrupted, not finished
        self.stopping = False
        self.lock = StateDirLock(config.system.state_dir)
        self.cluster: Any = None  # the head of a cluster (app/cluster.py), when configured

    def service(self, name: str) -> ActorRef | None:
        return self.actors.lookup(f"/{KERNEL}/{name}")

    def agent(self, name: str) -> ActorRef | None:
        path = self.agent_paths.get(name)
        return self.actors.lookup(path) if path is not None else None

    async def snapshot(self) -> list[ActorInfo]:
        """Every actor now: across the cluster's nodes, each row with its ``node``, when the
        system leads one (``Head.snapshot``); else ``actors.snapshot()`` as it is."""
        if self.cluster is not None:
            rows: list[ActorInfo] = await self.cluster.snapshot()
            return rows
        return self.actors.snapshot()

    def lock_state_dir(self) -> None:
        """Own the state dir before any SQLite file in it opens (see ``StateDirLock``); one
        held by another run is a ``ConfigError`` naming its pid."""
        state_dir = self.config.system.state_dir
        try:
            self.lock.acquire()
        except StateDirBusy as exc:
            holder = f"pid {exc.pid}" if exc.pid is not None else "another process"
            raise config_problem(
                "system.state_dir",
                f"{state_dir} is in use by another actoros run ({holder}): stop that run "
                "first, or give this one another system.state_dir",
            ) from exc
        except OSError as exc:
            raise config_problem(
                "system.state_dir",
                f"cannot use {state_dir} as the state dir: {exc.strerror or exc}",
            ) from exc

    async def wait_stop_or_failure(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set or the system stops on its own (its root gave up)."""
        waits = {
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.actors.wait_terminated()),
        }
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in waits:
                fut.cancel()

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop everything (agents before the kernel) and give the state dir up. The scheduler
        first stops handing out tasks: what is queued stays queued for the next run."""
        self.stopping = True
        try:
            scheduler = self.service("scheduler")
            if scheduler is not None:
                try:
                    await scheduler.ask(Drain(), timeout=5.0)
                except Exception as exc:  # restarting or gone: its journal keeps the queue
                    log.debug("app.drain_failed", error=repr(exc))
            await self.actors.shutdown(timeout=timeout)  # /cluster stops the nodes first
        finally:
            try:
                if self.cluster is not None:
                    await self.cluster.stop()
            finally:
                self.lock.release()
