"""``evaluate``: a config's workload run as ``actoros run`` runs it, each task recorded.

The real assembly on the fake engine, state in a temporary folder of the runner's own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from actoros.app.eval import eval_config, evaluate, labels_from, mode_result
from actoros.config import Config, WorkloadTask, parse_config

pytestmark = pytest.mark.timeout(60)


def desk(state: Path) -> Config:
    """A rule desk that seeds the kv store, answers a greeting, forwards the rest to an LLM
    agent on the fake engine; the seed runs first (a lower priority value)."""
    return parse_config(
        f"""
system: {{name: desk, state_dir: {state}}}
inference: {{engine: fake}}
agents:
  - name: desk
    kind: rule
    tools: [kv_put]
    permissions: {{agents: [helper], inference: false}}
    rules:
      - {{match: {{op: seed}}, tool: kv_put, args: {{key: "{{key}}", value: "{{value}}"}}}}
      - {{match: {{text: hi}}, reply: "Hi there"}}
      - {{forward: helper}}
  - name: helper
    kind: llm
    tools: [kv_get]
    max_tokens: 16
workload:
  agent: desk
  concurrency: 4
  timeout: 30
  tasks:
    - {{id: greet, input: hi}}
    - {{id: ask, input: "What is in the box?"}}
    - {{id: ask-2, input: "What else is in the box?"}}
    - {{id: seed, priority: -1, input: {{op: seed, text: s, key: box, value: a cat}}}}
"""
    )


def test_eval_config_moves_every_state_file_and_sets_constrain(tmp_path: Path) -> None:
    config = desk(tmp_path / "user")
    config = msgspec.structs.replace(
        config, services=parse_config("services: {scheduler: {db: /elsewhere/j.sqlite}}").services
    )
    moved = eval_config(config, tmp_path / "eval", constrain=False)
    assert moved.system.state_dir == str(tmp_path / "eval")
    assert moved.services.scheduler.db == str(tmp_path / "eval" / "scheduler.sqlite")
    assert moved.services.threads.db == str(tmp_path / "eval" / "threads.sqlite")
    assert moved.gateway is None
    assert [a.constrain for a in moved.agents] == [False, False]
    assert [a.constrain for a in eval_config(config, tmp_path, constrain=True).agents] == [True] * 2


async def test_every_task_is_recorded_with_its_steps_tokens_and_seconds(tmp_path: Path) -> None:
    config = desk(tmp_path / "user")
    run = await evaluate(config, constrain=False)
    assert not (tmp_path / "user").exists()  # the user's state dir is never touched
    records = {r.id: r for r in run.records}
    assert list(records) == ["greet", "ask", "ask-2", "seed"]  # the workload's order
    assert records["greet"].output == "Hi there" and records["greet"].model_calls == 0
    assert records["seed"].error is None
    for task in ("ask", "ask-2"):
        asked = records[task]
        assert asked.output and asked.error is None
        assert asked.model_calls == 1 and asked.malformed == 0  # fake text is a final answer
        assert asked.prompt_tokens > 0 and asked.completion_tokens > 0 and asked.seconds > 0
        assert asked.tools == ()
    assert run.model == "fake" and not run.constrain and run.malformed == 0

    labels = labels_from(
        {
            "tasks": {
                "greet": {"facts": ["^hi there$"], "tools": []},
                "ask": {"facts": ["cat"], "tools": ["kv_get"]},
            }
        },
        "l.yaml",
    )
    result = mode_result(run, labels)
    assert result.summary.tasks == 2 and result.summary.success == 0.5
    assert result.summary.tool_success == 0.0  # the fake engine's filler looked nothing up
    assert result.summary.protocol_validity == 1.0 and result.summary.model_calls == 1
    scored = {t.record.id: t.score for t in result.tasks}
    assert scored["seed"] is None and scored["ask-2"] is None  # unlabelled: run, not scored


async def test_a_task_whose_agent_fails_is_recorded_with_its_error(tmp_path: Path) -> None:
    config = desk(tmp_path)
    assert config.workload is not None
    missing = msgspec.structs.replace(config.workload.tasks[1], agent="nobody")
    config = msgspec.structs.replace(
        config, workload=msgspec.structs.replace(config.workload, tasks=(missing,))
    )
    run = await evaluate(config, constrain=True)
    [record] = run.records
    assert record.output is None and record.error == "agent 'nobody': no such agent is running"
    assert run.constrain


async def test_a_config_without_a_workload_cannot_be_evaluated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no workload"):
        await evaluate(msgspec.structs.replace(desk(tmp_path), workload=None), constrain=False)


async def test_constrained_turns_all_parse_and_their_tool_calls_are_recorded(
    tmp_path: Path,
) -> None:
    # the fake engine honours the agent's grammar: every step is a valid protocol message
    run = await evaluate(desk(tmp_path), constrain=True)
    asked = [r for r in run.records if r.id.startswith("ask")]
    assert run.constrain and run.malformed == 0
    assert all(r.model_calls >= 1 and r.malformed == 0 for r in asked)
    calls = [use for r in asked for use in r.tools]
    assert calls and {use.tool for use in calls} == {"kv_get"}
    assert all(isinstance(use.arguments.get("key"), str) for use in calls)
    labels = labels_from({"tasks": {"ask": {"tools": ["kv_get"]}}}, "l.yaml")
    assert mode_result(run, labels).summary.protocol_validity == 1.0


async def test_a_task_naming_a_thread_no_one_created_fails_alone(tmp_path: Path) -> None:
    config = desk(tmp_path)
    assert config.workload is not None
    lost = WorkloadTask(id="lost", input={"text": "where?", "thread_id": "no-such-thread"})
    config = msgspec.structs.replace(
        config, workload=msgspec.structs.replace(config.workload, tasks=(lost,))
    )
    [record] = (await evaluate(config, constrain=False)).records
    assert record.output is None and "no-such-thread" in (record.error or "")
    assert record.tools == () and record.model_calls == 0


async def test_a_stop_ends_the_run_without_records(tmp_path: Path) -> None:
    stop = asyncio.Event()
    stop.set()  # Ctrl-C before the engine was up: no task is asked
    run = await evaluate(desk(tmp_path), constrain=False, stop=stop)
    assert run.records == ()
