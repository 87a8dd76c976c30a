"""The node process — one Ray async actor hosting one ``ActorSystem`` — and the head's keepers.

Ray runs every method of an async actor on one event loop in one thread (uvloop when it is
installed), which is exactly actoros's execution model: the node's actors, its links and the
Ray methods below all share that loop. Never one Ray actor per actoros actor.

The head node (the first in the config) supervises the others: under ``/cluster`` it runs one
``NodeKeeper`` per node, a plain actoros child of a ``one_for_one`` supervisor. A keeper's
``on_start`` starts its node's process (Ray places it wherever the resources are free), tells
every node about it, spawns its groups there and publishes where they are. When that process
dies, the keeper fails, and its supervisor restarts it under the usual OTP rules (intensity,
escalation to the head's root): the restart starts a new process and the groups again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from typing import Any

import msgspec
import ray
import structlog

from actoros.core import Actor, ActorError, ActorSystem, ChildSpec, SupervisorSpec

from .node import NodeRuntime
from .spec import GroupBuilder, GroupSpec, NodeSpec

log = structlog.get_logger("actoros.cluster")

START_TIMEOUT = 120.0
"""Seconds a node's process may take to start (Ray may first wait for free resources)."""


class NodeLost(ActorError):
    """A node's process died or stopped answering; its keeper fails with this."""


def ray_options(resources: dict[str, float]) -> dict[str, Any]:
    """Ray actor options for a node process with ``resources`` (never restarted by Ray: the
    head's keeper decides)."""
    custom = dict(resources)
    options: dict[str, Any] = {
        "num_cpus": custom.pop("CPU", 1.0),
        "num_gpus": custom.pop("GPU", 0.0),
        "max_restarts": 0,
        "max_task_retries": 0,
    }
    if "memory" in custom:
        options["memory"] = custom.pop("memory")
    custom.pop("object_store_memory", None)
    if custom:
        options["resources"] = custom
    return options


async def call(method: Any, *args: Any, timeout: float | None = 30.0, **kwargs: Any) -> Any:
    """Await one Ray actor call from a loop (``method`` is ``handle.name``)."""
    ref = method.remote(*args, **kwargs)
    return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)


class NodeProcess:
    """The Ray actor of one node (``RemoteNode = ray.remote(NodeProcess)``); every method runs
    on the node's loop."""

    def __init__(self) -> None:
        self.system: ActorSystem | None = None
        self.runtime: NodeRuntime | None = None

    def _runtime(self) -> NodeRuntime:
        if self.runtime is None:
            raise RuntimeError("the node is not started: call start() first")
        return self.runtime

    async def start(
        self, name: str, *, heartbeat: float = 1.0, allow_pickle: bool = False, throughput: int = 64
    ) -> dict[str, Any]:
        system = self.system = ActorSystem(name, throughput=throughput)
        await system.start()
        runtime = self.runtime = NodeRuntime(system, name, allow_pickle=allow_pickle)
        runtime.heartbeat = heartbeat
        context = ray.get_runtime_context()
        log.info("cluster.node_started", node=name, pid=os.getpid(), loop=system.loop)
        return {"pid": os.getpid(), "ray_node": context.get_node_id(), "loop": system.loop}

    async def connect(self, peers: dict[str, Any]) -> None:
        runtime = self._runtime()
        for node, handle in peers.items():
            runtime.connect(node, handle)

    async def place(self, placement: dict[str, str]) -> None:
        self._runtime().place(placement)

    async def deliver(self, data: bytes) -> bytes | None:
        # the batch is applied whole before the first await; the result carries frames back
        return await self._runtime().receive(data)

    async def ping(self) -> bool:
        return True

    async def spawn(self, group: GroupSpec) -> str:
        system = self._runtime().system
        target = group.target
        if isinstance(target, GroupBuilder):
            target = target.build(system)
        if isinstance(target, SupervisorSpec):
            ref = await system.spawn_supervisor(target, name=group.name)
        else:
            ref = await system.spawn(target, *group.args, name=group.name, **group.kwargs)
        return ref.path

    async def ask(self, path: str, message: Any, timeout: float | None = 5.0) -> Any:
        """Ask the actor at ``path`` (on any node) from the driver."""
        ref = self._runtime().system.lookup(path)
        if ref is None:
            raise LookupError(f"no actor at {path}")
        return await ref.ask(message, timeout=timeout)

    async def tell(self, path: str, message: Any) -> bool:
        ref = self._runtime().system.lookup(path)
        if ref is None:
            return False
        ref.tell(message)
        return True

    async def snapshot(self) -> list[Any]:
        return self._runtime().system.snapshot()

    async def links(self) -> dict[str, str | None]:
        """Each peer this node knows and why it was lost (None: reachable)."""
        return {name: link.lost for name, link in self._runtime().links.items()}

    async def shutdown(self) -> None:
        runtime = self.runtime
        if runtime is not None:
            await runtime.system.shutdown()
            runtime.close()

    # -- the head's part --------------------------------------------------------------------

    async def supervise(
        self,
        nodes: list[NodeSpec],
        *,
        me: Any,
        max_restarts: int = 3,
        within: float = 60.0,
        heartbeat: float = 1.0,
        allow_pickle: bool = False,
    ) -> None:
        """Start ``nodes`` under ``/cluster``, one keeper each; ``me`` is this actor's handle."""
        options = {"heartbeat": heartbeat, "allow_pickle": allow_pickle}
        await supervise(self._runtime(), me, nodes, options, max_restarts, within)

    async def pids(self) -> dict[str, int]:
        """Each node's process id, this one's included (for tests that kill one)."""
        return node_pids(self._runtime())


RemoteNode: Callable[..., Any] = ray.remote(NodeProcess)

SUPERVISOR = "cluster"
"""The head's supervisor of the other nodes, ``/cluster``: one ``NodeKeeper`` per node."""


def keepers(runtime: NodeRuntime) -> list[NodeKeeper]:
    """The head's keepers now (``runtime``'s node is the head), in start order."""
    supervisor = runtime.local(f"/{SUPERVISOR}")
    cells = (supervisor._children or {}).values() if supervisor is not None else ()
    return [cell._actor for cell in cells if isinstance(cell._actor, NodeKeeper)]


def node_pids(runtime: NodeRuntime) -> dict[str, int]:
    """The process id of the head (``runtime``'s node) and of each node its keepers run."""
    found = {runtime.name: os.getpid()}
    found.update({k.spec.name: k.info["pid"] for k in keepers(runtime) if k.info})
    return found


async def supervise(
    runtime: NodeRuntime,
    me: Any,
    nodes: list[NodeSpec],
    options: dict[str, Any],
    max_restarts: int,
    within: float,
) -> None:
    """Make ``runtime``'s node the head of ``nodes``: ``/cluster`` starts (and restarts) each
    one; ``me`` is the handle the other nodes deliver to this one through."""
    runtime.place({SUPERVISOR: runtime.name})
    peers: dict[str, Any] = {runtime.name: me}
    children = [
        ChildSpec(node.name, NodeKeeper, (node, runtime, peers, options), shutdown=30.0)
        for node in nodes
    ]
    spec = SupervisorSpec("one_for_one", max_restarts, within, children)
    await runtime.system.spawn_supervisor(spec, name=SUPERVISOR)


_PROCESSES = itertools.count(1)
"""Numbers the node processes keepers start (a restarted keeper is a new instance)."""


class _Lost(msgspec.Struct, frozen=True):
    reason: str
    process: int  # which process was lost: an older one's loss is old news


class NodeKeeper(Actor):
    """Keeps one node running on the head: its process, its groups, its placement."""

    def __init__(
        self, spec: NodeSpec, runtime: NodeRuntime, peers: dict[str, Any], options: dict[str, Any]
    ) -> None:
        self.spec = spec
        self.runtime = runtime
        self.peers = peers  # every live node's handle, shared by the head's keepers
        self.options = options
        self.handle: Any = None
        self.info: dict[str, Any] | None = None
        self.started = 0

    async def on_start(self) -> None:
        spec, runtime = self.spec, self.runtime
        handle = self.handle = RemoteNode.options(**ray_options(spec.resources)).remote()
        self.info = await call(
            handle.start,
            spec.name,
            timeout=START_TIMEOUT,
            throughput=spec.throughput,
            **self.options,
        )
        others = {n: h for n, h in self.peers.items() if n != runtime.name and n != spec.name}
        # everyone learns of the new process before it can send them anything
        await asyncio.gather(*(call(h.connect, {spec.name: handle}) for h in others.values()))
        runtime.connect(spec.name, handle)
        self.started = started = next(_PROCESSES)
        me = self.ctx.self
        # from here on, its loss (even during the rest of this start) fails this keeper
        runtime.watch_node(spec.name, lambda reason: me.tell(_Lost(reason, started)))
        self.peers[spec.name] = handle
        await call(handle.connect, {n: h for n, h in self.peers.items() if n != spec.name})
        placed = {group.name: spec.name for group in spec.groups}
        # where everything is, before its groups start (their actors look the kernel up)
        await call(handle.place, {**runtime.placement, **placed})
        for group in spec.groups:
            await call(handle.spawn, group, timeout=START_TIMEOUT)
        runtime.place(placed)
        await asyncio.gather(*(call(h.place, placed) for h in others.values()))
        log.info("cluster.node_up", node=spec.name, pid=self.info["pid"], groups=list(placed))

    def receive(self, message: Any, ctx: Any) -> Any:
        match message:
            case _Lost(reason, process) if process == self.started:
                raise NodeLost(f"node {self.spec.name} lost: {reason}")
            case _Lost():
                return None
            case _:
                raise TypeError(f"a node keeper takes no {type(message).__name__}")

    async def on_stop(self) -> None:
        handle, self.handle = self.handle, None
        if self.peers.get(self.spec.name) is handle:
            del self.peers[self.spec.name]
        if handle is None:
            return
        try:
            await call(handle.shutdown, timeout=10.0)
        except Exception as exc:  # already dead, or stuck: it is killed below either way
            log.debug("cluster.node_shutdown_failed", node=self.spec.name, error=repr(exc))
        ray.kill(handle, no_restart=True)
