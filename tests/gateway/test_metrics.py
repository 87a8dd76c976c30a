"""``GET /metrics``: a running system (the runner's assembly on the fake engine) scraped
through the gateway's Starlette app, the exposition parsed with ``prometheus_client``'s own
parser, and the numbers checked against known traffic.

The app is built here from ``metrics.routes`` and ``metrics_middleware`` on an in-process
ASGI transport (httpx), on the same loop as the actors. Counters are compared before and
after the traffic, since the kernel's own actors also count.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
import pytest_asyncio
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from actoros import (
    Actor,
    ActorInfo,
    ActorRef,
    Backoff,
    ChildSpec,
    Context,
    LifecycleEvent,
    SupervisorSpec,
)
from actoros.agents import UserMessage
from actoros.app import System, start_system
from actoros.config import parse_config
from actoros.core import DeadLetter
from actoros.gateway import build_app
from actoros.gateway import openai as openai_api
from actoros.gateway.metrics import (
    LATENCY_BUCKETS,
    MetricsCollector,
    metrics_middleware,
    reason_class,
    routes,
)
from actoros.inference.errors import PromptTooLong
from actoros.inference.messages import Generate, InferenceRequestDone
from actoros.kernel import SubmitAndWait, Task
from actoros.testing import capture_events

from .conftest import RunningGateway

pytestmark = pytest.mark.timeout(30)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Echo(Actor):
    """Answers what it is asked; "crash" makes it fail."""

    def receive(self, message: Any, ctx: Context) -> Any:
        if message == "crash":
            raise RuntimeError("crash on purpose")
        return message


class Silent(Actor):
    """Takes every ask and never answers it: a service that is stuck."""

    def receive(self, message: Any, ctx: Context) -> Any:
        ctx.defer_reply()
        return None


class Busy(Actor):
    """Blocks on its first message until ``release`` is set (``entered`` says it is there)."""

    def __init__(self, entered: asyncio.Event, release: asyncio.Event) -> None:
        self.entered, self.release = entered, release

    async def receive(self, message: Any, ctx: Context) -> Any:
        self.entered.set()
        await self.release.wait()


def make_echo() -> Actor:  # a factory whose name is not the class's
    return Echo()


def config_text(state: Path, *, inference: bool = True, context: int = 64) -> str:
    engine = f"{{engine: fake, engine_args: {{max_model_len: {context}}}}}"
    model = f"inference: {engine}\n" if inference else ""
    return f"""
system: {{name: metrics-test, state_dir: {state}}}
{model}agents:
  - name: greeter
    kind: rule
    rules:
      - match: {{text: hi}}
        reply: hello
"""


@pytest_asyncio.fixture(loop_scope="function")
async def host(tmp_path: Path) -> AsyncIterator[System]:
    """The runner's system for a small config: kernel, fake engine, one rule agent."""
    system = await start_system(parse_config(config_text(tmp_path)))
    system.open.set()  # as run_system does once agents are up: workload tasks may run
    try:
        yield system
    finally:
        await system.shutdown()


class Scraper:
    """An app with ``/metrics`` and the HTTP middleware, and a client for it."""

    def __init__(self, host: Any, collector: MetricsCollector | None = None) -> None:
        self.collector = collector if collector is not None else MetricsCollector(host)
        app = Starlette(
            routes=routes(host, self.collector), middleware=[metrics_middleware(self.collector)]
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        )

    async def __call__(self) -> Samples:
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return parse(response.text)

    async def aclose(self) -> None:
        await self.client.aclose()
        self.collector.close()


@pytest_asyncio.fixture(loop_scope="function")
async def scrape(host: System) -> AsyncIterator[Scraper]:
    scraper = Scraper(host)
    try:
        yield scraper
    finally:
        await scraper.aclose()


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, f"{family.name} has no HELP text"
        assert family.name.startswith("actoros_"), family.name
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled series that has not appeared yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples if n == name]


# -- actors ------------------------------------------------------------------------------------


async def test_asks_to_actors_count_for_their_kind(host: System, scrape: Scraper) -> None:
    echoes = [await host.actors.spawn(Echo, name=f"echo-{i}") for i in range(3)]
    before = await scrape()
    for i, echo in enumerate(echoes):
        for _ in range(i + 1):  # 1 + 2 + 3 asks
            assert await echo.ask("ping") == "ping"
    after = await scrape()
    name = "actoros_actor_messages_processed_total"
    assert value(after, name, kind="Echo") - value(before, name, kind="Echo") == 6
    assert value(after, "actoros_actors", kind="Echo", state="running") == 3
    assert value(after, "actoros_actor_mailbox_depth", kind="Echo") == 0


async def test_the_processed_counter_keeps_stopped_actors_counts_and_never_falls(
    host: System, scrape: Scraper
) -> None:
    name = "actoros_actor_messages_processed_total"
    first = await host.actors.spawn(Echo, name="short-lived")
    for _ in range(4):
        await first.ask("ping")
    seen = value(await scrape(), name, kind="Echo")
    assert seen == 4
    await first.stop()
    assert value(await scrape(), name, kind="Echo") == 4  # carried, not lost
    # a new actor under the same name starts from 0: the counter goes on from 4
    second = await host.actors.spawn(Echo, name="short-lived")
    await second.ask("ping")
    assert value(await scrape(), name, kind="Echo") == 5
    assert value(await scrape(), "actoros_actors", kind="Echo", state="running") == 1


async def test_mailbox_depth_is_one_series_per_kind_summed_and_maxed(
    host: System, scrape: Scraper
) -> None:
    n = 2000
    for _ in range(n):
        await host.actors.spawn(Echo)
    release = asyncio.Event()
    for waiting in (3, 1):
        entered = asyncio.Event()
        actor = await host.actors.spawn(Busy, entered, release)
        actor.tell("block")
        await entered.wait()
        for _ in range(waiting):  # queued behind the message it is blocked on
            actor.tell("later")
    samples = await scrape()
    release.set()
    kinds = [s["kind"] for s in series(samples, "actoros_actor_mailbox_depth")]
    assert kinds.count("Echo") == kinds.count("Busy") == 1  # per kind, never per path
    assert value(samples, "actoros_actors", kind="Echo", state="running") == n
    assert value(samples, "actoros_actor_mailbox_depth", kind="Echo") == 0
    assert value(samples, "actoros_actor_mailbox_depth", kind="Busy") == 4
    assert value(samples, "actoros_actor_mailbox_depth_max", kind="Busy") == 3


async def test_a_crash_counts_a_failure_and_a_restart_for_the_actors_kind(
    host: System, scrape: Scraper
) -> None:
    before = await scrape()
    # spawned after the last scrape: its events wait for the next snapshot to name its kind
    echo = await host.actors.spawn(Echo, name="crasher")
    with capture_events(host.actors, LifecycleEvent) as events:
        echo.tell("crash")
        await events.wait_for(LifecycleEvent("/crasher", "restarted"))
    after = await scrape()
    for name in ("actoros_actor_restarts_total", "actoros_actor_failures_total"):
        assert value(after, name, kind="Echo") - value(before, name, kind="Echo") == 1
    assert value(after, "actoros_actor_restarts_total", kind="unknown") == 0


async def test_a_supervisor_that_gives_up_counts_an_escalation(
    host: System, scrape: Scraper
) -> None:
    spec = SupervisorSpec(max_restarts=0, within=5.0, children=[ChildSpec("child", Echo)])
    await host.actors.spawn_supervisor(spec, name="fragile")
    before = await scrape()
    child = host.actors.lookup("/fragile/child")
    assert child is not None
    with capture_events(host.actors, LifecycleEvent) as events:
        child.tell("crash")
        await events.wait_for(LifecycleEvent("/fragile", "restarted"))
    after = await scrape()
    name = "actoros_supervisor_escalations_total"
    assert value(after, name, kind="Supervisor") - value(before, name, kind="Supervisor") == 1
    assert value(after, "actoros_actor_failures_total", kind="Echo") == 1


async def test_an_actor_between_incarnations_keeps_its_kind(host: System, scrape: Scraper) -> None:
    # a long backoff holds the crashed child between incarnations while we scrape
    spec = SupervisorSpec(
        max_restarts=5,
        within=60.0,
        backoff=Backoff(min=60.0, max=60.0),
        children=[ChildSpec("worker", make_echo)],
    )
    await host.actors.spawn_supervisor(spec, name="slow")
    worker = host.actors.lookup("/slow/worker")
    assert worker is not None
    for _ in range(3):
        await worker.ask("ping")
    assert value(await scrape(), "actoros_actor_messages_processed_total", kind="Echo") == 3
    with capture_events(host.actors, LifecycleEvent) as events:
        worker.tell("crash")
        await events.wait_for(lambda e: (e.path, e.kind) == ("/slow/worker", "failed"))
    samples = await scrape()
    assert value(samples, "actoros_actors", kind="Echo", state="ended") == 1
    assert value(samples, "actoros_actor_messages_processed_total", kind="Echo") >= 3
    assert {s["kind"] for s in series(samples, "actoros_actors")}.isdisjoint({"make_echo"})


# -- dead letters ------------------------------------------------------------------------------


async def test_telling_a_stopped_actor_counts_a_dead_letter_for_its_kind(
    host: System, scrape: Scraper
) -> None:
    echo = await host.actors.spawn(Echo, name="gone")
    before = await scrape()  # the collector learns /gone is an Echo
    await echo.stop()
    ghost = await host.actors.spawn(Echo, name="never-scraped")
    await ghost.stop()
    with capture_events(host.actors, DeadLetter) as dead:
        for _ in range(3):
            echo.tell("anyone?")
        ghost.tell("anyone?")
        await dead.wait_for(count=4)
    after = await scrape()
    name = "actoros_dead_letters_total"
    labels = {"reason": "recipient_stopped"}
    assert (
        value(after, name, kind="Echo", **labels) - value(before, name, kind="Echo", **labels) == 3
    )
    assert value(after, name, kind="unknown", **labels) == 1  # never in a snapshot


def test_dead_letter_reasons_are_reduced_to_a_few_classes() -> None:
    assert reason_class("recipient stopped") == "recipient_stopped"
    assert reason_class("mailbox full (drop_new)") == "mailbox_full"
    assert reason_class("mailbox full (drop_oldest)") == "mailbox_full"
    assert reason_class("late reply to Ping: the ask had ended") == "late_reply"
    assert reason_class("unhandled by Supervisor") == "unhandled"
    assert reason_class("the inference actor takes Generate or InferenceStats, not str") == "other"


# -- inference ---------------------------------------------------------------------------------


async def test_inference_histograms_and_counters_follow_completed_requests(
    host: System, scrape: Scraper
) -> None:
    inference = host.service("inference")
    assert inference is not None
    n = 5
    gen = Generate(prompt="one two three", max_tokens=4, ignore_eos=True)
    await asyncio.gather(*(inference.ask(gen) for _ in range(n)))
    with pytest.raises(PromptTooLong):
        await inference.ask(Generate(prompt="word " * 80, max_tokens=4))
    samples = await scrape()
    assert value(samples, "actoros_inference_up") == 1
    assert value(samples, "actoros_inference_engine_ready") == 1
    assert value(samples, "actoros_inference_requests_waiting") == 0
    assert value(samples, "actoros_inference_requests_in_flight") == 0
    assert value(samples, "actoros_inference_output_tokens_per_second") > 0
    for histogram in (
        "actoros_inference_time_to_first_token_seconds",
        "actoros_inference_e2e_request_latency_seconds",
        "actoros_inference_request_queue_time_seconds",
    ):
        assert value(samples, f"{histogram}_count") == n  # the failed one is not a latency
        assert value(samples, f"{histogram}_bucket", le="+Inf") == n
        assert len(series(samples, f"{histogram}_bucket")) == len(LATENCY_BUCKETS) + 1
    assert value(samples, "actoros_inference_requests_total", finish_reason="length") == n
    assert value(samples, "actoros_inference_requests_total", finish_reason="error") == 1
    failures = "actoros_inference_request_failures_total"
    assert value(samples, failures, error_type="PromptTooLong") == 1
    assert value(samples, "actoros_inference_output_tokens_total") == n * 4
    assert value(samples, "actoros_inference_prompt_tokens_total") == n * 3 + 80


async def test_an_agents_turn_shows_as_one_inference_request_and_one_reply(
    tmp_path: Path,
) -> None:
    text = config_text(tmp_path, context=2048) + "  - name: llm\n    kind: llm\n    max_tokens: 8\n"
    system = await start_system(parse_config(text))
    scraper = Scraper(system)
    try:
        before = await scraper()
        llm = system.agent("llm")
        assert llm is not None
        await llm.ask(UserMessage(text="hello there"), timeout=10.0)
        after = await scraper()
    finally:
        await scraper.aclose()
        await system.shutdown()
    name = "actoros_actor_messages_processed_total"
    assert value(after, name, kind="LLMAgent") - value(before, name, kind="LLMAgent") == 1
    done = sum(
        value(after, "actoros_inference_requests_total", finish_reason=reason)
        for reason in ("stop", "length")
    )
    assert done >= 1 and value(after, "actoros_inference_e2e_request_latency_seconds_count") == done


async def test_a_scrape_succeeds_with_inference_down_when_the_service_does_not_answer(
    host: System,
) -> None:
    stuck = await host.actors.spawn(Silent, name="stuck")

    class StuckInference:
        """The running system, except that its inference service never answers."""

        config, actors, agent_paths = host.config, host.actors, host.agent_paths

        def agent(self, name: str) -> ActorRef | None:
            return host.agent(name)

        def service(self, name: str) -> ActorRef | None:
            return stuck if name == "inference" else host.service(name)

        async def snapshot(self) -> list[ActorInfo]:
            return await host.snapshot()

    scraper = Scraper(StuckInference(), MetricsCollector(StuckInference(), ask_timeout=0.05))
    try:
        samples = await scraper()
    finally:
        await scraper.aclose()
    assert value(samples, "actoros_inference_up") == 0
    assert not series(samples, "actoros_inference_requests_waiting")
    assert value(samples, "actoros_scheduler_up") == 1
    assert value(samples, "actoros_actors", kind="Silent", state="running") == 1


async def test_a_system_without_inference_reports_it_down(tmp_path: Path) -> None:
    system = await start_system(parse_config(config_text(tmp_path, inference=False)))
    scraper = Scraper(system)
    try:
        samples = await scraper()
    finally:
        await scraper.aclose()
        await system.shutdown()
    assert value(samples, "actoros_inference_up") == 0
    assert value(samples, "actoros_scheduler_up") == 1


# -- tasks -------------------------------------------------------------------------------------


async def test_scheduler_tasks_by_state_after_a_workload(host: System, scrape: Scraper) -> None:
    scheduler = host.service("scheduler")
    assert scheduler is not None
    jobs = [
        Task(kind="workload", payload={"agent": "greeter", "input": "hi"}, id=f"t{i}")
        for i in range(3)
    ]
    results = await asyncio.gather(*(scheduler.ask(SubmitAndWait(task=job)) for job in jobs))
    assert {r.status for r in results} == {"done"}
    failed = await scheduler.ask(SubmitAndWait(task=Task(kind="no-such-kind", id="bad")))
    assert failed.status == "failed"
    samples = await scrape()
    assert value(samples, "actoros_scheduler_up") == 1
    tasks = "actoros_scheduler_tasks"
    assert [value(samples, tasks, state=s) for s in ("queued", "running", "done", "failed")] == [
        0,
        0,
        3,
        1,
    ]
    assert value(samples, "actoros_scheduler_workers") >= 1


# -- HTTP ----------------------------------------------------------------------------------------


async def test_gateway_requests_are_counted_by_route_template_and_status(
    host: System, scrape: Scraper
) -> None:
    await scrape()
    assert (await scrape.client.get("/no/such/page")).status_code == 404
    assert (await scrape.client.post("/metrics")).status_code == 405
    samples = await scrape()  # counts the requests before it (its own ends after rendering)
    requests = "actoros_gateway_http_requests_total"
    assert value(samples, requests, route="/metrics", status="200") == 1
    assert value(samples, requests, route="unmatched", status="404") == 1
    assert value(samples, requests, route="/metrics", status="405") == 1
    duration = "actoros_gateway_http_request_duration_seconds_count"
    assert value(samples, duration, route="/metrics") == 2
    assert value(samples, duration, route="unmatched") == 1


async def test_openmetrics_is_served_when_asked_for(host: System, scrape: Scraper) -> None:
    response = await scrape.client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_the_gateway_app_serves_metrics(host: System) -> None:
    app = build_app(host)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    samples = parse(response.text)
    assert value(samples, "actoros_actors", kind="RuleAgent", state="running") == 1


async def test_two_systems_in_one_process_have_separate_metrics(
    host: System, scrape: Scraper, tmp_path: Path
) -> None:
    other = await start_system(parse_config(config_text(tmp_path / "other")))
    other_scrape = Scraper(other)
    try:
        echo = await host.actors.spawn(Echo)
        await echo.ask("ping")
        mine, theirs = await scrape(), await other_scrape()
    finally:
        await other_scrape.aclose()
        await other.shutdown()
    assert value(mine, "actoros_actor_messages_processed_total", kind="Echo") == 1
    assert not [s for s in series(theirs, "actoros_actors") if s["kind"] == "Echo"]


async def test_a_closed_or_dropped_collector_stops_listening_to_events(host: System) -> None:
    events = host.actors.events
    assert not events.wants(InferenceRequestDone)  # nobody listens: the actor builds nothing
    collector = MetricsCollector(host)
    assert events.wants(InferenceRequestDone)
    collector.close()
    assert not events.wants(InferenceRequestDone)
    MetricsCollector(host)  # dropped at once, as an app of a restarted gateway would be
    gc.collect()
    done = InferenceRequestDone(
        request_id="r",
        requester=None,
        prompt_tokens=1,
        completion_tokens=1,
        queued=0.0,
        ttft=0.0,
        total=0.0,
        finish_reason="stop",
    )
    events.publish(done)  # the orphaned subscription notices and leaves
    assert not events.wants(InferenceRequestDone)


# -- with the gateway of tests/gateway/conftest.py -----------------------------------------------


async def test_the_running_gateway_serves_metrics_over_http(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    samples = parse(response.text)
    agents = gateway.system.config.agents
    for kind, actor_kind in (("rule", "RuleAgent"), ("llm", "LLMAgent")):
        configured = sum(agent.kind == kind for agent in agents)
        assert value(samples, "actoros_actors", kind=actor_kind, state="running") == configured
    assert value(samples, "actoros_inference_up") == 1
    assert value(samples, "actoros_scheduler_up") == 1


async def test_openai_requests_are_counted_under_their_route_templates(
    gateway: RunningGateway,
) -> None:
    # the gateway's own app, wired as app.py is told to: one collector for /metrics and the
    # middleware
    host = gateway.system
    collector = MetricsCollector(host)
    app = Starlette(
        routes=[*openai_api.routes(host), *routes(host, collector)],
        middleware=[metrics_middleware(collector)],
    )
    # httpx2: the HTTP library the openai client is built on
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gateway")
    client = openai.AsyncOpenAI(
        base_url="http://gateway/v1", api_key="unused", http_client=http, max_retries=0
    )
    try:
        hello: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        reply = await client.chat.completions.create(model="echo", messages=hello)
        assert reply.choices[0].message.content == "echo: hi"
        stream = await client.chat.completions.create(model="echo", messages=hello, stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "echo: hi"
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(model="no-such-agent", messages=hello)
        await client.models.retrieve("echo")
        samples = parse((await http.get("/metrics")).text)
    finally:
        await client.close()
        collector.close()
    requests = "actoros_gateway_http_requests_total"
    chat = "/v1/chat/completions"
    assert value(samples, requests, route=chat, status="200") == 2
    assert value(samples, requests, route=chat, status=str(refused.value.status_code)) == 1
    assert value(samples, requests, route="/v1/models/{model:path}", status="200") == 1
    duration = "actoros_gateway_http_request_duration_seconds_count"
    assert value(samples, duration, route=chat) == 3
