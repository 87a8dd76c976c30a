"""Workload files: read like config files (a regular UTF-8 file within a size bound), one
problem line per bad task line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actoros.config import ConfigError, load_config, load_workload_file
from actoros.config.workload import MAX_WORKLOAD_BYTES

pytestmark = pytest.mark.timeout(10)


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_workload_file(path)
    return caught.value.lines()


def test_a_latin_1_workload_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_bytes('{"input": "a"}\n{"input": "café"}\n'.encode("latin-1"))
    assert problems(path) == [
        f"{path}:2: not UTF-8 text (byte 0xe9 at column 15): save the workload file as UTF-8"
    ]


def test_a_fifo_workload_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    os.mkfifo(path)
    assert problems(path) == [f"{path}: is a FIFO (named pipe), not a regular file"]


def test_a_workload_over_the_bound_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"input": "a"}\n')
    os.truncate(path, MAX_WORKLOAD_BYTES + 1)
    assert problems(path) == [f"{path}: is more than 64 MiB; a workload file may be at most 64 MiB"]


def test_a_task_nested_too_deeply_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"input": "a"}\n{"input": ' + "[" * 5000 + "]" * 5000 + "}\n")
    assert problems(path) == [f"{path}:2: nested too deeply: flatten the task"]


def test_a_priority_out_of_range_states_the_range(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"input": "a", "priority": 99999999999999999999}\n')
    assert problems(path) == [
        f"{path}:1: priority: 1e+20 is out of range (allowed: -1000000000 to 1000000000)"
    ]


def test_a_line_separator_inside_a_task_does_not_split_it(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text('{"input": "one\u2028two"}\n{"input": "three"}\n', encoding="utf-8")
    assert [task.input for task in load_workload_file(path)] == ["one\u2028two", "three"]


def test_a_bad_workload_file_is_a_problem_of_the_config(tmp_path: Path) -> None:
    (tmp_path / "w.jsonl").write_bytes(b"\xff\xfe{\x00")
    config = tmp_path / "c.yaml"
    config.write_text(
        "agents: [{name: a, kind: rule, rules: [{reply: x}]}]\n"
        "workload: {agent: a, file: w.jsonl}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert caught.value.lines() == [
        f"{config}:2: workload.file: {tmp_path / 'w.jsonl'}: is UTF-16 text: save it as UTF-8"
    ]
