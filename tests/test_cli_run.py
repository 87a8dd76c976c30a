"""``actoros run FILE``: every exit path, run as a user would (``python -m actoros run``)."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "configs" / "fake.yaml"


def fake_copy(tmp_path: Path, *, workload: bool = True) -> Path:
    """configs/fake.yaml with its state in ``tmp_path`` (and without its workload)."""
    text = FAKE.read_text(encoding="utf-8").replace(
        "state_dir: ../.actoros/fake", f"state_dir: {tmp_path / 'state'}"
    )
    if not workload:
        text = text.partition("\nworkload:")[0] + "\n"
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def actoros(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actoros", *args],
        capture_output=True,
        text=True,
        timeout=50,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def test_the_fake_example_exits_0_with_one_json_line_per_task(tmp_path: Path) -> None:
    done = actoros("run", str(fake_copy(tmp_path)))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 20
    assert {line["id"] for line in lines} == {f"q{i:02d}" for i in range(1, 21)}
    assert all({"id", "agent", "input", "seconds"} <= set(line) for line in lines)
    assert all(("output" in line) != ("error" in line) for line in lines)


def test_out_writes_the_results_to_a_file_and_nothing_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "results" / "run.jsonl"
    done = actoros("run", str(fake_copy(tmp_path)), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert len(out.read_text(encoding="utf-8").splitlines()) == 20
    assert "\r" not in done.stderr  # no progress line when not on a terminal


def test_a_bad_config_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "agents:\n"
        "  - name: a\n"
        "    kind: rule\n"
        "    tools: [serch]\n"
        "    rules: [{forward: nobody}]\n",
        encoding="utf-8",
    )
    done = actoros("run", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith(f"{path}:") for line in lines)
    assert any("unknown tool 'serch'" in line for line in lines)
    assert any("nobody" in line for line in lines)


def test_a_missing_file_exits_2_in_one_line(tmp_path: Path) -> None:
    done = actoros("run", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1


def test_a_failure_at_start_exits_1_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"system: {{state_dir: {tmp_path / 'state'}}}\n"
        "services: {tools: {user: {lookup: 'json:no_such_function'}}}\n"  # found, not loadable
        "agents:\n"
        "  - {name: a, kind: rule, tools: [lookup], rules: [{reply: ok}]}\n",
        encoding="utf-8",
    )
    done = actoros("run", str(path))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("actoros: error:")]
    assert len(errors) == 1
    assert "no_such_function" in errors[0]
    assert "Traceback" not in done.stderr


def start_serving(config: Path) -> subprocess.Popen[str]:
    """``actoros run CONFIG`` (no workload), returned once it logged ``system.serving``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "actoros", "run", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        seen = ""
        while "system.serving" not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"never started serving: {seen}"
            if selector.select(timeout=left):
                line = proc.stderr.readline()
                assert line, f"exited before serving: {seen}"
                seen += line
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def test_sigterm_stops_a_serving_system_cleanly(tmp_path: Path) -> None:
    proc = start_serving(fake_copy(tmp_path, workload=False))
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""
    assert "system.stopped" in err


def test_chat_sends_each_line_to_the_agent_and_prints_its_reply(tmp_path: Path) -> None:
    done = actoros("run", str(fake_copy(tmp_path)), "--chat", "router", stdin="hello\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "router: Hello! Ask me about your order or our shop.\n"


def test_chat_with_an_unknown_agent_exits_2(tmp_path: Path) -> None:
    done = actoros("run", str(fake_copy(tmp_path)), "--chat", "nobody", stdin="")
    assert done.returncode == 2
    assert "unknown agent 'nobody'" in done.stderr


def test_run_is_listed_in_help() -> None:
    done = actoros("--help")
    assert done.returncode == 0
    assert "run" in done.stdout


def test_a_terminal_gets_a_live_progress_line(tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    out = tmp_path / "run.jsonl"
    argv = [sys.executable, "-m", "actoros", "--log-level", "warning", "run"]
    argv += [str(fake_copy(tmp_path)), "--out", str(out)]
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout and stderr are the terminal
        os.execv(sys.executable, argv)
    seen = b""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal closed: the child exited
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"\r20/20 tasks" in seen


@pytest.mark.parametrize("part", ["actoros.app", "actoros.agents"])
def test_a_missing_part_of_actoros_is_said_in_one_line(
    part: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from actoros import cli

    for name in [m for m in sys.modules if m.startswith("actoros.app") or m.startswith(part)]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, part, None)  # importing it now fails
    status = cli.main(["run", str(fake_copy(tmp_path))])
    err = capsys.readouterr().err
    assert status == 2
    missing = f"actoros run is not available in this installation ({part} is missing)"
    assert err == f"actoros: error: {missing}\n"


def test_a_run_killed_with_sigkill_resumes_without_redoing_finished_tasks(
    tmp_path: Path,
) -> None:
    tasks = "\n".join(f"    - {{id: t{i:02d}, input: question {i}}}" for i in range(12))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"system: {{state_dir: {tmp_path / 'state'}}}\n"
        "inference: {engine: fake, engine_args: {token_delay: 0.02, eos_after: [10, 10]}}\n"
        "agents:\n"
        "  - {name: faq, kind: llm, system_prompt: Answer., max_steps: 1}\n"
        f"workload:\n  agent: faq\n  concurrency: 2\n  tasks:\n{tasks}\n",
        encoding="utf-8",
    )
    first = tmp_path / "first.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "actoros", "run", str(config), "--out", str(first)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not first.exists() or len(first.read_text().splitlines()) < 3:
            assert proc.poll() is None, "finished before it could be killed"
            assert time.monotonic() < deadline, "no results in time"
            time.sleep(0.02)
        proc.kill()  # SIGKILL: no shutdown, no flush of anything in memory
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = {json.loads(line)["id"]: json.loads(line) for line in first.read_text().splitlines()}
    assert 3 <= len(before) < 12

    second = tmp_path / "second.jsonl"
    done = actoros("run", str(config), "--out", str(second))
    assert done.returncode == 0, done.stderr
    after = {json.loads(line)["id"]: json.loads(line) for line in second.read_text().splitlines()}
    assert sorted(after) == [f"t{i:02d}" for i in range(12)]
    assert all("output" in line for line in after.values())
    for task_id, line in before.items():  # the same answer, timing included: not run again
        assert after[task_id] == line


def interrupt_after(config: Path, out: Path, lines: int, signals: list[str]) -> tuple[int, str]:
    """``actoros run CONFIG --out OUT``, sent ``signals`` once OUT has ``lines`` lines; its
    exit status and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "actoros", "run", str(config), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not out.exists() or len(out.read_text().splitlines()) < lines:
            assert proc.poll() is None, "finished before the signal"
            assert time.monotonic() < deadline, "no results in time"
            time.sleep(0.02)
        for name in signals:
            proc.send_signal(getattr(signal, name))
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_sigterm_during_a_workload_stops_it_and_says_a_rerun_resumes(
    tmp_path: Path, sig: str
) -> None:
    tasks = "\n".join(f"    - {{id: t{i:02d}, input: question {i}}}" for i in range(40))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"system: {{state_dir: {tmp_path / 'state'}}}\n"
        "inference: {engine: fake, engine_args: {token_delay: 0.02, eos_after: [10, 10]}}\n"
        "agents:\n"
        "  - {name: faq, kind: llm, system_prompt: Answer., max_steps: 1}\n"
        f"workload:\n  agent: faq\n  concurrency: 1\n  tasks:\n{tasks}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    returncode, err = interrupt_after(config, out, 1, [sig])
    assert returncode == 130, err
    assert "tasks done (a rerun resumes the rest)" in err
    assert "Traceback" not in err and "never retrieved" not in err  # a cancelled gather's
    assert len(out.read_text().splitlines()) < 40


def test_debug_shows_the_traceback_of_a_failure_at_start(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"system: {{state_dir: {tmp_path / 'state'}}}\n"
        "services: {tools: {user: {lookup: 'json:no_such_function'}}}\n"  # found, not loadable
        "agents:\n"
        "  - {name: a, kind: rule, tools: [lookup], rules: [{reply: ok}]}\n",
        encoding="utf-8",
    )
    done = actoros("run", str(path), "--debug")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("actoros: error: ")


def test_run_help_explains_fresh() -> None:
    done = actoros("run", "--help")
    assert done.returncode == 0
    assert "--fresh" in done.stdout and "from scratch" in done.stdout


def test_fresh_forgets_the_finished_tasks_of_an_earlier_run(tmp_path: Path) -> None:
    config = str(fake_copy(tmp_path))
    first = actoros("run", config)
    assert first.returncode == 0, first.stderr
    fresh = actoros("run", config, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    events = [json.loads(line) for line in fresh.stderr.splitlines() if line.startswith("{")]
    forgot = [e for e in events if e.get("event") == "workload.fresh"]
    assert [e["forgotten"] for e in forgot] == [20]
    assert len(fresh.stdout.splitlines()) == 20


def test_chat_streams_an_llm_agents_reply_on_one_line(tmp_path: Path) -> None:
    done = actoros(
        "run", str(fake_copy(tmp_path)), "--chat", "faq", stdin="When do you open?\nhi\n"
    )
    assert done.returncode == 0, done.stderr
    replies = done.stdout.splitlines()
    assert len(replies) == 2 and all(line.startswith("faq: ") for line in replies)
    assert all(len(line.split()) > 2 for line in replies)  # the fake model's words


# -- the journal under stops, a second run, and files it cannot open ------------------------


def slow_workload(tmp_path: Path, tasks: int) -> Path:
    """configs/fake.yaml answering ``tasks`` questions from a file, one token per 10 ms."""
    text = fake_copy(tmp_path, workload=False).read_text(encoding="utf-8")
    text = text.replace("    max_num_seqs: 64\n", "    max_num_seqs: 64\n    token_delay: 0.01\n")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        "".join(
            json.dumps(f"What are your opening hours on day {i}?") + "\n" for i in range(tasks)
        ),
        encoding="utf-8",
    )
    path = tmp_path / "config.yaml"
    path.write_text(
        text + f"workload: {{agent: router, concurrency: 8, file: {questions}}}\n", encoding="utf-8"
    )
    return path


def finished_in_journal(tmp_path: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(tmp_path / "state" / "scheduler.sqlite") as conn:
        rows = conn.execute("SELECT id FROM tasks WHERE status IN ('done', 'failed')")
        return {row[0].removeprefix("workload:") for row in rows}


@pytest.mark.parametrize(
    "signals", [["SIGTERM"], ["SIGINT", "SIGINT"]], ids=["sigterm", "ctrl-c-twice"]
)
def test_a_stop_mid_workload_loses_no_task_and_a_rerun_answers_the_rest(
    tmp_path: Path, signals: list[str]
) -> None:
    """Before: the running tasks were journaled as finished with "the turn was cancelled",
    which the rerun served as their answer, and some finished tasks had no line."""
    config = slow_workload(tmp_path, 80)
    out = tmp_path / "first.jsonl"
    returncode, err = interrupt_after(config, out, 10, signals)
    first = {line["id"]: line for line in map(json.loads, out.read_text().splitlines())}
    assert finished_in_journal(tmp_path) == set(first)  # each finished task has its line
    assert len(first) < 80
    if signals == ["SIGTERM"]:
        assert returncode == 130, err
        assert f"{len(first)}/80 tasks done (a rerun resumes the rest)" in err

    second = tmp_path / "second.jsonl"
    done = actoros("run", str(config), "--out", str(second))
    assert done.returncode == 0, done.stderr
    after = {line["id"]: line for line in map(json.loads, second.read_text().splitlines())}
    assert len(after) == 80
    assert [line for line in after.values() if "error" in line] == []
    for task_id, line in first.items():
        assert after[task_id] == line


def test_a_second_run_of_a_state_dir_exits_2_naming_the_holder_and_sigkill_frees_it(
    tmp_path: Path,
) -> None:
    """Before: both runs did every task and corrupted each other's journal."""
    serving = fake_copy(tmp_path, workload=False)
    holder = start_serving(serving)
    try:
        second = actoros("run", str(fake_copy(tmp_path)))
        chat = actoros("run", str(serving), "--chat", "router", stdin="hello\n")
        holder.kill()  # SIGKILL: nothing of it runs, the kernel frees the lock
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    state = tmp_path / "state"
    for refused in (second, chat):
        assert refused.returncode == 2, refused.stderr
        assert refused.stdout == ""
        assert refused.stderr == (
            f"{tmp_path / 'config.yaml'}: system.state_dir: {state} is in use by another "
            f"actoros run (pid {holder.pid}): stop that run first, or give this one another "
            "system.state_dir\n"
        )
    after = actoros("run", str(fake_copy(tmp_path)))
    assert after.returncode == 0, after.stderr
    assert len(after.stdout.splitlines()) == 20


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("name", "key", "reason"),
    [
        ("scheduler.sqlite", "services.scheduler.db", "it is a directory"),
        ("threads.sqlite", "services.threads.db", "it is not an SQLite database"),
    ],
)
def test_a_journal_that_cannot_be_opened_exits_2_in_one_line_naming_it(
    tmp_path: Path, name: str, key: str, reason: str
) -> None:
    """Before: the run hung forever, deaf to Ctrl-C and SIGTERM."""
    bad = tmp_path / "state" / name
    bad.parent.mkdir()
    if reason == "it is a directory":
        bad.mkdir()
    else:
        bad.write_bytes(b"not a database, only some text that is long enough to look at\n" * 4)
    config = fake_copy(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "actoros", "run", str(config), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    if reason == "it is a directory":  # validate sees that one before anything opens
        assert line.startswith(f"{config}:") and f" {key}: {bad} is a folder" in line
    else:
        assert line.startswith(f"{config}: {key}: cannot open the SQLite file {bad}: {reason} (")
