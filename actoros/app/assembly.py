"""From a typed ``Config`` to a running supervision tree: the map of the architecture.

``start_system(config)`` starts, in this order (and ``System.shutdown`` stops in reverse):

1. ``/kernel`` — a one_for_one supervisor of the kernel services (``kernel_spec``):
   ``scheduler`` (its ``workload`` tasks go to ``workload.handler``), ``threads``, ``kv``,
   ``tools``, ``pubsub`` and, when the config has an ``inference`` section, ``inference``
   (the engine ``inference.engines.engine_factory`` picks for the config; on a cluster whose
   other nodes run engines, an ``InferenceRouter`` over them, see ``cluster.py``);
2. one supervisor per agent group (``/<group>/<agent>``, ``group_specs``), strategy and
   intensity from the config; agents in no group run in an implicit ``/agents`` group. Every
   agent shares one ``AccessControl`` with the tool service and pub/sub, so a syscall is
   judged the same way wherever it lands; topic subscribers are subscribed once the agents
   are up, and again whenever pub/sub or a subscriber is a fresh actor (``follow_restarts``);
3. with a ``gateway`` section, ``/gateway``: the HTTP server (OpenAI-compatible API, metrics,
   live page).

The root is rest_for_one: agents and the gateway hold refs to the kernel's services, so a
restart of the whole kernel (its own intensity exceeded) restarts everything after it. One
process owns a state dir: it is locked (``System.lock_state_dir``) before any SQLite file in
it opens; a SQLite file that cannot be opened is a ``ConfigError`` naming its config key.
This module takes typed config only; it never reads YAML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from actoros.agents import LLMAgent, RuleAgent
from actoros.config import AgentConfig, Config, GroupConfig, InferenceConfig, normalize_tools
from actoros.core import (
    Actor,
    ActorRef,
    ActorSystem,
    ChildSpec,
    LifecycleEvent,
    MailboxSpec,
    SupervisorSpec,
)
from actoros.gateway import GatewayActor
from actoros.inference.actor import InferenceActor
from actoros.inference.engines import context_tokens, engine_factory, model_id
from actoros.inference.messages import ChatMessage, Completion, Generate
from actoros.inference.router import InferenceRouter
from actoros.kernel import (
    AccessControl,
    KVService,
    PubSub,
    Scheduler,
    Subscribe,
    ThreadMessage,
    ThreadStore,
    ToolRegistry,
    ToolService,
    load_user_tool,
)
from actoros.kernel._sqlite import DatabaseOpenError

from . import cluster, workload
from .host import GATEWAY, KERNEL, System, config_problem

__all__ = ["IMPLICIT_GROUP", "group_specs", "kernel_spec", "start_system"]

log = structlog.get_logger("actoros.app")

IMPLICIT_GROUP = "agents"
"""The group of the agents the config puts in no group (the checks keep the name free)."""

DEFAULT_TIMEOUT = 120.0
"""Seconds an agent's turn may take when the config has no workload to say it."""


async def start_system(config: Config) -> System:
    """Start the kernel, then the agent groups, then the gateway (see the module docstring).
    Anything that fails on the way stops what had started and gives the state dir up."""
    config = normalize_tools(config)
    # rest_for_one: see the module docstring
    actors = ActorSystem(
        config.system.name, strategy="rest_for_one", **cluster.head_options(config)
    )
    system = System(config, actors)
    system.lock_state_dir()
    access = cluster.access_of(config)
    groups = _groups(config)
    cluster.agent_paths(system, groups)
    elsewhere = cluster.remote_groups(config)  # groups that other nodes run
    try:
        await actors.start()
        try:
            await actors.spawn_supervisor(kernel_spec(system, access), name=KERNEL)
        except DatabaseOpenError as exc:
            raise config_problem(_database_key(config, exc.path), str(exc)) from exc
        for name, spec in group_specs(system, access, only=None):
            if name not in elsewhere:
                await actors.spawn_supervisor(spec, name=name)
        if cluster.enabled(config):
            system.cluster = await cluster.start_cluster(system)
        await _subscribe(system)
        follow_restarts(system)
        if config.gateway is not None:  # last: it stops first, before the agents it serves
            await actors.spawn(GatewayActor, system, name=GATEWAY, shutdown=10.0)
    except BaseException:
        await system.shutdown(timeout=30.0)
        raise
    log.info(
        "system.ready",
        system=config.system.name,
        agents=len(config.agents),
        groups=[g[0] for g in groups],
    )
    return system


def _turn_timeout(config: Config) -> float:
    return config.workload.timeout if config.workload is not None else DEFAULT_TIMEOUT


def kernel_spec(system: System, access: AccessControl) -> SupervisorSpec:
    """``/kernel``: the services, in start order (each later one may use the earlier)."""
    config, actors = system.config, system.actors
    services = config.services
    tools_config = services.tools
    workers = services.scheduler.workers
    if config.workload is not None:
        workers = max(workers, config.workload.concurrency)

    def tool_service() -> Actor:
        registry = _tool_registry(config, actors.lookup(f"/{KERNEL}/kv"))
        return ToolService(
            registry,
            access=access,
            agents=system.agent_names,
            timeout=tools_config.timeout,
            threads=tools_config.threads,
        )

    handlers = {workload.WORKLOAD_KIND: workload.handler(system, _turn_timeout(config))}
    children = [
        ChildSpec(
            "scheduler",
            Scheduler,
            (handlers, services.scheduler.db or ":memory:"),
            {"workers": workers, "policy": services.scheduler.policy},
        ),
        ChildSpec(
            "threads",
            ThreadStore,
            (_summarizer(actors), services.threads.db or ":memory:"),
            {"max_message_bytes": services.threads.max_message_bytes},
        ),
        ChildSpec(
            "kv",
            KVService,
            (str(Path(config.system.state_dir) / "kv.sqlite"),),
            {"max_value_bytes": services.kv.max_value_bytes},
        ),
        ChildSpec("tools", tool_service),
        ChildSpec("pubsub", PubSub, (), {"access": access, "agents": system.agent_names}),
    ]
    inference = config.inference
    engines = cluster.engine_paths(config)
    if inference is not None and engines is None:
        children.append(inference_child(inference, "inference"))
    elif inference is not None and engines is not None:  # engines on other nodes: a router
        assert config.cluster is not None  # engine_paths says so
        head = config.cluster.nodes[0]
        if head.inference:
            own = cluster.node_inference(config, head)
            children.append(inference_child(own, cluster.HEAD_ENGINE))
        options = {"model": model_id(inference)}
        children.append(ChildSpec("inference", InferenceRouter, (engines,), options))
    return SupervisorSpec(strategy="one_for_one", max_restarts=10, within=60.0, children=children)


def inference_child(inference: InferenceConfig, name: str) -> ChildSpec:
    """An inference actor serving the engine the ``inference`` section describes."""
    options = {
        "model": model_id(inference),
        "max_in_flight": inference.max_in_flight,
        "max_waiting": inference.max_waiting,
    }
    factory = engine_factory(inference)
    return ChildSpec(name, InferenceActor, (factory,), options, shutdown=30.0)


def _tool_registry(config: Config, kv: ActorRef | None) -> ToolRegistry:
    """The built-in tools (the kv tools over the running store) and the configured ones."""
    registry = ToolRegistry.with_builtins(kv)
    for name, spec in config.services.tools.user.items():
        registry.register(load_user_tool(spec, name=name))
    return registry


def _summarizer(actors: ActorSystem) -> Callable[[list[ThreadMessage], str | None], Any]:
    """The thread store's ``summarize``: one short model call over the folded turns."""

    async def summarize(messages: list[ThreadMessage], previous: str | None) -> str:
        inference = actors.lookup(f"/{KERNEL}/inference")
        text = "\n".join(f"{m.role}: {m.content}" for m in messages)
        if inference is None:  # no model: keep the newest text, cut to size
            return ((previous or "") + "\n" + text)[-1000:]
        prompt = (
            f"Summary so far: {previous}\n\n" if previous else ""
        ) + f"New turns:\n{text}\n\nWrite an updated summary in at most five sentences."
        gen = Generate(
            messages=(
                ChatMessage("system", "You summarize conversations briefly and exactly."),
                ChatMessage("user", prompt),
            ),
            max_tokens=128,
        )
        completion = await inference.ask(gen, timeout=120.0)
        assert isinstance(completion, Completion)
        return completion.text

    return summarize


def _groups(config: Config) -> list[tuple[str, GroupConfig | None, tuple[str, ...]]]:
    """The configured groups, then the implicit one of the agents in no group (the config's
    checks refuse a group named like it, or like the kernel)."""
    grouped = {child for group in config.groups for child in group.children}
    groups: list[tuple[str, GroupConfig | None, tuple[str, ...]]] = [
        (g.name, g, g.children) for g in config.groups
    ]
    rest = tuple(a.name for a in config.agents if a.name not in grouped)
    if rest:
        groups.append((IMPLICIT_GROUP, None, rest))
    return groups


def group_specs(
    system: System, access: AccessControl, only: set[str] | None = None
) -> list[tuple[str, SupervisorSpec]]:
    """Each agent group's supervisor (those in ``only``, if given), by name, in start order
    (the kernel must be running: the LLM agents' prompts describe the tools the running tool
    registry holds)."""
    config = system.config
    registry = _tool_registry(config, system.service("kv"))
    schemas = registry.summaries()
    parameters = {s["name"]: s["parameters"] for s in registry.schemas()}  # for the grammars
    by_name = {a.name: a for a in config.agents}
    specs = []
    for name, group, children in _groups(config):
        if only is not None and name not in only:
            continue
        agents = [_agent_spec(system, by_name[c], access, schemas, parameters) for c in children]
        if group is None:
            spec = SupervisorSpec(children=agents)
        else:
            spec = SupervisorSpec(
                strategy=group.strategy,
                max_restarts=group.max_restarts,
                within=group.within,
                children=agents,
                backoff=group.backoff,  # config's Backoff is core's
            )
        specs.append((name, spec))
    return specs


def _agent_spec(
    system: System,
    agent: AgentConfig,
    access: AccessControl,
    tool_schemas: Mapping[str, str],
    tool_parameters: Mapping[str, Mapping[str, Any]],
) -> ChildSpec:
    """One agent: its factory finds the kernel's services anew on every (re)start."""
    config = system.config
    timeout = _turn_timeout(config)
    mailbox = MailboxSpec(capacity=agent.mailbox) if agent.mailbox is not None else None
    resolve, service = system.agent, system.service

    if agent.kind == "rule":

        def factory() -> Actor:
            return RuleAgent(
                agent,
                resolve_agent=resolve,
                tools=service("tools"),
                scheduler=service("scheduler"),
                access=access,
                timeout=timeout,
            )
    else:
        context = _context_tokens(config)

        def factory() -> Actor:
            inference, threads = service("inference"), service("threads")
            if inference is None or threads is None:
                raise RuntimeError(f"agent {agent.name!r}: the kernel is not running")
            return LLMAgent(
                agent,
                inference=inference,
                threads=threads,
                tools=service("tools"),
                resolve_agent=resolve,
                tool_schemas=tool_schemas,
                tool_parameters=tool_parameters,
                access=access,
                timeout=timeout,
                context_tokens=context,
            )

    return ChildSpec(agent.name, factory, restart=agent.restart, mailbox=mailbox)


def _context_tokens(config: Config) -> int:
    """What an LLM agent's thread may hold: the configured budget, else the model's context."""
    if config.services.threads.context_budget is not None:
        return config.services.threads.context_budget
    assert config.inference is not None  # the checks give every llm agent a model
    return context_tokens(config.inference)


def _database_key(config: Config, path: str) -> str:
    """The config key that names the SQLite file at ``path``."""
    services = config.services
    if path == services.scheduler.db:
        return "services.scheduler.db"
    if path == services.threads.db:
        return "services.threads.db"
    return "system.state_dir"


def _subscriptions(system: System) -> list[Subscribe]:
    """The configured topic subscriptions of the running agents."""
    subscriptions = []
    for topic in system.config.topics:
        for subscriber in topic.subscribers:
            ref = system.agent(subscriber)
            if ref is not None:
                subscriptions.append(Subscribe(topic=topic.name, ref=ref))
    return subscriptions


async def _subscribe(system: System) -> None:
    pubsub = system.service("pubsub")
    if pubsub is not None:
        for subscription in _subscriptions(system):
            await pubsub.ask(subscription)


def follow_restarts(system: System) -> None:
    """Keep the topic subscriptions, and mark the system stopping when its root gives up.

    Subscriptions live in the pub/sub actor and name subscribers by ref: a fresh pub/sub
    actor (restarted, or new after a restart of the whole kernel) needs them again, and so
    does a subscriber that is a new actor (its group restarted after the kernel). Subscribing
    twice is harmless; dead subscribers are dropped by the service."""
    watched = {f"/{KERNEL}/pubsub"} | {
        system.agent_paths[s] for topic in system.config.topics for s in topic.subscribers
    }

    def resubscribe_on_start(event: LifecycleEvent) -> None:
        if event.kind in ("restarted", "started") and event.path in watched:
            pubsub = system.service("pubsub")
            if pubsub is not None:
                for subscription in _subscriptions(system):
                    pubsub.tell(subscription)

    def root_gives_up(event: LifecycleEvent) -> None:  # it stops everything next
        if event.kind == "escalated" and event.path == "/":
            system.stopping = True

    system.actors.events.subscribe(resubscribe_on_start, LifecycleEvent)
    system.actors.events.subscribe(root_gives_up, LifecycleEvent)
