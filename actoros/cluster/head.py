"""The head node inside the current process: how ``actoros run`` leads a cluster.

``actoros run`` keeps its system in its own process (the kernel, the gateway, the workload,
the signals): that process is the head node. Ray cannot call into a driver, so the head has an
``Inbox`` — a small Ray actor that takes the other nodes' ``deliver`` calls — and a pump task
that long-polls it and applies each batch on the head's loop. What the head sends goes
straight to the other nodes' processes (and their replies to quick asks ride back on those
calls), so only what a node sends on its own pays the extra hop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import ray
import structlog

from actoros.core import ActorSystem

from .cluster import init_ray
from .node import NodeRuntime
from .process import SUPERVISOR, call, keepers, node_pids, supervise
from .spec import NodeSpec

log = structlog.get_logger("actoros.cluster")

SNAPSHOT_TIMEOUT = 1.0  # seconds each node gets to answer ``snapshot`` for ``Head.snapshot``


class InboxProcess:
    """The head's mailbox on Ray: ``deliver`` queues a batch, ``take`` waits for some."""

    def __init__(self) -> None:
        self._batches: list[bytes] = []
        self._ready = asyncio.Event()

    async def deliver(self, data: bytes) -> None:
        self._batches.append(data)
        self._ready.set()

    async def take(self) -> list[bytes]:
        while not self._batches:
            self._ready.clear()
            await self._ready.wait()
        batches, self._batches = self._batches, []
        return batches

    async def ping(self) -> bool:
        return True


Inbox = ray.remote(InboxProcess)


class Head:
    """A running local ``ActorSystem`` made the head of a cluster (``start_head``)."""

    def __init__(self, runtime: NodeRuntime, inbox: Any, owns_ray: bool = False) -> None:
        self.runtime = runtime
        self.inbox = inbox
        self.owns_ray = owns_ray  # this head connected to Ray: it disconnects at the end
        self._pump: asyncio.Task[None] | None = None

    def start_pump(self) -> None:
        self._pump = asyncio.get_running_loop().create_task(self._drain_inbox())

    async def _drain_inbox(self) -> None:
        runtime = self.runtime
        while True:
            try:
                batches = await call(self.inbox.take, timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the inbox died: nothing can reach this node any more
                log.error("cluster.inbox_lost", node=runtime.name, error=repr(exc))
                for link in list(runtime.links.values()):
                    runtime.lose(link, f"the head's inbox is gone ({exc!r})")
                return
            for data in batches:
                try:
                    runtime.deliver(data)
                except Exception as exc:  # a batch that does not decode loses only itself
                    log.error("cluster.bad_batch", node=runtime.name, error=repr(exc))

    def pids(self) -> dict[str, int]:
        """Each node's process id by node name (this process is the head's)."""
        return node_pids(self.runtime)

    async def snapshot(self) -> list[Any]:
        """Every node's ``ActorInfo`` rows, each with its ``node``: the head's own first, then
        each live node's, asked concurrently. A node that does not answer within
        ``SNAPSHOT_TIMEOUT`` (lost, restarting, busy) adds no rows rather than failing them all.
        """
        rows = [
            msgspec.structs.replace(i, node=self.runtime.name)
            for i in self.runtime.system.snapshot()
        ]
        nodes = [(k.spec.name, k.handle) for k in keepers(self.runtime) if k.handle is not None]
        answers = await asyncio.gather(
            *(call(handle.snapshot, timeout=SNAPSHOT_TIMEOUT) for _, handle in nodes),
            return_exceptions=True,
        )
        for (name, _), answer in zip(nodes, answers, strict=True):
            if isinstance(answer, BaseException):
                log.debug("cluster.snapshot_unanswered", node=name, error=repr(answer))
                continue
            rows.extend(msgspec.structs.replace(i, node=name) for i in answer)
        return rows

    async def stop(self) -> None:
        """Stop the other nodes (``/cluster``, if still running), then the pump and inbox."""
        keepers = self.runtime.system.lookup(f"/{SUPERVISOR}")
        if keepers is not None:
            await keepers.stop()
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        self.runtime.close()
        ray.kill(self.inbox, no_restart=True)
        if self.owns_ray:
            ray.shutdown()  # a local instance this process started ends with it


async def start_head(
    system: ActorSystem,
    nodes: list[NodeSpec],
    *,
    name: str | None = None,
    address: str = "local",
    heartbeat: float = 1.0,
    allow_pickle: bool = False,
    max_restarts: int = 3,
    within: float = 60.0,
) -> Head:
    """Make the started ``system`` the head node ``name`` (default: the system's name) and
    start ``nodes`` under ``/cluster``; every top-level actor the system has now is placed on
    the head."""
    owns_ray = init_ray(address)
    runtime = NodeRuntime(system, name or system.name, allow_pickle=allow_pickle)
    runtime.heartbeat = heartbeat
    runtime.place({info.path.strip("/"): runtime.name for info in _top(system)})
    inbox = Inbox.options(num_cpus=0, max_restarts=0).remote()
    await call(inbox.ping, timeout=120.0)
    head = Head(runtime, inbox, owns_ray)
    head.start_pump()
    options = {"heartbeat": heartbeat, "allow_pickle": allow_pickle}
    try:
        await supervise(runtime, inbox, nodes, options, max_restarts, within)
    except BaseException:
        await head.stop()
        raise
    return head


def _top(system: ActorSystem) -> list[Any]:
    return [info for info in system.snapshot() if info.parent is None]
