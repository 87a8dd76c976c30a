"""``actoros validate FILE``: exit 0 with a summary, or exit 2 with one line per problem.

Run as a user would: ``python -m actoros validate ...`` in a subprocess.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent


def validate(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actoros", "validate", *args],
        capture_output=True,
        text=True,
        timeout=50,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
    )


def test_a_valid_config_exits_0_with_a_summary() -> None:
    result = validate("configs/fake.yaml", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configs/fake.yaml: ok (3 agents, 2 groups)\n"
    assert "Traceback" not in result.stderr


def test_problems_exit_2_with_one_line_each(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "inference: {engine: fake}\n"
        "agents:\n"
        "  - {name: a, kind: llm, tools: [serch]}\n"
        "  - {name: a, kind: llm}\n"
        "groups:\n"
        "  - {name: g, children: [ghost]}\n"
    )
    result = validate(str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{config}:3: agents[0].tools[0]: unknown tool 'serch' "
        "(known: calculator, clock, kv_get, kv_put)",
        f"{config}:4: agents[1].name: duplicate agent name 'a' (also agents[0])",
        f"{config}:6: groups[0].children[0]: unknown agent 'ghost' (known: a)",
    ]


def test_an_unknown_key_exits_2_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("system:\n  nmae: x\n")
    result = validate(str(config))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{config}:2: system.nmae: unknown key")


def test_a_yaml_syntax_error_is_one_line_with_its_line_number(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("system:\n  name: [x\n")
    result = validate(str(config))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{config}:3: invalid YAML: ")
    assert "Traceback" not in result.stderr


def test_a_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    result = validate(str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("actoros: error: ")
    assert "nope.yaml" in lines[0]


def test_a_directory_is_one_line_exit_2(tmp_path: Path) -> None:
    result = validate(str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{tmp_path}: is a directory, not a config file"]


def test_no_file_argument_is_a_usage_error() -> None:
    result = validate()
    assert result.returncode == 2
    assert result.stderr.startswith("actoros: error: ")


def test_validate_is_listed_in_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "actoros", "--help"], capture_output=True, text=True, timeout=50
    )
    assert result.returncode == 0
    assert "validate" in result.stdout


def test_debug_adds_the_traceback_before_the_problem_lines(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("system:\n  nmae: x\n")
    result = validate(str(config), "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"{config}:2: system.nmae: unknown key")


def test_a_file_that_is_not_utf_8_is_one_line_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_bytes("system:\n  name: café\n".encode("latin-1"))
    result = validate(str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{config}:2: not UTF-8 text (byte 0xe9 at column 12): save the config file as UTF-8"
    ]


def test_a_fifo_is_answered_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    result = validate(str(fifo))  # before: blocked in open() until the 50 s timeout
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{fifo}: is a FIFO (named pipe), not a regular file"]


def test_a_yaml_bomb_is_one_line(tmp_path: Path) -> None:
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    laughs += [
        f"{n}: &{n} [{','.join(['*' + p] * 9)}]"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    config = tmp_path / "c.yaml"
    config.write_text("\n".join(laughs) + "\n")
    result = validate(str(config))  # before: 150 MB/s of memory, then MemoryError
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{config}:6: invalid YAML: aliases expand to more than 100000 nodes (a YAML bomb?): "
        "write the values out"
    ]


def test_a_group_on_two_nodes_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "agents:\n"
        "  - {name: echo, kind: rule, rules: [{reply: hi}]}\n"
        "groups:\n"
        "  - {name: front, children: [echo]}\n"
        "cluster:\n"
        "  backend: ray\n"
        "  nodes:\n"
        "    - {name: head, groups: [front], resources: {CPU: 0}}\n"
        "    - {name: worker, groups: [front], resources: {CPU: 0}}\n"
    )
    env = None
    if importlib.util.find_spec("ray") is None:  # no cluster extra: a ray validate can find
        (tmp_path / "found" / "ray").mkdir(parents=True)
        (tmp_path / "found" / "ray" / "__init__.py").touch()
        paths = [str(tmp_path / "found"), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    result = validate(str(config), env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{config}:9: cluster.nodes[1].groups[0]: group 'front' is on two nodes, 'head' and "
        "'worker': a group runs on one node, remove it from one"
    ]
