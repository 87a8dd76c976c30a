"""``actoros run`` on a Ray cluster: the config's ``cluster:`` section, assembled.

The first node of ``cluster.nodes`` is this process, the head: it runs the kernel (scheduler
and its journal, threads, kv, tools, pub/sub, inference), the gateway, the workload, its own
groups and every group no node names. Each other node is a process on Ray (``actoros.cluster``)
running the groups it names; the head's ``/cluster`` supervisor restarts a node whose process
dies, with its groups, under OTP rules. A group's agents are built on their node from the
config (``ConfigGroup``), so they find the kernel's services through that node's lookup — refs
to the head — exactly as agents on the head do.
"""

from __future__ import annotations

from typing import Any

from actoros.agents.permissions import access_permissions
from actoros.cluster import (
    RAY_MISSING,
    GroupBuilder,
    GroupSpec,
    NodeSpec,
    have_ray,
)
from actoros.config import ClusterConfig, Config
from actoros.config.schema import ENGINE_PER_NODE
from actoros.core import ActorSystem, SupervisorSpec
from actoros.kernel import AccessControl

from .host import System, config_problem

__all__ = ["disturbed", "enabled", "losses", "remote_groups", "settle", "start_cluster"]


def enabled(config: Config) -> bool:
    return config.cluster is not None and config.cluster.backend == "ray"


def remote_groups(config: Config) -> dict[str, str]:
    """Each group another node runs, with that node (the head's own are not listed)."""
    if not enabled(config):
        return {}
    assert config.cluster is not None
    return {group: node.name for node in config.cluster.nodes[1:] for group in node.groups}


def agent_paths(system: System, groups: list[tuple[str, Any, tuple[str, ...]]]) -> None:
    """Fill ``system``'s agent paths and names from the groups (``/<group>/<agent>``)."""
    for name, _, children in groups:
        for child in children:
            system.agent_paths[child] = f"/{name}/{child}"
            system.agent_names[f"/{name}/{child}"] = child


def access_of(config: Config) -> AccessControl:
    return AccessControl({a.name: access_permissions(a) for a in config.agents})


async def start_cluster(system: System) -> Any:
    """Start the other nodes of ``system.config.cluster`` with their groups; returns the head
    (``actoros.cluster.head.Head``), which ``System.shutdown`` stops."""
    cluster = system.config.cluster
    assert cluster is not None
    if not have_ray():
        raise config_problem("cluster.backend", RAY_MISSING)
    _refuse_what_is_not_built(cluster)
    from actoros.cluster.head import start_head  # imports ray

    nodes = [
        NodeSpec(
            node.name,
            tuple(GroupSpec(group, ConfigGroup(system.config, group)) for group in node.groups),
            dict(node.resources),
        )
        for node in cluster.nodes[1:]
    ]
    return await start_head(
        system.actors,
        nodes,
        name=cluster.nodes[0].name,
        address=cluster.address,
        heartbeat=cluster.heartbeat,
        allow_pickle=cluster.pickle,
        max_restarts=cluster.max_restarts,
        within=cluster.within,
    )


def losses(system: System) -> int:
    """How many times a node was lost so far (0 without a cluster)."""
    return system.cluster.runtime.losses if system.cluster is not None else 0


def disturbed(system: System, since: int) -> bool:
    """Whether a node was lost after ``losses()`` was ``since``, or a group of another node
    is not running now: a task that failed meanwhile may have failed for that alone."""
    if system.cluster is None:
        return False
    placement = system.cluster.runtime.placement
    return losses(system) != since or any(g not in placement for g in remote_groups(system.config))


async def settle(system: System, timeout: float) -> bool:
    """Wait (at most ``timeout`` seconds) until every node's groups run; whether they do."""
    if system.cluster is None:
        return False
    runtime = system.cluster.runtime
    for group in remote_groups(system.config):
        if timeout <= 0 or not await runtime.placed(group, timeout):
            return False
    return True


def _refuse_what_is_not_built(cluster: ClusterConfig) -> None:
    for i, node in enumerate(cluster.nodes[1:], start=1):
        if node.inference:
            raise config_problem(f"cluster.nodes[{i}].inference", ENGINE_PER_NODE)


class ConfigGroup(GroupBuilder):
    """A config group, built on the node that runs it (a ``GroupBuilder``; it crosses to the
    node by Ray with the config)."""

    def __init__(self, config: Config, name: str) -> None:
        self.config = config
        self.name = name

    def build(self, actors: ActorSystem) -> SupervisorSpec:
        from .assembly import _groups, group_specs  # the assembly imports this module

        system = System(self.config, actors)  # lookups reach the head's kernel and agents
        agent_paths(system, _groups(self.config))
        specs = group_specs(system, access_of(self.config), only={self.name})
        if not specs:
            raise LookupError(f"the config has no group {self.name!r}")
        return specs[0][1]
