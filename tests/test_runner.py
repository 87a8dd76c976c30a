"""``run_system``: a config becomes a running system, runs its workload, and stops.

Runs the real assembly — kernel services, agent groups, the fake engine — with state in a
temporary folder; no CLI involved.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import msgspec
import pytest

from actoros.config import Config, ConfigError, parse_config
from actoros.kernel import Subscribers
from actoros.runner import RunSummary, run_system, start_system

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parent.parent


def fake_config(state: Path) -> Config:  # the shipped example, with its state in ``state``
    text = (REPO / "configs" / "fake.yaml").read_text(encoding="utf-8")
    text = text.replace("state_dir: ../.actoros/fake", f"state_dir: {state}")
    assert text != (REPO / "configs" / "fake.yaml").read_text(encoding="utf-8")
    return parse_config(text, base_dir=REPO / "configs")


def lines_of(out: io.StringIO) -> list[dict[str, object]]:
    return [msgspec.json.decode(line) for line in out.getvalue().splitlines()]


async def test_the_fake_example_answers_every_task_with_one_json_line(tmp_path: Path) -> None:
    config = fake_config(tmp_path)
    out = io.StringIO()
    summary = await run_system(config, out=out)
    lines = lines_of(out)
    assert summary == RunSummary(
        tasks=20, ok=20, failed=0, seconds=summary.seconds, output_tokens=summary.output_tokens
    )
    assert sorted(line["id"] for line in lines) == [f"q{i:02d}" for i in range(1, 21)]
    for line in lines:
        assert set(line) == {"id", "agent", "input", "output", "seconds"}
        assert line["agent"] == "router"
    hello = next(line for line in lines if line["id"] == "q01")
    assert hello["output"] == "Hello! Ask me about your order or our shop."
    assert summary.output_tokens > 0  # the LLM agents went through the inference actor


async def test_a_second_run_answers_finished_tasks_from_the_journal(tmp_path: Path) -> None:
    config = fake_config(tmp_path)
    first, second = io.StringIO(), io.StringIO()
    await run_system(config, out=first)
    summary = await run_system(config, out=second)
    key = lambda line: line["id"]  # noqa: E731
    # same outputs and the same recorded seconds: nothing was asked again
    assert sorted(lines_of(second), key=key) == sorted(lines_of(first), key=key)
    assert summary.output_tokens == 0


async def test_an_agent_error_is_an_error_line_not_a_crash(tmp_path: Path) -> None:
    config = parse_config(
        f"""
system: {{state_dir: {tmp_path}}}
agents:
  - name: greeter
    kind: rule
    rules:
      - match: {{text: hi}}
        reply: hello
workload:
  agent: greeter
  tasks:
    - {{id: a, input: hi}}
    - {{id: b, input: something else}}
"""
    )
    out = io.StringIO()
    summary = await run_system(config, out=out)
    by_id = {line["id"]: line for line in lines_of(out)}
    assert by_id["a"]["output"] == "hello"
    assert "no rule matches" in by_id["b"]["error"]
    assert "output" not in by_id["b"]
    assert (summary.ok, summary.failed) == (1, 1)


async def test_without_a_workload_it_serves_until_stopped(tmp_path: Path) -> None:
    config = msgspec.structs.replace(fake_config(tmp_path), workload=None)
    stop = asyncio.Event()
    running = asyncio.ensure_future(run_system(config, out=io.StringIO(), stop_event=stop))
    await asyncio.sleep(0.05)
    assert not running.done()
    stop.set()
    summary = await asyncio.wait_for(running, 10)
    assert summary == RunSummary()


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


async def test_a_group_named_kernel_is_a_config_error(tmp_path: Path) -> None:
    config = parse_config(
        f"""
system: {{state_dir: {tmp_path}}}
agents:
  - {{name: a, kind: rule, rules: [{{reply: ok}}]}}
groups:
  - {{name: kernel, children: [a]}}
"""
    )
    with pytest.raises(ConfigError, match="kernel"):
        await run_system(config, out=io.StringIO())


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
