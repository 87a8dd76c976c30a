"""``actoros run`` on a Ray cluster: the config's ``cluster:`` section, assembled.

The first node of ``cluster.nodes`` is this process, the head: it runs the kernel (scheduler
and its journal, threads, kv, tools, pub/sub, inference), the gateway, the workload, its own
groups and every group no node names. Each other node is a process on Ray (``actoros.cluster``)
running the groups it names; the head's ``/cluster`` supervisor restarts a node whose process
dies, with its groups, under OTP rules. A group's agents are built on their node from the
config (``ConfigGroup``), so they find the kernel's services through that node's lookup — refs
to the head — exactly as agents on the head do.

Engines: a node with ``inference: true`` runs an inference actor of its own, first of its
groups, at ``/engine.<node>/inference`` (``EngineGroup``; a config name cannot hold a dot,
so no group of the config can take that name). Once any node other than the head has one,
``/kernel/inference`` is an ``InferenceRouter`` over them all, and the head keeps an engine
(``/kernel/engine``) only when its own entry says ``inference: true``; without any, the head's
one inference actor serves every node, as on one machine (``engine_paths``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from actoros.agents.permissions import access_permissions
from actoros.cluster import (
    RAY_MISSING,
    GroupBuilder,
    GroupSpec,
    NodeSpec,
    have_ray,
)
from actoros.config import Config, InferenceConfig, NodeConfig
from actoros.core import ActorSystem, SupervisorSpec
from actoros.kernel import AccessControl

from .host import KERNEL, System, config_problem

__all__ = [
    "disturbed",
    "enabled",
    "engine_group",
    "engine_paths",
    "head_options",
    "losses",
    "node_inference",
    "remote_groups",
    "settle",
    "start_cluster",
]

HEAD_ENGINE = "engine"
"""The head's own engine under ``/kernel`` when a router stands at ``/kernel/inference``."""


def enabled(config: Config) -> bool:
    return config.cluster is not None and config.cluster.backend == "ray"


def remote_groups(config: Config) -> dict[str, str]:
    """Each group another node runs (its engine's included), with that node (the head's own
    are not listed)."""
    if not enabled(config):
        return {}
    assert config.cluster is not None
    groups = {}
    for node in config.cluster.nodes[1:]:
        if node.inference:
            groups[engine_group(node.name)] = node.name
        groups.update(dict.fromkeys(node.groups, node.name))
    return groups


def head_options(config: Config) -> dict[str, Any]:
    """What the head's own ``ActorSystem`` takes from its entry of ``cluster.nodes``
    (``throughput``); nothing without a cluster."""
    if not enabled(config):
        return {}
    assert config.cluster is not None
    return {"throughput": config.cluster.nodes[0].throughput}


def engine_group(node: str) -> str:
    """The group of ``node``'s own engine (``/engine.<node>/inference``)."""
    return f"engine.{node}"


def engine_paths(config: Config) -> list[str] | None:
    """The inference actors ``/kernel/inference`` routes over, in order (the head's first);
    ``None`` when no node but the head has an engine: then it is the one inference actor."""
    if not enabled(config) or config.inference is None:
        return None
    assert config.cluster is not None
    head, *others = config.cluster.nodes
    remote = [f"/{engine_group(node.name)}/inference" for node in others if node.inference]
    if not remote:
        return None
    return ([f"/{KERNEL}/{HEAD_ENGINE}"] if head.inference else []) + remote


def node_inference(config: Config, node: NodeConfig) -> InferenceConfig:
    """The ``inference`` section as ``node``'s engine runs it: its ``engine_args`` over the
    section's (``tensor_parallel_size``, ``gpu_memory_utilization``, ...)."""
    inference = config.inference
    assert inference is not None  # the checks give a node's engine an inference section
    if not node.engine_args:
        return inference
    return msgspec.structs.replace(
        inference, engine_args={**inference.engine_args, **node.engine_args}
    )


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
    from actoros.cluster.head import start_head  # imports ray

    config = system.config
    nodes = []
    for node in cluster.nodes[1:]:
        groups = [GroupSpec(group, ConfigGroup(config, group)) for group in node.groups]
        if node.inference:  # first: its agents' requests may come to it as soon as they run
            groups.insert(0, GroupSpec(engine_group(node.name), EngineGroup(config, node)))
        nodes.append(NodeSpec(node.name, tuple(groups), dict(node.resources), node.throughput))
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


class EngineGroup(GroupBuilder):
    """A node's own engine: one inference actor, as the config's ``inference`` section (with
    the node's ``engine_args``) describes it, built on that node."""

    def __init__(self, config: Config, node: NodeConfig) -> None:
        self.config = config
        self.node = node

    def build(self, actors: ActorSystem) -> SupervisorSpec:
        from .assembly import inference_child  # the assembly imports this module

        inference = node_inference(self.config, self.node)
        return SupervisorSpec(
            strategy="one_for_one",
            max_restarts=10,
            within=60.0,
            children=[inference_child(inference, "inference")],
        )
