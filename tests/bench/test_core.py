"""Smoke test of ``actoros bench core``: it runs end to end and writes well-formed results.

Tiny sizes (``ACTOROS_BENCH_TINY=1``), one repeat, no peers; no timing assertions — the
numbers of a smoke run on a shared CI machine mean nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from actoros.bench.core import run as core
from actoros.bench.core.result import CoreResult

pytestmark = pytest.mark.timeout(120)

REQUIRED = [
    "ask_rt_per_s",
    "raw_ask_rt_per_s",
    "ask_ratio",
    "tell_msg_per_s",
    "raw_oneway_msg_per_s",
    "tell_ratio",
    "raw_pingpong_rt_per_s",
    "fanout_msgs_per_s",
    "spawn_per_s_100k",
    "bytes_per_idle_actor",
    "bytes_per_idle_actor_100k",
    "restart_p50_us",
    "restart_p99_us",
]


def test_tiny_run_writes_json_markdown_and_chart_with_every_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACTOROS_BENCH_TINY", "1")

    assert core.main(quick=True, out=tmp_path, repeats=1) == 0

    for name in ("core.json", "core.md", "core.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "core.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = msgspec.json.decode((tmp_path / "core.json").read_bytes(), type=CoreResult)
    assert result.benchmark == "core"
    assert result.quick is True
    assert result.repeats == 1
    for key in REQUIRED:
        value = result.metrics[key]
        assert math.isfinite(value) and value > 0, (key, value)
    assert set(result.targets) >= {
        "ask_ratio",
        "tell_ratio",
        "bytes_per_idle_actor",
        "spawn_1m_seconds",
        "restart_p50_us",
    }
    assert result.passed["spawn_1m_seconds"] is None  # 1M spawns only in a full run
    assert all(len(samples) >= 1 for samples in result.raw.values())
    assert result.peers == {}  # tiny runs skip the peers
    table = (tmp_path / "core.md").read_text()
    assert "| `ask_ratio` |" in table
    assert table in capsys.readouterr().out  # the table also goes to stdout
    # the documented shape, read without the schema
    plain = msgspec.json.decode((tmp_path / "core.json").read_bytes())
    assert {
        "benchmark",
        "version",
        "python",
        "loop",
        "machine",
        "timestamp",
        "quick",
        "repeats",
        "metrics",
        "targets",
        "raw",
    } <= set(plain)
    assert {"cpu_count", "platform"} <= set(plain["machine"])
    assert plain["loop"] == "uvloop"
