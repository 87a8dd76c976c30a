"""``start_system``: the supervision tree a config describes, and how it heals.

Runs the real assembly — kernel services, agent groups, the fake engine — with state in a
temporary folder.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import msgspec
import pytest

from actoros import ActorSystem, LifecycleEvent
from actoros.agents import AgentReply
from actoros.app import cluster as app_cluster
from actoros.app import run_system, start_system
from actoros.app.assembly import kernel_spec
from actoros.app.host import System
from actoros.config import ClusterConfig, Config, ConfigError, NodeConfig, parse_config
from actoros.inference.actor import InferenceActor
from actoros.inference.router import InferenceRouter
from actoros.kernel import Subscribe, Subscribers
from actoros.kernel.access import Publish
from actoros.testing import capture_events, spawn_probe

from .configs import fake_config

pytestmark = pytest.mark.timeout(30)


async def test_the_kernel_starts_its_services_in_order_and_agents_in_groups(
    tmp_path: Path,
) -> None:
    config = msgspec.structs.replace(fake_config(tmp_path), workload=None)
    system = await start_system(config)
    try:
        assert system.actors.lookup("/kernel") is not None
        for service in ("scheduler", "threads", "kv", "tools", "pubsub", "inference"):
            assert system.service(service) is not None, service
        assert system.agent("router").path == "/front/router"
        assert system.agent("faq").path == "/workers/faq"
    finally:
        await system.shutdown()


async def test_topic_subscribers_are_subscribed_at_start(tmp_path: Path) -> None:
    config = msgspec.structs.replace(fake_config(tmp_path), workload=None)
    system = await start_system(config)
    try:
        pubsub = system.service("pubsub")
        assert pubsub is not None
        subscribers = await pubsub.ask(Subscribers(topic="escalations"))
        assert subscribers == [system.agent("faq")]
    finally:
        await system.shutdown()


async def test_subscriptions_survive_a_restart_of_the_pubsub_actor(tmp_path: Path) -> None:
    config = parse_config(
        f"""
system: {{state_dir: {tmp_path}}}
agents:
  - name: announcer
    kind: rule
    permissions: {{topics: [news]}}
    rules: [{{match: {{text: never}}, reply: unused}}]
  - name: listener
    kind: rule
    rules: [{{match: {{topic: news}}, reply: "heard {{message}}"}}]
  - name: bystander
    kind: rule
    rules: [{{reply: "not for me"}}]
topics:
  - {{name: news, subscribers: [listener]}}
  - {{name: sports, subscribers: [listener, bystander]}}
"""
    )
    system = await start_system(config)
    try:
        pubsub = system.service("pubsub")
        assert pubsub is not None
        # the publisher: a probe that the system knows as the agent ``announcer`` (rule agents
        # have no publish action), so the listener's reply is told back to it
        probe_ref, probe = await spawn_probe(system.actors, "announcer-probe")
        system.agent_names[probe_ref.path] = "announcer"
        with capture_events(system.actors, LifecycleEvent) as events:
            # a Subscribe without a ref is a fault inside the service: it fails and restarts
            pubsub.tell(Subscribe(topic="news", ref="not a ref"))  # type: ignore[arg-type]
            await events.wait_for(lambda e: e.path == pubsub.path and e.kind == "restarted")
        # the fresh incarnation knows the configured subscribers again (asked after the
        # assembly's re-subscriptions, from the same sender, so they are in)
        assert await pubsub.ask(Subscribers(topic="news")) == [system.agent("listener")]
        sports = await pubsub.ask(Subscribers(topic="sports"))
        assert sports == [system.agent("listener"), system.agent("bystander")]
        pubsub.tell(Publish(topic="news", message="rain"), sender=probe_ref)
        reply = await probe.expect(AgentReply)
        assert (reply.agent, reply.text) == ("listener", "heard rain")
    finally:
        await system.shutdown()


async def test_a_restart_of_the_whole_kernel_leaves_the_agents_working(tmp_path: Path) -> None:
    """The kernel gives up (its intensity is exceeded), the root restarts it with fresh
    services, and everything started after it restarts too (rest_for_one): agents then reach
    the new services, and the topic subscriptions are back."""
    config = parse_config(
        f"""
system: {{state_dir: {tmp_path}}}
inference: {{engine: fake}}
agents:
  - {{name: helper, kind: llm, max_tokens: 8, max_steps: 1}}
  - name: listener
    kind: rule
    rules: [{{match: {{topic: news}}, reply: "heard {{message}}"}}]
topics:
  - {{name: news, subscribers: [listener]}}
"""
    )
    system = await start_system(config)
    try:
        helper = system.agent("helper")
        assert helper is not None
        assert isinstance(await helper.ask("hello", timeout=10), AgentReply)
        pubsub = system.service("pubsub")
        assert pubsub is not None
        with capture_events(system.actors, LifecycleEvent) as events:
            # a Subscribe without a ref fails the service: more often than the kernel's
            # intensity allows (10 in 60 s) makes /kernel fail, and the root restart it
            for _ in range(11):
                pubsub.tell(Subscribe(topic="news", ref="not a ref"))  # type: ignore[arg-type]
                await events.wait_for(lambda e: e.path == pubsub.path and e.kind == "failed")
                events.clear()
            await events.wait_for(LifecycleEvent("/kernel", "restarted", None))
            # rest_for_one: the agent group, started after the kernel, restarts with it
            await events.wait_for(LifecycleEvent("/agents", "restarted", None))
        assert system.actors.failure is None
        fresh = system.service("pubsub")
        assert fresh is not None and fresh != pubsub
        helper = system.agent("helper")
        assert helper is not None
        reply = await helper.ask("hello again", timeout=10)  # through the new inference actor
        assert isinstance(reply, AgentReply) and reply.completion_tokens > 0
        listener = system.agent("listener")
        # asked after the assembly's re-subscriptions (told on the listener's start)
        assert await fresh.ask(Subscribers(topic="news")) == [listener]
    finally:
        await system.shutdown()


@pytest.mark.parametrize(
    ("name", "key", "reason"),
    [
        ("scheduler.sqlite", "services.scheduler.db", "it is a directory"),
        ("threads.sqlite", "services.threads.db", "it is not an SQLite database"),
    ],
)
async def test_a_sqlite_file_that_cannot_be_opened_is_a_config_error_naming_it(
    tmp_path: Path, name: str, key: str, reason: str
) -> None:
    """Before: the database thread died in connect() and the start waited forever."""
    config = fake_config(tmp_path)  # the file goes bad after the checks passed
    bad = tmp_path / name
    if reason == "it is a directory":
        bad.mkdir()
    else:
        bad.write_bytes(b"not a database, only some text that is long enough to look at\n" * 4)
    with pytest.raises(ConfigError) as caught:
        await run_system(config, out=io.StringIO())
    [line] = caught.value.lines()
    assert line.startswith(f"config: {key}: cannot open the SQLite file {bad}: {reason} (")
    await run_system(  # nothing is left running or locked: a good config starts
        msgspec.structs.replace(fake_config(tmp_path / "ok"), workload=None),
        out=io.StringIO(),
        stop_event=_set(asyncio.Event()),
    )


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event


def on_two_nodes(config: Config, *engines: str) -> Config:
    """``config`` with ``workers`` on a second node (only its layout: nothing is started);
    ``engines``: the nodes with ``inference: true``, ``engine_args`` on the workers'."""
    nodes = (
        NodeConfig(name="head", groups=("front",), inference="head" in engines),
        NodeConfig(
            name="workers",
            groups=("workers",),
            inference="workers" in engines,
            engine_args={"max_model_len": 1024} if "workers" in engines else {},
        ),
    )
    return msgspec.structs.replace(config, cluster=ClusterConfig(backend="ray", nodes=nodes))


def test_the_kernel_routes_inference_over_every_nodes_engine(tmp_path: Path) -> None:
    base = fake_config(tmp_path)
    assert app_cluster.engine_paths(base) is None  # one process: one inference actor
    assert app_cluster.engine_paths(on_two_nodes(base)) is None  # the head's serves both
    assert app_cluster.engine_paths(on_two_nodes(base, "head")) is None
    assert app_cluster.engine_paths(on_two_nodes(base, "workers")) == ["/engine.workers/inference"]
    config = on_two_nodes(base, "head", "workers")
    assert app_cluster.engine_paths(config) == ["/kernel/engine", "/engine.workers/inference"]
    assert app_cluster.remote_groups(config) == {
        "engine.workers": "workers",
        "workers": "workers",
    }
    spec = kernel_spec(System(config, ActorSystem("t")), app_cluster.access_of(config))
    engine, router = spec.children[-2:]
    assert (engine.name, engine.factory) == ("engine", InferenceActor)
    assert (router.name, router.factory, router.args) == (
        "inference",
        InferenceRouter,
        (["/kernel/engine", "/engine.workers/inference"],),
    )
    assert config.cluster is not None
    workers = app_cluster.node_inference(config, config.cluster.nodes[1])
    assert workers.engine_args["max_model_len"] == 1024  # the node's over the section's
    assert app_cluster.node_inference(config, config.cluster.nodes[0]) is config.inference
    assert app_cluster.head_options(config) == {"throughput": 64}
    assert app_cluster.head_options(base) == {}
