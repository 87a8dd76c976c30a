"""``Cluster``: an actoros cluster on Ray, as the driver (``actoros run``, a test) holds it.

The first node is the head: it hosts its own groups and supervises the other nodes
(``process.py``). The driver talks to the cluster through the head, whose ``lookup`` finds
actors on every node: ``await cluster.ask("/workers/echo", msg)``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from .process import RemoteNode, call, ray_options
from .spec import NodeSpec


def init_ray(address: str = "local", **kwargs: Any) -> bool:
    """Connect this process to Ray (once): ``local`` starts an instance in-process; ``auto``
    or ``ray://host:port`` join a running one. Usage statistics are off either way. Whether
    this call connected (False: this process was connected already)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    if ray.is_initialized():
        return False
    # Ray's own "local" starts a new instance even when another one runs on this machine;
    # the nodes' logs come to this process's stderr, prefixed by the node process's pid
    ray.init(address=address, include_dashboard=False, logging_level="warning", **kwargs)
    return True


def connected() -> bool:
    """Whether this process is connected to Ray."""
    return bool(ray.is_initialized())


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus: float = 1.0, **init: Any) -> Iterator[str]:
    """A cluster of ``nodes`` Ray nodes of ``cpus`` CPUs each, simulated on this machine
    (``ray.cluster_utils.Cluster``: one raylet per node, on loopback), with this process
    connected to it; yields its address, and stops both on the way out. For benchmarks and
    tests: the processes Ray starts inherit this process's environment (``PYTHONPATH``)."""
    from ray import cluster_utils

    if ray.is_initialized():
        raise RuntimeError("this process is already connected to Ray: ray.shutdown() first")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False}
    )
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=cpus)
        init_ray(cluster.address, **init)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()


class Cluster:
    """Nodes on Ray, started in order (the head first) and stopped in reverse."""

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        *,
        address: str = "local",
        heartbeat: float = 1.0,
        allow_pickle: bool = False,
        max_restarts: int = 3,
        within: float = 60.0,
    ) -> None:
        if not nodes:
            raise ValueError("a cluster needs at least one node (the first is the head)")
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique: {names}")
        self.nodes = list(nodes)
        self.address = address
        self.heartbeat = heartbeat
        self.allow_pickle = allow_pickle
        self.max_restarts = max_restarts
        self.within = within
        self.head: Any = None

    @property
    def head_name(self) -> str:
        return self.nodes[0].name

    async def __aenter__(self) -> Cluster:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    async def start(self) -> None:
        init_ray(self.address)
        head_spec, others = self.nodes[0], self.nodes[1:]
        head = RemoteNode.options(**ray_options(head_spec.resources)).remote()
        self.head = head
        options = {"heartbeat": self.heartbeat, "allow_pickle": self.allow_pickle}
        throughput = head_spec.throughput
        await call(head.start, head_spec.name, timeout=120.0, throughput=throughput, **options)
        for group in head_spec.groups:
            await call(head.spawn, group)
        await call(head.place, {group.name: head_spec.name for group in head_spec.groups})
        await call(
            head.supervise,
            others,
            me=head,
            max_restarts=self.max_restarts,
            within=self.within,
            timeout=None,
            **options,
        )

    async def ask(self, path: str, message: Any, timeout: float | None = 5.0) -> Any:
        """Ask the actor at ``path``, wherever it runs; raises as a local ask would."""
        wait = None if timeout is None else timeout + 30.0
        return await call(self._head().ask, path, message, timeout, timeout=wait)

    async def tell(self, path: str, message: Any) -> bool:
        """Tell the actor at ``path``; False if no node hosts it now."""
        return bool(await call(self._head().tell, path, message))

    async def pids(self) -> dict[str, int]:
        """Each node's process id by node name."""
        return dict(await call(self._head().pids))

    async def snapshot(self) -> list[Any]:
        """The head's own actors (``ActorInfo`` rows)."""
        return list(await call(self._head().snapshot))

    def _head(self) -> Any:
        if self.head is None:
            raise RuntimeError("the cluster is not started: use 'async with Cluster(...)'")
        return self.head

    async def shutdown(self) -> None:
        head, self.head = self.head, None
        if head is None:
            return
        try:
            await call(head.shutdown, timeout=60.0)  # stops /cluster: every node, in reverse
        finally:
            ray.kill(head, no_restart=True)
