"""Config fuzzing: every malformed file ``actoros validate`` meets is answered in clean lines.

Each case of ``malformed.py`` (encodings, YAML bombs, deep nesting, special files, absurd
values of every numeric field, semantic holes, YAML oddities, bad workload files, seeded
mutations of the example configs) goes through ``cli.main(["validate", FILE])`` in this
process, within a deadline of its own; ``judge`` says what is not clean (an exit other than 0
or 2, a traceback, a line that is not ``FILE:LINE: PATH: problem``, ...). Hypothesis adds
config-shaped trees of random values; a few cases run as a user would, in a subprocess.
The larger run is ``benchmarks/scripts/config_fuzz.py``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actoros import cli

from .malformed import BASE, Case, all_cases, cleanup, judge

pytestmark = pytest.mark.timeout(120)

DEADLINE = 10.0
"""Seconds one case may take in this process (they take milliseconds; a hang is a bug)."""

KINDS = ("encoding", "bomb", "file", "value", "semantic", "yaml", "workload", "mutation")


class _Late(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Late


def validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str, str, float]:
    """``actoros validate path`` in this process: (status or None past DEADLINE, out, err)."""
    capsys.readouterr()
    # pytest-timeout may have its own SIGALRM timer running: borrow it, and give it back with
    # the time that is left of it
    previous = signal.signal(signal.SIGALRM, _alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, DEADLINE)
    started = time.perf_counter()
    try:
        status: int | None = cli.main(["validate", str(path)])
    except _Late:
        status = None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.perf_counter() - started
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - seconds, 0.001))
    out, err = capsys.readouterr()
    return status, out, err, seconds


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Case]]:
    root = tmp_path_factory.mktemp("fuzz")
    yield all_cases(root, seed=1, mutations=80, sparse=True)
    cleanup(root)


@pytest.mark.parametrize("kind", KINDS)
def test_every_malformed_file_is_answered_in_clean_lines(
    kind: str, cases: list[Case], capsys: pytest.CaptureFixture[str]
) -> None:
    mine = [case for case in cases if case.kind == kind]
    assert mine
    unclean = {}
    for case in mine:
        status, out, err, seconds = validate(case.path, capsys)
        wrong = judge(case, status, out, err, seconds)
        if wrong:
            unclean[case.name] = (wrong, err[-400:])
    assert not unclean, unclean


def test_every_numeric_field_is_fuzzed(cases: list[Case]) -> None:
    fields = {case.mention for case in cases if case.kind == "value"} - {None}
    assert {
        "workload.concurrency",
        "services.scheduler.workers",
        "workload.timeout",
        "agents[0].temperature",
        "agents[0].max_tokens",
    } <= fields


@pytest.mark.parametrize("name", ["bomb/billion-laughs", "file/fifo", "encoding/latin-1"])
def test_the_worst_cases_are_clean_as_a_user_runs_them(name: str, cases: list[Case]) -> None:
    case = next(case for case in cases if case.name == name)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "actoros", "validate", str(case.path)],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: no answer within 30 s")
    seconds = time.perf_counter() - started
    assert judge(case, done.returncode, done.stdout, done.stderr, seconds) == []


# -- hypothesis: config-shaped trees of random values ------------------------------------------

KEYS = sorted(
    {key for key in yaml.safe_load(BASE)}
    | {
        "system",
        "services",
        "gateway",
        "topics",
        "name",
        "kind",
        "rules",
        "forward",
        "match",
        "contains",
        "reply",
        "tool",
        "args",
        "submit",
        "tools",
        "permissions",
        "agents",
        "children",
        "state_dir",
        "workers",
        "concurrency",
        "timeout",
        "file",
        "input",
        "priority",
        "user",
        "scheduler",
        "threads",
        "engine",
        "port",
        "tokens",
        "backoff",
        "mailbox",
        "<<",
    }
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["fake", "rule", "llm", "router", "helper", "*", "calculator", "x:y"]),
)

TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=30,
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.dictionaries(st.sampled_from(KEYS), TREES, max_size=6))
def test_random_config_trees_are_answered_in_clean_lines(
    data: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    case = Case("hypothesis", "hypothesis", path, expect="any")
    status, out, err, seconds = validate(path, capsys)
    assert judge(case, status, out, err, seconds) == []
