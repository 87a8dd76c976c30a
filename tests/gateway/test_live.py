"""The live view's feeds: ``/api/tree`` (JSON of the snapshot), ``/api/events`` (SSE), the page
and its files, auth, and the cap on large trees.

Everything runs against the shared fixture's real system (the runner's assembly on the fake
engine) and its real gateway. Tests that look inside the feed (clients, sampler, history)
spawn a second ``GatewayActor`` into that system whose app serves ``live.routes`` with a
``LiveFeed`` the test holds. Actors crash for real: ``Crasher`` raises in ``receive`` under a
supervisor spawned into the system's tree.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette

from actoros import Actor, ChildSpec, Context, LifecycleEvent, SupervisorSpec
from actoros.agents import UserMessage
from actoros.core import ActorInfo
from actoros.gateway import GatewayActor, GatewayAddress, live
from actoros.gateway.live import ActorGroup, LiveFeed, TreeFrame, cap_tree

from .conftest import RunningGateway, start_gateway

pytestmark = pytest.mark.timeout(60)

DEADLINE = 15.0  # seconds a test waits for something the gateway should send


class Crasher(Actor):
    """Fails on "crash" (its supervisor restarts it); answers anything else."""

    def receive(self, message: Any, ctx: Context) -> Any:
        if message == "crash":
            raise RuntimeError("crash on purpose")
        return message


async def crash_lab(running: RunningGateway) -> Any:
    """A supervisor ``/lab`` with one ``Crasher``, spawned into the running system."""
    spec = SupervisorSpec(max_restarts=100, within=1.0, children=[ChildSpec("crasher", Crasher)])
    await running.system.actors.spawn_supervisor(spec, name="lab")
    crasher = running.system.actors.lookup("/lab/crasher")
    assert crasher is not None
    return crasher


async def crash(running: RunningGateway, crasher: Any) -> None:
    """Make ``crasher`` fail and wait until its supervisor has restarted it."""
    restarted = asyncio.Event()

    def seen(event: LifecycleEvent) -> None:
        if event.path == crasher.path and event.kind == "restarted":
            restarted.set()

    unsubscribe = running.system.actors.events.subscribe(seen, LifecycleEvent)
    try:
        crasher.tell("crash")
        await asyncio.wait_for(restarted.wait(), DEADLINE)
    finally:
        unsubscribe()


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """The (event, data) pairs of a Server-Sent Events response."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and event is not None:
            yield event, json.loads("\n".join(data))
            event, data = None, []


async def next_event(events: AsyncIterator[tuple[str, Any]], kind: str) -> Any:
    async with asyncio.timeout(DEADLINE):
        async for event, data in events:
            if event == kind:
                return data
    raise AssertionError(f"the stream ended before a {kind!r} event")


async def own_gateway(running: RunningGateway, **options: Any) -> tuple[LiveFeed, str, Any]:
    """A second gateway in the running system, serving ``live.routes`` on a feed we hold:
    the feed, the URL and the gateway actor."""
    feed = LiveFeed(running.system, **options)

    def app(host: Any) -> Starlette:
        return Starlette(routes=live.routes(host, feed=feed))

    ref = await running.system.actors.spawn(
        GatewayActor, running.system, app_factory=app, name="live-test"
    )
    return feed, str(await ref.ask(GatewayAddress())), ref


async def own_feed(running: RunningGateway, **options: Any) -> tuple[LiveFeed, str]:
    feed, url, _ = await own_gateway(running, **options)
    return feed, url


def sampler_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "actoros.gateway.live.sampler"]


# -- /api/tree -----------------------------------------------------------------------------


async def test_api_tree_lists_every_actor_with_the_system_and_the_inference_numbers(
    gateway: RunningGateway,
) -> None:
    await gateway.system.agent("faq").ask(UserMessage(text="hello"), timeout=10)
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/api/tree")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    frame = response.json()
    snapshot = {info.path: info for info in gateway.system.actors.snapshot()}
    assert frame["system"] == "gw"
    assert frame["uptime_s"] >= 0
    assert [row["path"] for row in frame["actors"]] == list(snapshot)
    for row in frame["actors"]:
        info = snapshot[row["path"]]
        assert (row["kind"], row["state"], row["parent"]) == (info.kind, info.state, info.parent)
        assert set(row) == {
            "type",
            "path",
            "parent",
            "name",
            "kind",
            "state",
            "restarts",
            "mailbox",
            "processed",
            "children",
        }
        assert row["type"] == "ActorInfo"
    faq = next(row for row in frame["actors"] if row["path"] == "/agents/faq")
    assert faq["kind"] == "LLMAgent" and faq["processed"] >= 1
    assert frame["totals"]["actors"] == len(snapshot)
    assert frame["hidden"] == 0
    inference = frame["inference"]
    assert inference["engine_ready"] is True
    assert inference["completed"] >= 1 and inference["output_tokens"] >= 1


async def test_api_tree_has_no_inference_numbers_without_an_inference_actor(
    tmp_path: Path,
) -> None:
    echo = {"name": "echo", "kind": "rule", "rules": [{"reply": "echo: {text}"}]}
    sections: dict[str, Any] = {"inference": None, "agents": [echo]}
    async with start_gateway(tmp_path, gateway={"allow_raw_model": False}, **sections) as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            frame = (await client.get("/api/tree")).json()
    assert frame["inference"] is None
    assert "/kernel/inference" not in {row["path"] for row in frame["actors"]}
    assert "/agents/echo" in {row["path"] for row in frame["actors"]}


async def test_a_crowd_of_10k_children_is_capped_but_counted_and_the_restarted_one_shown(
    gateway: RunningGateway,
) -> None:
    children = [ChildSpec(f"w{i}", Crasher) for i in range(10_000)]
    spec = SupervisorSpec(max_restarts=100, within=1.0, children=children)
    await gateway.system.actors.spawn_supervisor(spec, name="crowd")
    late = gateway.system.actors.lookup("/crowd/w9999")
    await crash(gateway, late)
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        frame = (await client.get("/api/tree")).json()
    rows = {row["path"]: row for row in frame["actors"]}
    crowd = [p for p in rows if p.startswith("/crowd/")]
    assert len(crowd) == live.MAX_CHILDREN + 1  # the first 50 (the crashed one first) + a group
    assert rows["/crowd/w9999"]["restarts"] == 1  # a restarted child is never hidden
    group = rows["/crowd/…"]
    assert group["hidden"] == 10_000 - live.MAX_CHILDREN
    assert group["parent"] == "/crowd" and group["restarts"] == 0
    assert frame["hidden"] == group["hidden"]
    assert frame["totals"]["actors"] == len(gateway.system.actors.snapshot())
    assert frame["totals"]["restarts"] >= 1


async def test_a_frame_decodes_into_the_structs_it_was_encoded_from(
    gateway: RunningGateway,
) -> None:
    # actoros top reads /api/tree with these declarations: its rows are a tagged union
    feed, url = await own_feed(gateway, max_children=2)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/api/tree")
    frame = msgspec.json.decode(response.content, type=TreeFrame)
    groups = [row for row in frame.actors if isinstance(row, ActorGroup)]
    assert groups and frame.hidden == sum(group.hidden for group in groups)
    assert all(isinstance(row, ActorInfo | ActorGroup) for row in frame.actors)
    assert {row["type"] for row in response.json()["actors"]} == {"ActorInfo", "ActorGroup"}
    assert frame.inference is not None and frame.inference.engine_ready


async def test_a_frame_of_a_cluster_gives_each_row_its_node(gateway: RunningGateway) -> None:
    system = gateway.system
    rows = [
        msgspec.structs.replace(info("/front"), node="head"),
        msgspec.structs.replace(info("/workers"), node="workers"),
        msgspec.structs.replace(info("/workers/w0", restarts=2), node="workers"),
    ]

    class ClusterHost:
        """The running system, as if it led a cluster of a head and a "workers" node."""

        config, actors, agent_paths = system.config, system.actors, system.agent_paths

        def agent(self, name: str) -> Any:
            return None

        def service(self, name: str) -> Any:
            return None

        async def snapshot(self) -> list[ActorInfo]:
            return rows

    frame = await LiveFeed(ClusterHost()).frame()
    assert frame.actors == rows and frame.totals.actors == 3 and frame.totals.restarts == 2
    encoded = msgspec.json.decode(msgspec.json.encode(frame))
    assert [row["node"] for row in encoded["actors"]] == ["head", "workers", "workers"]


async def test_a_frame_of_a_single_process_names_no_node(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        frame = (await client.get("/api/tree")).json()
    assert frame["actors"] and not any("node" in row for row in frame["actors"])


# -- cap_tree on its own ---------------------------------------------------------------------


def info(path: str, *, restarts: int = 0, mailbox: int = 0, processed: int = 1) -> ActorInfo:
    parent, _, name = path.rpartition("/")
    return ActorInfo(
        path=path,
        parent=parent or None,
        name=name,
        kind="K",
        state="running",
        restarts=restarts,
        mailbox=mailbox,
        processed=processed,
        children=0,
    )


def test_cap_tree_keeps_a_small_tree_as_it_is() -> None:
    infos = [info("/a"), info("/a/b"), info("/a/b/c"), info("/d")]
    assert cap_tree(infos, max_children=3, max_rows=10) == (infos, 0)


def test_cap_tree_groups_extra_children_with_their_subtrees_and_sums() -> None:
    infos = [info("/s")]
    for i in range(5):
        infos += [info(f"/s/c{i}", mailbox=i % 2), info(f"/s/c{i}/leaf", processed=10)]
    infos[-2] = info("/s/c4", restarts=2)  # restarted: shown first although it started last
    rows, hidden = cap_tree(infos, max_children=2, max_rows=100)
    # c4 (restarted), then c1 (mail waiting) before c0 (start order); in start order
    assert [r.path for r in rows] == ["/s", "/s/c1", "/s/c1/leaf", "/s/c4", "/s/c4/leaf", "/s/…"]
    group = rows[-1]
    assert isinstance(group, ActorGroup) and group.parent == "/s"
    # c0, c2, c3 with one leaf each; c3 has mail
    assert (group.hidden, group.mailbox, group.processed, group.restarts) == (6, 1, 3 + 30, 0)
    assert hidden == 6


def test_cap_tree_stops_at_the_row_limit_and_sums_up_the_rest() -> None:
    infos = [info(f"/t{i}") for i in range(10)]
    rows, hidden = cap_tree(infos, max_children=100, max_rows=4)
    assert [r.path for r in rows] == ["/t0", "/t1", "/t2", "/…row-limit"]
    assert hidden == 7 and isinstance(rows[-1], ActorGroup) and rows[-1].processed == 7


# -- /api/events ---------------------------------------------------------------------------


async def test_events_send_a_tree_on_each_restart_without_waiting_for_the_interval(
    gateway: RunningGateway,
) -> None:
    crasher = await crash_lab(gateway)
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=DEADLINE) as client,
        client.stream("GET", "/api/events", params={"interval": 60}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse(response)
        history = await next_event(events, "throughput")
        assert history["window_s"] == live.HISTORY_S and isinstance(history["points"], list)
        first = await next_event(events, "tree")
        row = next(r for r in first["actors"] if r["path"] == "/lab/crasher")
        assert row["restarts"] == 0
        for expected in (1, 2):
            await crash(gateway, crasher)
            # the interval is a minute: only the lifecycle event can bring this frame
            while True:
                frame = await next_event(events, "tree")
                row = next(r for r in frame["actors"] if r["path"] == "/lab/crasher")
                if row["restarts"] == expected:
                    break
                assert row["restarts"] == expected - 1


async def test_events_resend_the_tree_every_interval(gateway: RunningGateway) -> None:
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=DEADLINE) as client,
        client.stream("GET", "/api/events", params={"interval": 0.05}) as response,
    ):
        events = sse(response)
        seen = [await next_event(events, "tree") for _ in range(3)]
        processed = gateway.system.actors.lookup("/agents/echo")
        assert processed is not None
        await processed.ask(UserMessage(text="hi"), timeout=10)
        while True:  # a later frame shows the new message, with no lifecycle event
            frame = await next_event(events, "tree")
            echo = next(r for r in frame["actors"] if r["path"] == "/agents/echo")
            if echo["processed"] >= 1:
                break
    assert len({f["time"] for f in seen}) == 3


async def test_a_bad_interval_is_a_400(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for value in ("0", "fast", "1e9"):
            response = await client.get("/api/events", params={"interval": value})
            assert response.status_code == 400
            assert response.json()["error"]["param"] == "interval"


async def test_the_sampler_runs_while_watched_and_its_history_outlives_the_clients(
    gateway: RunningGateway,
) -> None:
    feed, url = await own_feed(gateway, sample_every=0.05)
    assert not feed.sampling and not sampler_tasks()
    faq = gateway.system.agent("faq")
    assert faq is not None

    async def traffic() -> None:
        while True:
            await faq.ask(UserMessage(text="what are your opening hours?"), timeout=10)

    busy = asyncio.ensure_future(traffic())
    try:
        async with (
            httpx.AsyncClient(base_url=url, timeout=DEADLINE) as client,
            client.stream("GET", "/api/events") as response,
        ):
            events = sse(response)
            await next_event(events, "throughput")
            assert feed.sampling and len(sampler_tasks()) == 1
            while True:
                t, tokens_per_s = await next_event(events, "sample")
                if tokens_per_s > 0:
                    break
    finally:
        busy.cancel()
        await asyncio.gather(busy, return_exceptions=True)
    await wait_until(lambda: not feed.clients and not feed.sampling and not sampler_tasks())
    assert (t, tokens_per_s) in [(s.t, s.tokens_per_s) for s in feed.history]
    async with (
        httpx.AsyncClient(base_url=url, timeout=DEADLINE) as client,
        client.stream("GET", "/api/events") as response,
    ):
        history = await next_event(sse(response), "throughput")
    assert [t, tokens_per_s] in history["points"]  # a new client gets the points it missed


async def test_a_client_that_leaves_leaves_no_task_and_no_subscription(
    gateway: RunningGateway,
) -> None:
    feed, url = await own_feed(gateway)
    subscriptions = len(gateway.system.actors.events._subs)  # the stream's own list: no leak
    clients = [httpx.AsyncClient(base_url=url, timeout=DEADLINE) for _ in range(3)]
    try:
        streams = [c.stream("GET", "/api/events", params={"interval": 0.05}) for c in clients]
        responses = [await s.__aenter__() for s in streams]
        # held: an event iterator that is garbage-collected closes its response
        events = [sse(response) for response in responses]
        for each in events:
            await next_event(each, "tree")
        assert len(feed.clients) == 3 and feed.sampling
        assert len(gateway.system.actors.events._subs) == subscriptions + 1  # one for all
        sampler = sampler_tasks()
        assert len(sampler) == 1
        await streams[0].__aexit__(None, None, None)
        await wait_until(lambda: len(feed.clients) == 2)
        assert feed.sampling  # others still watch
        for stream in streams[1:]:
            await stream.__aexit__(None, None, None)
        await wait_until(lambda: not feed.clients)
        assert not feed.sampling and sampler[0].done() and not sampler_tasks()
        assert len(gateway.system.actors.events._subs) == subscriptions
    finally:
        for client in clients:
            await client.aclose()


async def test_a_stopping_gateway_ends_its_streams_with_a_closing_event(
    gateway: RunningGateway,
) -> None:
    feed, url, ref = await own_gateway(gateway)
    async with (
        httpx.AsyncClient(base_url=url, timeout=DEADLINE) as client,
        client.stream("GET", "/api/events", params={"interval": 60}) as response,
    ):
        events = sse(response)
        await next_event(events, "tree")
        stopping = asyncio.ensure_future(ref.stop())
        # without the closing event the stream would hang on until uvicorn's grace runs out
        assert await next_event(events, "closing") == {"reason": "the gateway is stopping"}
        assert [event async for event in events] == []  # and then it ends
        await stopping
    assert not feed.clients and not feed.sampling


async def wait_until(condition: Any, timeout: float = DEADLINE) -> None:
    """Poll ``condition`` (the server notices a closed connection on its own time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# -- the page and auth ---------------------------------------------------------------------


async def test_the_page_and_its_files_are_served(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        page = await client.get("/")
        script = await client.get("/static/live.js")
        style = await client.get("/static/live.css")
        missing = await client.get("/static/nothing.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="static/live.js"></script>' in page.text
    assert 'id="tree-body"' in page.text and 'id="chart"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing remote
    assert script.status_code == 200 and "EventSource" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404


async def test_with_tokens_the_feeds_want_one_but_the_page_stays_open(tmp_path: Path) -> None:
    tokens = [{"name": "ops", "token": "s3cret-token"}]
    async with start_gateway(tmp_path, gateway={"tokens": tokens}) as running:
        async with httpx.AsyncClient(base_url=running.url, timeout=DEADLINE) as client:
            assert (await client.get("/")).status_code == 200
            refused = await client.get("/api/tree")
            wrong = await client.get("/api/tree", headers={"Authorization": "Bearer nope"})
            header = await client.get("/api/tree", headers={"Authorization": "Bearer s3cret-token"})
            query = await client.get("/api/tree", params={"token": "s3cret-token"})
            no_events = await client.get("/api/events")
            async with client.stream(
                "GET", "/api/events", params={"token": "s3cret-token"}
            ) as response:
                assert response.status_code == 200
                frame = await next_event(sse(response), "tree")
    assert refused.status_code == 401 and wrong.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert no_events.status_code == 401
    assert header.status_code == 200 and query.status_code == 200
    assert frame["system"] == "gw"
