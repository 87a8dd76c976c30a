"""``actoros bench chaos``: its counters on hand-written results and journals, and a tiny run.

The counters must be able to fail: each is shown a case it has to count. The end-to-end run
(``ACTOROS_BENCH_TINY=1``: 14 tasks, one repeat per fault, fake engine) asserts that the report
is complete and its counts consistent, not that the code under test meets the targets: the
benchmark measures whatever code it runs.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actoros.bench.chaos import run as chaos
from actoros.bench.chaos._count import (
    Expect,
    complete,
    expectations,
    interrupted,
    journal_by_task,
    lost,
    read_lines,
    run_twice,
    unwritten,
    wrong,
)
from actoros.bench.chaos._faults import SPAN, moments
from actoros.bench.chaos._system import Spec, Task, read_journal, tasks_of
from actoros.bench.chaos.report import markdown
from actoros.bench.chaos.result import ChaosResult, Reference, Repeat, measures, row
from actoros.cli import main as cli_main

pytestmark = pytest.mark.timeout(30)

TASKS = [
    Task("t1", "echo request 1", "echo"),
    Task("t2", {"text": "calc 2", "expr": "(2 + 7) * 3"}, "calc"),
    Task("t3", "Question 3: write one line about actors.", "llm"),
]
OUTPUTS = ["router echoes: echo request 1", "27", "the actor"]
REFERENCE = [
    {"id": t.id, "agent": "router", "input": t.input, "output": out}
    for t, out in zip(TASKS, OUTPUTS, strict=True)
]
EXPECT = expectations(TASKS, REFERENCE)


def line(task_id: str, **fields: Any) -> dict[str, Any]:
    """A copy of the reference's line for ``task_id`` with ``fields`` changed (None: dropped)."""
    found = dict(next(r for r in REFERENCE if r["id"] == task_id))
    found.update(fields)
    return {k: v for k, v in found.items() if v is not None}


def journal_row(task: Task, status: str, attempts: int, **extra: Any) -> dict[str, Any]:
    payload = msgspec.json.encode({"agent": "router", "input": task.input}).decode()
    return {
        "id": f"workload:{task.id}",
        "kind": "workload",
        "payload": payload,
        "status": status,
        "attempts": attempts,
        **extra,
    }


# -- lost ---------------------------------------------------------------------------------------


def test_a_complete_right_answer_set_loses_nothing() -> None:
    assert lost(TASKS, EXPECT, REFERENCE) == []
    assert complete(TASKS, REFERENCE)


def test_lost_counts_a_missing_task_and_an_error_the_reference_did_not_have() -> None:
    final = [line("t1"), line("t3", output=None, error="the turn was cancelled")]

    assert lost(TASKS, EXPECT, final) == ["t2", "t3"]
    assert not complete(TASKS, final)


def test_lost_accepts_the_error_a_hung_tool_must_give_but_not_its_absence() -> None:
    expect = {**EXPECT, "t2": Expect("error", "timed out")}
    timed_out = line("t2", output=None, error="tool 'lookup' timed out after 1 s")

    assert lost(TASKS, expect, [line("t1"), timed_out, line("t3")]) == []
    assert lost(TASKS, expect, [line("t1"), line("t3")]) == ["t2"]


def test_a_task_the_reference_failed_is_not_judged() -> None:
    reference = [*REFERENCE[:2], line("t3", output=None, error="boom")]
    expect = expectations(TASKS, reference)

    assert expect["t3"] == Expect("anything")
    assert lost(TASKS, expect, [line("t1"), line("t2"), line("t3", output=None, error="x")]) == []


# -- wrong --------------------------------------------------------------------------------------


def test_right_answers_in_every_run_are_not_wrong() -> None:
    assert wrong(TASKS, EXPECT, [REFERENCE, REFERENCE[:1], []]) == []


def test_wrong_flags_an_id_paired_with_another_tasks_input_or_output() -> None:
    stale = line("t3", input="echo request 1")  # the journal answered by position
    swapped = line("t2", output="router echoes: echo request 1")

    assert wrong(TASKS, EXPECT, [[line("t1"), swapped], [stale]]) == ["t2", "t3"]


def test_wrong_flags_an_unknown_id_and_an_answer_where_a_timeout_was_due() -> None:
    expect = {**EXPECT, "t2": Expect("error", "timed out")}
    other_error = line("t1", output=None, error="boom")  # an error is judged by `lost`, not here

    assert wrong(TASKS, expect, [[line("t2"), other_error, line("t1", id="t9")]]) == [
        "t2",
        "t9",
    ]
    assert wrong(TASKS, expect, [[line("t2", output=None, error="tool failed")]]) == ["t2"]


def test_inexact_expectations_check_the_pairing_not_the_text() -> None:
    expect = expectations(TASKS, REFERENCE, exact=False)

    assert wrong(TASKS, expect, [[line("t3", output="another text")]]) == []
    assert wrong(TASKS, expect, [[line("t3", input="echo request 1")]]) == ["t3"]


def test_read_lines_skips_a_line_cut_short_by_a_kill(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_bytes(msgspec.json.encode(line("t1")) + b"\n" + b'{"id":"t2","agent":"rou')

    assert read_lines(out) == [line("t1")]
    assert read_lines(tmp_path / "missing.jsonl") == []


# -- the journal: run twice, the at-least-once window, unwritten --------------------------------


def test_journal_rows_are_matched_by_payload_whatever_the_id_and_extra_columns() -> None:
    t1, t2, t3 = TASKS
    rows = [
        journal_row(t1, "done", 1, input_hash="ab12"),  # a column a later journal may add
        {**journal_row(t2, "done", 1), "id": "workload:9f8e7d"},  # keyed by content
        {"id": "workload:t3", "kind": "workload", "payload": "not json", "status": "done"},
        {**journal_row(t1, "done", 1), "kind": "other"},
    ]

    found = journal_by_task(rows, TASKS)

    assert sorted(found) == ["t1", "t2", "t3"]
    assert found["t1"]["input_hash"] == "ab12"
    assert "attempts" not in found["t3"]


def test_run_twice_separates_the_at_least_once_window() -> None:
    t1, t2, t3 = TASKS
    at_fault = journal_by_task(
        [journal_row(t1, "running", 1), journal_row(t2, "done", 1), journal_row(t3, "queued", 0)],
        TASKS,
    )
    final = journal_by_task(
        [journal_row(t1, "done", 2), journal_row(t2, "done", 2), journal_row(t3, "done", 1)], TASKS
    )

    window = interrupted(at_fault)
    twice, in_window = run_twice(final, window)

    assert window == {"t1"}
    assert twice == ["t1", "t2"] and in_window == ["t1"]  # t2 was done, then ran again


def test_a_task_a_stop_sent_back_to_the_queue_is_in_the_window() -> None:
    t1, t2, _ = TASKS
    at_fault = journal_by_task([journal_row(t1, "queued", 1), journal_row(t2, "failed", 1)], TASKS)

    assert interrupted(at_fault) == {"t1"}


def test_unwritten_counts_finished_tasks_without_a_result_line() -> None:
    t1, t2, t3 = TASKS
    journal = journal_by_task(
        [journal_row(t1, "done", 1), journal_row(t2, "failed", 1), journal_row(t3, "running", 1)],
        TASKS,
    )

    assert unwritten(journal, [line("t1")]) == ["t2"]


def test_read_journal_reads_a_live_wal_journal_and_says_when_it_cannot(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    assert read_journal(state) == []
    writer = sqlite3.connect(state / "scheduler.sqlite", isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE tasks (id TEXT, status TEXT, attempts INTEGER, extra TEXT)")
    writer.execute("INSERT INTO tasks VALUES ('workload:t1', 'running', 1, 'x')")
    try:  # still open: the row is in the WAL, not yet in the database file
        assert read_journal(state) == [
            {"id": "workload:t1", "status": "running", "attempts": 1, "extra": "x"}
        ]
    finally:
        writer.close()
    (state / "scheduler.sqlite").unlink()
    (state / "scheduler.sqlite").write_bytes(b"not a database" * 100)
    assert read_journal(state) is None


# -- the workload, the moments, the report ------------------------------------------------------


def test_workload_ids_and_inputs_are_distinct_and_hung_lookups_spread() -> None:
    tasks = tasks_of(Spec(tasks=20, hung=4))

    assert len(tasks) == 24
    assert len({t.id for t in tasks}) == 24
    assert len({msgspec.json.encode(t.input) for t in tasks}) == 24
    hung = [i for i, t in enumerate(tasks) if t.kind == "hang"]
    assert len(hung) == 4 and hung[-1] - hung[0] >= 12


def test_fault_moments_are_seeded_one_per_slice_of_most_of_the_answering_span() -> None:
    reference = Reference(wall_s=3.0, first_line_s=1.0, last_line_s=2.0, errors=0)

    got = moments(random.Random(7), 4, reference)

    assert got == moments(random.Random(7), 4, reference)
    width = SPAN * 1.0  # of the answering span, 1.0 s to 2.0 s; from the run's first result
    assert [int(m / width * 4) for m in got] == [0, 1, 2, 3]


def repeat(**fields: Any) -> Repeat:
    base: dict[str, Any] = dict(
        landed=True,
        exit_codes=[130, 0],
        lost=[],
        wrong=[],
        run_twice=[],
        in_window=[],
        unwritten=[],
        journal=True,
        completed=True,
        recovered=True,
        recovery_s=1.0,
    )
    return Repeat(**{**base, **fields})


def test_a_row_sums_its_repeats_and_the_table_shows_a_missed_target() -> None:
    f = row(
        "sigterm",
        "SIGTERM",
        3,
        [
            repeat(lost=["t2"], recovered=False, recovery_s=2.0),
            repeat(run_twice=["t1", "t3"], in_window=["t1"]),
        ],
    )

    assert (f.runs, f.lost, f.run_twice, f.in_window, f.outside_window) == (2, 1, 2, 1, 1)
    assert (f.recovered, f.unrecovered, f.recovery_p50_s, f.recovery_max_s) == (1, 1, 1.5, 2.0)
    measured = measures([f])
    assert measured == {"lost": 1, "wrong": 0, "run_twice_outside_window": 1, "unrecovered": 1}


# -- end to end ---------------------------------------------------------------------------------

FAULTS = ["sigkill", "sigterm", "sigint_twice", "hung_tool", "second_process", "engine_core"]


def check_consistent(result: ChaosResult) -> None:
    assert [f.fault for f in result.faults] == FAULTS
    tasks = result.sizes.workload.tasks + result.sizes.workload.hung
    ids = {t.id for t in tasks_of(result.sizes.workload)}
    for f in result.faults[:-1]:
        assert f.skipped is None and f.runs == len(f.repeats) == 1 and f.tasks == tasks
        assert f.lost == sum(len(r.lost) for r in f.repeats)
        assert f.wrong == sum(len(r.wrong) for r in f.repeats)
        assert f.in_window <= f.run_twice and f.recovered <= f.runs and f.landed <= f.runs
        for r in f.repeats:
            assert set(r.lost) <= ids and set(r.unwritten) <= ids
            assert set(r.in_window) <= set(r.run_twice) <= ids
            assert r.exit_codes, "every repeat runs at least one process"
            assert not r.recovered or (r.completed and not r.lost and not r.wrong)
    assert result.faults[-1].skipped == "skipped under --quick"
    totals = measures(result.faults)
    assert result.metrics == totals
    assert result.passed == {k: t.met(totals[k]) for k, t in result.targets.items()}


@pytest.mark.timeout(120)
def test_tiny_quick_run_reports_every_fault_with_consistent_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACTOROS_BENCH_TINY", "1")
    out, work = tmp_path / "out", tmp_path / "work"

    assert cli_main(["bench", "chaos", "--quick", "--out", str(out), "--keep", str(work)]) == 0

    for name in ("chaos.json", "chaos.md", "chaos.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "chaos.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = msgspec.json.decode((out / "chaos.json").read_bytes(), type=ChaosResult)
    assert result.benchmark == "chaos" and result.quick and result.sizes.workload == chaos.TINY
    assert result.reference.errors == 0  # the fault-free run answers every task
    check_consistent(result)
    table = (out / "chaos.md").read_text()
    assert table == markdown(result) and table in capsys.readouterr().out
    for fault in FAULTS:
        assert f"| {fault} |" in table
    assert (work / "fake" / "sigkill-00" / "run-0.jsonl").exists()  # --keep keeps the folders


def test_cli_refuses_a_keep_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "work"
    file.write_text("")
    assert cli_main(["bench", "chaos", "--quick", "--out", str(tmp_path), "--keep", str(file)]) == 2
    assert "not a directory" in capsys.readouterr().err
