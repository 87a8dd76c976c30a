"""``actoros run``'s system split over two nodes: the shipped fake example with its ``workers``
group on a second node gives the same answers as on one.

This process is the head (kernel, scheduler journal, the ``front`` group, the workload); the
``workers`` group (two LLM agents) runs in a node process on the session's Ray cluster and
reaches the head's inference actor, threads and tools through remote refs. The head runs on the
test's own loop, so these tests run on asyncio and uvloop both.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from app.configs import fake_config, lines_of, slow_fake_config

from actoros.app import cluster as app_cluster
from actoros.app import run_system, start_system
from actoros.config import ClusterConfig, Config, NodeConfig
from actoros.inference.messages import Completion, Generate, TokenDelta
from actoros.inference.readiness import wait_engine_ready
from actoros.inference.request import CompletionStream

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]


def split(config: Config, engines: tuple[str, ...] = ()) -> Config:
    """``config`` with its ``workers`` group on a second node; ``engines``: the nodes that run
    an engine of their own (none: the head's one inference actor serves both)."""
    nodes = (
        NodeConfig(
            name="head", groups=("front",), resources={"CPU": 0.0}, inference="head" in engines
        ),
        NodeConfig(
            name="workers",
            groups=("workers",),
            resources={"CPU": 0.5},
            inference="workers" in engines,
        ),
    )
    cluster = ClusterConfig(backend="ray", address="auto", heartbeat=0.5, nodes=nodes)
    return msgspec.structs.replace(config, cluster=cluster)


def timeless(config: Config) -> Config:
    """The example without the clock tool, whose answers (and so the fake model's next
    prompts) change with the second a run happens in."""
    agents = tuple(
        msgspec.structs.replace(a, tools=tuple(t for t in a.tools if t != "clock"))
        for a in config.agents
    )
    return msgspec.structs.replace(config, agents=agents)


@pytest.mark.parametrize("engines", [(), ("workers",)], ids=["head-engine", "workers-engine"])
async def test_the_fake_example_on_two_nodes_answers_as_on_one(
    ray_cluster: str, tmp_path: Path, engines: tuple[str, ...]
) -> None:
    """The same 20 answers as on one process, with the head's engine serving both nodes, or
    with the only engine on the workers node: then the head's router sends it every request,
    the front agents' (on the head) and the workers' alike."""
    alone, apart = io.StringIO(), io.StringIO()
    one = await run_system(timeless(fake_config(tmp_path / "one")), out=alone)
    config = split(timeless(fake_config(tmp_path / "two")), engines)
    two = await run_system(config, out=apart)
    assert (two.tasks, two.ok, two.failed) == (one.tasks, one.ok, one.failed) == (20, 20, 0)
    by_id = {line["id"]: line for line in lines_of(alone)}
    for line in lines_of(apart):
        assert line["output"] == by_id[line["id"]]["output"], line["id"]
    assert two.output_tokens == one.output_tokens > 0


async def test_a_streamed_request_streams_from_the_other_nodes_engine(
    ray_cluster: str, tmp_path: Path
) -> None:
    """The router sends a streamed ask to the workers' engine: the stream crosses back, its
    deltas in order, then the completion."""
    config = split(timeless(fake_config(tmp_path)), engines=("workers",))
    system = await start_system(msgspec.structs.replace(config, workload=None))
    try:
        assert await wait_engine_ready(system.actors, "/kernel/inference", timeout=60)
        inference = system.service("inference")
        assert inference is not None
        gen = Generate(prompt="tell me a story", max_tokens=16, stream=True, ignore_eos=True)
        stream = await inference.ask(gen, timeout=30)
        assert isinstance(stream, CompletionStream)
        items = [item async for item in stream]
        *deltas, completion = items
        assert isinstance(completion, Completion) and completion.usage.completion_tokens == 16
        assert all(isinstance(d, TokenDelta) for d in deltas)
        assert [d.index for d in deltas] == list(range(len(deltas)))
        assert "".join(d.text for d in deltas) == completion.text
    finally:
        await system.shutdown()


@pytest.mark.parametrize("engines", [(), ("head", "workers")], ids=["head-engine", "two-engines"])
async def test_a_node_killed_mid_workload_loses_no_task(
    ray_cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engines: tuple[str, ...]
) -> None:
    """SIGKILL of the workers node's process while its agents answer: the head restarts the
    node with its group, the tasks it was running are asked again, every task is answered.
    With an engine on each node, the workers' engine dies with them: the requests it had
    fail over to the head's (the router skips the lost one), none is lost."""
    heads: list[Any] = []
    start = app_cluster.start_cluster

    async def keep_head(system: Any) -> Any:
        heads.append(await start(system))
        return heads[-1]

    monkeypatch.setattr(app_cluster, "start_cluster", keep_head)
    out = io.StringIO()
    config = split(timeless(slow_fake_config(tmp_path, token_delay=0.01)), engines)
    running = asyncio.ensure_future(run_system(config, out=out))
    while len(lines_of(out)) < 3:  # some tasks answered, the rest on their way
        assert not running.done(), running
        await asyncio.sleep(0.01)
    first = heads[0].pids()["workers"]
    os.kill(first, signal.SIGKILL)
    summary = await asyncio.wait_for(running, 90)
    assert (summary.tasks, summary.ok, summary.failed) == (20, 20, 0)
    assert sorted(line["id"] for line in lines_of(out)) == [f"q{i:02d}" for i in range(1, 21)]
