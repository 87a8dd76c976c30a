"""What the benchmarks share (``actoros.bench._common``): the results they write and read back,
the numbers in their tables, and the child processes they start."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from actoros.bench._common import (
    Machine,
    Result,
    ResultHeader,
    Target,
    child_env,
    fmt,
    goal,
    judge,
)
from actoros.bench.agents.result import AgentsResult
from actoros.bench.core import _peers
from actoros.bench.core.result import CoreResult
from actoros.bench.gateway.result import GatewayResult
from actoros.bench.inference.result import InferenceResult

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
STRUCTS: dict[str, type[ResultHeader]] = {
    "core": CoreResult,
    "inference": InferenceResult,
    "agents": AgentsResult,
    "gateway": GatewayResult,
}


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_committed_results_decode_with_the_current_structs_and_keep_every_field(
    name: str,
) -> None:
    data = (RESULTS / f"{name}.json").read_bytes()

    result = msgspec.json.decode(data, type=STRUCTS[name])

    assert result.benchmark == name
    plain = msgspec.json.decode(data)
    again = msgspec.json.decode(msgspec.json.encode(result))
    assert {key: again[key] for key in plain} == plain  # nothing dropped or changed


@pytest.mark.parametrize(
    ("value", "spec", "shown"),
    [
        (None, ",.0f", "n/a"),
        (math.nan, "rate", "n/a"),
        (1234.4, ",.0f", "1,234"),
        (12.345, ".2f", "12.35"),
        (99.94, "rate", "99.9"),  # below 100: one decimal
        (1234.4, "rate", "1,234"),
        (0.97512, "ratio", "0.975"),  # below 10: three decimals
        (12.34, "ratio", "12.3"),
        (-0.5, "ratio", "-0.500"),
    ],
)
def test_fmt_shows_missing_values_as_na_and_scales_rates_and_ratios(
    value: float | None, spec: str, shown: str
) -> None:
    assert fmt(value, spec) == shown


def test_judge_and_goal_say_pass_miss_or_not_measured() -> None:
    targets = {"ask_ratio": Target(">=", 0.8), "tell_ratio": Target(">=", 0.7)}
    metrics = {"ask_ratio": 0.79}

    passed = judge(targets, metrics)

    assert passed == {"ask_ratio": False, "tell_ratio": None}
    result = Result(
        benchmark="test",
        version="0",
        python="3.11",
        loop="uvloop",
        machine=Machine.current(),
        timestamp="2025-01-01T00:00:00+00:00",
        quick=True,
        metrics=metrics,
        targets=targets,
        passed=passed,
    )
    assert goal(result, "ask_ratio", ".2f") == (">= 0.80", "miss")
    assert goal(result, "tell_ratio", ".2f") == (">= 0.70", "n/a")
    assert goal(result, "no_target", ".2f") == ("", "")


def test_the_peers_venv_is_looked_for_in_this_checkout() -> None:
    # `make setup` builds .venv-peers at the repository's root, beside pyproject.toml
    assert (_peers.REPO / "pyproject.toml").is_file()
    assert _peers.REPO == RESULTS.parents[1]


def test_the_peer_child_module_runs_as_python_dash_m() -> None:
    # `measure_peer` starts `python -m actoros.bench.core._peers`: the module must be there
    proc = subprocess.run(
        [sys.executable, "-m", "actoros.bench.core._peers", "--help"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Measure one peer actor library." in proc.stdout
