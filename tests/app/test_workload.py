"""The workload: task ids, the journal's answers, and each task's outcome as one line.

Runs the real assembly (rule agents, the fake engine) with state in a temporary folder.
"""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
import pytest

from actoros.app import TaskOutcome, run_system, workload_tasks
from actoros.app.workload import outcome_of
from actoros.config import Config, parse_config
from actoros.kernel import TaskResult

from .configs import fake_config, journal, lines_of, rule_workload

pytestmark = pytest.mark.timeout(30)


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


async def test_a_line_inserted_at_the_top_of_a_workload_gives_no_task_another_ones_answer(
    tmp_path: Path,
) -> None:
    """Before: default ids were positions (task-0001...), so after the insert every task was
    answered with the result of the question that had been on its line."""
    answers = {"capital of France?": "Paris", "what is 2+2?": "4", "hello": "dunno"}
    first = io.StringIO()
    await run_system(rule_workload(tmp_path, ["capital of France?", "what is 2+2?"]), out=first)
    second = io.StringIO()
    config = rule_workload(tmp_path, ["hello", "capital of France?", "what is 2+2?"])
    await run_system(config, out=second)
    lines = lines_of(second)
    assert {line["input"]: line["output"] for line in lines} == answers
    before = {line["id"]: line for line in lines_of(first)}
    for line in lines:  # the tasks that were there keep their ids and their journaled answer
        if line["input"] != "hello":
            assert before[line["id"]] == line


async def test_ids_not_given_come_from_what_the_task_asks_and_repeats_stay_apart(
    tmp_path: Path,
) -> None:
    config = rule_workload(tmp_path, ["what is 2+2?", "what is 2+2?", "hello"])
    ids = [task.id for task in workload_tasks(config)]
    assert len(set(ids)) == 3 and all(i is not None and i.startswith("task-") for i in ids)
    assert ids[1] == f"{ids[0]}-2"
    assert [task.id for task in workload_tasks(config)] == ids  # the same on every run
    out = io.StringIO()
    summary = await run_system(config, out=out)
    assert (summary.ok, sorted(line["id"] for line in lines_of(out))) == (3, sorted(ids))
    grown = rule_workload(tmp_path, ["capital of France?", "what is 2+2?", "what is 2+2?", "hello"])
    assert [task.id for task in workload_tasks(grown)][1:] == ids


async def test_a_task_whose_input_changed_under_its_id_is_asked_again(tmp_path: Path) -> None:
    def config(question: str) -> Config:
        return parse_config(
            f"""
system: {{state_dir: {tmp_path}}}
agents:
  - {{name: a, kind: rule, rules: [{{match: {{text: hi}}, reply: hello}}, {{reply: "what?"}}]}}
workload: {{agent: a, tasks: [{{id: q1, input: "{question}"}}]}}
"""
        )

    await run_system(config("hi"), out=io.StringIO())
    out = io.StringIO()
    await run_system(config("bye"), out=out)
    [line] = lines_of(out)
    assert (line["id"], line["input"], line["output"]) == ("q1", "bye", "what?")
    assert journal(tmp_path)["q1"][0] == "done"


async def test_the_journal_holds_each_outcome_as_the_bytes_its_handler_encoded(
    tmp_path: Path,
) -> None:
    """The outcome is encoded once, by the handler: the journal stores those bytes, in the
    shape journals of earlier runs hold (``{"output" | "error", "seconds"}``)."""
    config = rule_workload(tmp_path, ["what is 2+2?", "hello"])
    out = io.StringIO()
    await run_system(config, out=out)
    rows = journal(tmp_path)
    lines = lines_of(out)
    assert len(lines) == 2
    for line in lines:
        assert list(line) == ["id", "agent", "input", "output", "seconds"]
        expected = TaskOutcome(output=line["output"], seconds=line["seconds"])
        assert rows[line["id"]] == ("done", msgspec.json.encode(expected).decode())


def test_an_outcome_reads_the_same_from_the_handlers_bytes_and_from_an_older_journal() -> None:
    outcome = TaskOutcome(output="4", seconds=0.25)
    encoded = msgspec.Raw(msgspec.json.encode(outcome))
    fresh = TaskResult(id="workload:q1", status="done", result=encoded)
    # what ``_stored_result`` gives for a row an earlier run (an untyped dict) journaled
    stored = TaskResult(id="workload:q1", status="done", result={"output": "4", "seconds": 0.25})
    assert outcome_of(fresh) == outcome_of(stored) == outcome
    failed = {"error": "timed out after 1 s", "seconds": 1.0}
    assert outcome_of(TaskResult(id="q", status="done", result=failed)) == TaskOutcome(
        error="timed out after 1 s", seconds=1.0
    )


def test_a_failed_handler_or_a_result_of_another_shape_is_an_error_outcome() -> None:
    assert outcome_of(TaskResult(id="q", status="failed", error="boom")) == TaskOutcome(
        error="boom"
    )
    for odd in ("text", {}, {"seconds": "soon"}, None):
        assert outcome_of(TaskResult(id="q", status="done", result=odd)) == TaskOutcome(
            error="failed"
        ), odd
