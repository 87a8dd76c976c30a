"""``actoros eval CONFIG --labels FILE``: run as a user would (``python -m actoros eval``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "configs" / "fake.yaml"

LABELS = """\
about: the fake shop
tasks:
  q01: {facts: ["^Hello! Ask me about your order"], tools: []}
  q02: {facts: ["opening hours are 9 to 5"], tools: []}
  q03: {facts: ["shipped"], tools: [kv_get], arguments: {kv_get: {key: "order:1042"}}}
"""


def fake_copy(tmp_path: Path) -> Path:
    """configs/fake.yaml with its state dir in ``tmp_path`` (which eval must not create)."""
    text = FAKE.read_text(encoding="utf-8").replace(
        "state_dir: ../.actoros/fake", f"state_dir: {tmp_path / 'state'}"
    )
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def labels(tmp_path: Path, text: str = LABELS) -> Path:
    path = tmp_path / "labels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def actoros(*args: object, timeout: float = 50) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actoros", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(240)  # two systems start and stop, one per mode
def test_a_run_on_the_fake_engine_writes_json_markdown_and_png(tmp_path: Path) -> None:
    out = tmp_path / "results"
    config = fake_copy(tmp_path)
    done = actoros("eval", config, "--labels", labels(tmp_path), "--out", out, timeout=230)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(out / f"eval.{ext}") for ext in ("json", "md", "png")]
    assert not (tmp_path / "state").exists()  # the config's own journal is untouched
    report = json.loads((out / "eval.json").read_text(encoding="utf-8"))
    [system] = report["systems"]
    assert system["system"] == "shop" and system["about"] == "the fake shop"
    assert [mode["constrain"] for mode in system["modes"]] == [True, False]  # both, by default
    for mode in system["modes"]:
        assert mode["model"] == "fake"
        assert mode["summary"]["tasks"] == 3 and mode["summary"]["tool_tasks"] == 1
        assert len(mode["tasks"]) == 20  # every task runs; three are scored
        hello = next(t for t in mode["tasks"] if t["record"]["id"] == "q01")
        assert hello["score"]["success"] is True
    # constrained, the fake engine writes the orders agent's tool calls: they are recorded
    on = system["modes"][0]["tasks"]
    assert any(use["tool"] == "kv_get" for t in on for use in t["record"]["tools"])
    assert report["command"].startswith("actoros eval ")
    markdown = (out / "eval.md").read_text(encoding="utf-8")
    assert "| constraints off | fake |" in markdown and "| constraints on | fake |" in markdown
    assert "| q03 | Where is my order 1042? | yes |" in markdown
    assert (out / "eval.png").read_bytes().startswith(b"\x89PNG")


def test_check_validates_without_running(tmp_path: Path) -> None:
    config = fake_copy(tmp_path)
    done = actoros("eval", config, "--labels", labels(tmp_path), "--check", "--out", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'labels.yaml'}: ok (3 labelled tasks of {config})\n"
    assert not (tmp_path / "r").exists() and not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "tasks:\n  q99: {facts: [x]}\n",
            "labels.yaml: tasks.q99: the workload has no task 'q99'",
        ),
        (
            "tasks:\n  q01: {facts: ['(']}\n",
            "labels.yaml: tasks.q01.facts[0]: bad regex '(': missing ), unterminated subpattern "
            "at position 0",
        ),
        (
            "tasks:\n  q01: {tools: [rm]}\n",
            "labels.yaml: tasks.q01.tools: no agent of the config may call 'rm'",
        ),
        ("tasks:\n  q01: {expect: [x]}\n", "labels.yaml: Object contains unknown field `expect`"),
        ("tasks: [\n", "labels.yaml:2: not YAML: expected the node content"),
    ],
)
def test_a_bad_labels_file_is_one_line_and_exit_2(tmp_path: Path, text: str, line: str) -> None:
    done = actoros("eval", fake_copy(tmp_path), "--labels", labels(tmp_path, text))
    assert done.returncode == 2
    [said] = done.stderr.splitlines()
    assert line in said, said
    assert done.stdout == ""


def test_a_missing_labels_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = actoros("eval", fake_copy(tmp_path), "--labels", tmp_path / "none.yaml")
    assert done.returncode == 2
    assert done.stderr == f"actoros: error: labels file {tmp_path / 'none.yaml'}: no such file\n"


def test_one_labels_file_per_config(tmp_path: Path) -> None:
    config = fake_copy(tmp_path)
    done = actoros("eval", config, config, "--labels", labels(tmp_path))
    assert done.returncode == 2
    assert done.stderr == (
        "actoros: error: 2 CONFIG(s) and 1 --labels: give one --labels FILE per CONFIG, "
        "in the same order\n"
    )


def test_a_config_without_a_workload_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"system: {{state_dir: {tmp_path / 's'}}}\n", encoding="utf-8")
    done = actoros("eval", config, "--labels", labels(tmp_path))
    assert done.returncode == 2
    assert "has no workload: actoros eval runs a config's tasks" in done.stderr


def test_a_bad_config_is_reported_as_validate_reports_it(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("system: {nmae: x}\n", encoding="utf-8")
    done = actoros("eval", config, "--labels", labels(tmp_path))
    assert done.returncode == 2
    assert done.stderr == actoros("validate", config).stderr != ""


def test_a_config_the_app_cannot_assemble_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"system: {{state_dir: {tmp_path / 'state'}}}\n"
        "services: {tools: {user: {lookup: no_such_module_here:lookup}}}\n"
        "agents: [{name: a, kind: rule, tools: [lookup], rules: [{reply: ok}]}]\n"
        "workload: {agent: a, tasks: [{id: q01, input: hi}]}\n",
        encoding="utf-8",
    )
    done = actoros("eval", config, "--labels", labels(tmp_path, "tasks: {q01: {facts: [ok]}}\n"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"{config}:2: services.tools.user.lookup: user tool 'no_such_module_here:lookup': no "
        "module named 'no_such_module_here' (install it, or run from its folder)"
    )
