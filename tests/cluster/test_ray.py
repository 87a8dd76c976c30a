"""actoros nodes on a real Ray cluster: ``ray.cluster_utils.Cluster``, two Ray nodes on loopback.

One actoros cluster for the whole module, on the session's Ray cluster: a head node ``front`` with a
``Prober``, a node ``workers`` with the actors the probes reach, and a node ``fragile`` that
the last tests kill. The probes run inside the head's process, so every ref they use is a real
remote ref; the driver only asks the head. Tests are plain functions driving one coroutine
each: the nodes run on Ray's own loop (uvloop), whatever loop the driver uses.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

pytest.importorskip("ray", reason="the cluster extra is not installed (make setup)")

from actoros.cluster import Cluster, GroupSpec, NodeSpec  # noqa: E402

from .actors import Collector, Echo, Prober, Silent  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def cluster(ray_cluster: str) -> Iterator[Cluster]:
    nodes = [
        NodeSpec(
            "front", (GroupSpec("probe", Prober), GroupSpec("inbox", Collector)), {"CPU": 0.0}
        ),
        NodeSpec(
            "workers",
            (
                GroupSpec("echo", Echo),
                GroupSpec("collector", Collector),
                GroupSpec("silent", Silent),
                GroupSpec("victim", Echo),
                GroupSpec("quitter", Echo, kwargs={"restart": "temporary"}),
            ),
            {"CPU": 0.5},
        ),
        NodeSpec(
            "fragile",
            (GroupSpec("frail", Silent), GroupSpec("frail_echo", Echo)),
            {"CPU": 0.5},
            throughput=3,
        ),
    ]
    actoros_cluster = Cluster(nodes, heartbeat=0.5, max_restarts=5, within=60.0)
    drive(actoros_cluster.start())
    try:
        yield actoros_cluster
    finally:
        drive(actoros_cluster.shutdown())


def probe(cluster: Cluster, *message: Any, timeout: float = 30.0) -> Any:
    """What the head's prober answers (tuples as lists: it is compared with lists here)."""
    answer = drive(cluster.ask("/probe", list(message), timeout=timeout))
    return list(answer) if isinstance(answer, tuple) else answer


def test_every_node_is_its_own_process(cluster: Cluster) -> None:
    pids = drive(cluster.pids())
    assert set(pids) == {"front", "workers", "fragile"}
    assert len(set(pids.values())) == 3
    assert os.getpid() not in pids.values()


def test_a_node_runs_with_its_own_throughput(cluster: Cluster) -> None:
    assert drive(cluster.ask("/frail_echo", "throughput")) == 3
    assert drive(cluster.ask("/echo", "throughput")) == 64  # the runtime's default


def test_the_driver_reaches_an_actor_on_any_node(cluster: Cluster) -> None:
    assert drive(cluster.ask("/echo", "hello")) == "hello"
    assert probe(cluster, "ask", "/echo", {"a": [1, "b"]}) == [
        "ok",
        {"a": [1, "b"]},
    ]


def test_a_struct_crosses_as_itself(cluster: Cluster) -> None:
    assert probe(cluster, "point", "/echo") == ["Point", 1, 2, "p"]


def test_a_ref_crosses_and_still_works(cluster: Cluster) -> None:
    kind, path, node, echoed = probe(cluster, "ref", "/echo")
    assert (kind, path, node) == ("RemoteRef", "/echo", "workers")
    assert echoed == "through the returned ref"


def test_the_receiver_sees_the_remote_asker_as_sender(cluster: Cluster) -> None:
    # the ref travels there and back and comes home as the prober's own local ref
    assert probe(cluster, "sender", "/echo") is True


def test_tells_arrive_in_the_order_sent(cluster: Cluster) -> None:
    assert probe(cluster, "tell_order", "/collector", 3000) == list(range(3000))


def test_a_remote_actor_tells_back_through_ctx_sender(cluster: Cluster) -> None:
    assert probe(cluster, "ping", "/collector", "/inbox", 200) == 200
    pongs: list[Any] = []
    eventually(lambda: pongs.extend(drive(cluster.ask("/inbox", "drain"))) or len(pongs) >= 200)
    assert pongs == [["pong", i] for i in range(200)]


def test_a_remote_error_is_raised_to_the_asker(cluster: Cluster) -> None:
    assert probe(cluster, "ask", "/echo", "boom") == [
        "error",
        "ValueError",
        "boom from a remote node",
    ]


def test_an_ask_to_a_path_no_actor_has_is_actor_stopped(cluster: Cluster) -> None:
    status, kind, text = probe(cluster, "ask", "/echo/nobody", "hi")
    assert (status, kind) == ("error", "ActorStopped")
    assert "/echo/nobody" in text and "workers" in text


def test_an_ask_across_nodes_times_out_on_the_askers_clock(cluster: Cluster) -> None:
    kind, text = probe(cluster, "timeout", "/silent", 0.3)
    assert kind == "timeout"
    assert "/silent" in text and "0.3 s" in text
    # the late reply finds no ask waiting: a dead letter on the head, not a crash
    assert drive(cluster.ask("/silent", "release")) == "released"
    assert probe(cluster, "ask", "/echo", "still fine") == ["ok", "still fine"]


@pytest.mark.parametrize("kind", ["object", "object_in_any"])
def test_what_cannot_cross_is_refused_at_tell(cluster: Cluster, kind: str) -> None:
    verdict, text = probe(cluster, "not_portable", "/collector", kind)
    assert verdict == "refused"
    assert "cannot cross to another node" in text and "cluster.pickle: true" in text


def test_stop_and_watch_across_nodes(cluster: Cluster) -> None:
    assert probe(cluster, "watch", "/victim") == "/victim"
    verdict, alive, text = probe(cluster, "stop", "/victim")
    assert (verdict, alive) == ("stopped", False)
    assert "/victim" in text
    eventually(lambda: ("/victim", "stopped") in probe(cluster, "terminated"))


def test_a_watcher_hears_of_a_remote_actor_exiting_on_its_own(cluster: Cluster) -> None:
    probe(cluster, "watch", "/quitter")
    assert probe(cluster, "ask", "/quitter", "exit") == ["ok", "bye"]
    eventually(lambda: ("/quitter", "normal") in probe(cluster, "terminated"))


def test_a_killed_node_fails_its_asks_and_comes_back(cluster: Cluster) -> None:
    """SIGKILL of a node's process: the asks waiting on it raise ActorStopped (none hangs),
    its watchers get Terminated, and the head's keeper starts it again with its groups."""
    before = drive(cluster.pids())["fragile"]
    probe(cluster, "watch", "/frail")
    assert probe(cluster, "pending_asks", "/frail", 5, 60.0) == 5
    os.kill(before, signal.SIGKILL)
    # NodeUnreachable is an ActorStopped: the asks end as asks to a stopped actor do
    assert probe(cluster, "pending_results") == ["NodeUnreachable"] * 5
    eventually(lambda: any(path == "/frail" for path, _ in probe(cluster, "terminated")))
    frail = [reason for path, reason in probe(cluster, "terminated") if path == "/frail"]
    assert "node fragile lost" in frail[-1]
    # the keeper restarts the node: a new process, the same groups answering again
    drive(_until_answers(cluster, "/frail_echo"))
    assert drive(cluster.pids())["fragile"] != before


def eventually(condition: Callable[[], Any], limit: float = 30.0) -> None:
    """Poll ``condition`` (it asks the cluster) until true; the cluster's own work happens in
    other processes, so the driver can only look again."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the cluster never got there")
        time.sleep(0.05)


async def _until_answers(cluster: Cluster, path: str) -> None:
    for _ in range(600):
        try:
            if await cluster.ask(path, "back?", timeout=1.0) == "back?":
                return
        except Exception:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} did not come back")
