"""``actoros bench cluster``: its layouts, ratios, recovery statistics and report, then (marked
``ray``) one ``--quick`` run end to end on a real local Ray cluster.

No timing assertions: the numbers of a run on a shared machine mean nothing to a test; the
end-to-end run checks that every metric was measured and every killed node came back.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from actoros.bench._common import BenchError, Machine, judge
from actoros.bench.cluster import _actors, _ray
from actoros.bench.cluster import run as cluster
from actoros.bench.cluster.report import chart, markdown
from actoros.bench.cluster.result import (
    LAYOUTS,
    TARGETS,
    ClusterResult,
    Kill,
    medians,
    ratios,
    recovery_metrics,
)
from actoros.cli import main as cli_main

PNG = b"\x89PNG\r\n\x1a\n"

# -- the layouts ---------------------------------------------------------------------------------


def test_every_layout_spreads_over_as_many_workers_each_a_group_of_its_node() -> None:
    sizes = cluster.QUICK
    groups = {
        spec.name: {group.name for group in spec.groups} for spec in cluster.node_specs(sizes)
    }
    for layout, (nodes, _) in LAYOUTS.items():
        paths = cluster.layout_paths(layout, sizes)
        assert len(paths) == 2 * sizes.workers_per_node, layout
        assert len(set(paths)) == len(paths)
        for node in nodes:  # an even share on every node of the layout
            names = [p[1:] for p in paths if p[1:] in groups[node]]
            assert len(names) == len(paths) // len(nodes), (layout, node)
        assert all(any(p[1:] in groups[n] for n in nodes) for p in paths)


def test_the_head_hosts_the_measuring_actors_and_b_the_measured_ones() -> None:
    a, b, c = cluster.node_specs(cluster.QUICK)
    assert (a.name, b.name, c.name) == ("a", "b", "c")
    assert {g.name: g.target for g in a.groups}.items() >= {
        "probe": _actors.Prober,
        "spread": _actors.Spreader,
    }.items()
    assert {g.name: g.target for g in b.groups}.items() >= {
        "echo": _actors.Echo,
        "counter": _actors.Counter,
    }.items()
    assert a.resources == b.resources == {"CPU": 1.0}  # one Ray node each


def test_the_cpu_job_is_deterministic_and_depends_on_its_seq() -> None:
    assert _actors.cpu_job(3, 1000) == _actors.cpu_job(3, 1000)
    assert _actors.cpu_job(3, 1000) != _actors.cpu_job(4, 1000)


# -- ratios and recovery -------------------------------------------------------------------------


def test_ratios_pair_repeats_for_the_transport_and_the_scaling() -> None:
    raw = {
        "ask_rt_per_s": [600.0, 700.0],
        "ray_call_rt_per_s": [500.0, 0.0],
        "ray_ping_rt_per_s": [600.0, 700.0],
        "tell_msg_per_s": [100_000.0, 120_000.0],
        "one_node_tasks_per_s": [200.0, 180.0],
        "two_nodes_tasks_per_s": [300.0, 360.0],
    }
    got = ratios(raw)

    assert got["ask_vs_ray_call"][0] == pytest.approx(1.2)
    assert math.isnan(got["ask_vs_ray_call"][1])  # no division by zero
    assert got["ask_vs_ray_ping"] == [1.0, 1.0]
    assert got["tell_vs_ray_ping"] == pytest.approx([100_000 / 600, 120_000 / 700])
    assert got["two_vs_one"] == pytest.approx([1.5, 2.0])
    assert "workers_two_vs_one" not in got  # not measured
    assert medians({**raw, **got})["two_vs_one"] == pytest.approx(1.75)


def test_recovery_percentiles_are_over_the_kills_that_came_back() -> None:
    kills = [Kill(recovery_s=s, failed_polls=3, new_pid=True) for s in (0.9, 0.5, 0.7, 0.6, 2.0)]
    kills.append(Kill(recovery_s=None, failed_polls=900, new_pid=False))
    got = recovery_metrics(kills)

    assert got["kills"] == 6 and got["unrecovered"] == 1
    assert got["recovery_p50_s"] == pytest.approx(0.7)
    assert got["recovery_p90_s"] == pytest.approx(1.56)
    assert got["recovery_max_s"] == 2.0
    assert recovery_metrics([]) == {}


def test_cores_split_the_machines_cpu_among_the_nodes_and_the_rest() -> None:
    before = {"a": 1.0, "b": 2.0, "machine": 10.0}
    after = {"a": 2.0, "b": 2.5, "machine": 12.0}
    assert cluster.cores(before, after, 1.0) == pytest.approx({"a": 1.0, "b": 0.5, "other": 0.5})
    ticks = {"a": 2.0, "b": 3.0, "machine": 11.98}  # counters ticking apart: never below 0
    assert cluster.cores(before, ticks, 1.0)["other"] == 0.0


def test_the_targets_are_the_issues() -> None:
    assert TARGETS["ask_vs_ray_call"].met(1.0) is True
    assert TARGETS["tell_vs_ray_call"].met(99.0) is False
    assert TARGETS["two_vs_one"].met(1.69) is False


def test_a_starved_second_node_gets_a_note_that_says_why() -> None:
    metrics = {"two_nodes_share_b": 0.2, "task_ms": 4.9, "workers_two_vs_one": 1.8}
    (note,) = cluster._scaling_notes(metrics)
    assert "node b ran 20% of the tasks" in note and "1.80× one" in note
    assert cluster._scaling_notes({**metrics, "two_nodes_share_b": 0.5}) == []


def test_without_ray_the_bench_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import actoros.cluster

    monkeypatch.setattr(actoros.cluster, "have_ray", lambda: False)
    with pytest.raises(BenchError, match="cluster needs Ray"), _ray.local_ray():
        pass


# -- the report ----------------------------------------------------------------------------------


def result() -> ClusterResult:
    raw: dict[str, list[float]] = {
        "ask_rt_per_s": [650.0, 660.0, 640.0],
        "ray_call_rt_per_s": [600.0, 610.0, 640.0],
        "ray_ping_rt_per_s": [800.0, 820.0, 790.0],
        "tell_msg_per_s": [110_000.0, 150_000.0, 130_000.0],
        "task_ms": [4.9, 5.0, 4.8],
        "two_nodes_share_b": [0.2, 0.25, 0.3],
    }
    for i, layout in enumerate(LAYOUTS):
        raw[f"{layout}_tasks_per_s"] = [200.0 + 50 * i] * 3
        for who in ("a", "b", "c", "other"):
            raw[f"{layout}_cores_{who}"] = [0.5] * 3
    raw.update(ratios(raw))
    kills = [Kill(recovery_s=s, failed_polls=40, new_pid=True) for s in (0.7, 0.66, 1.03)]
    metrics = {**medians(raw), **recovery_metrics(kills)}
    return ClusterResult(
        version="0",
        python="3.11",
        loop="uvloop",
        machine=Machine.current(),
        timestamp="2025-01-01T00:00:00+00:00",
        quick=False,
        repeats=3,
        metrics=metrics,
        targets=TARGETS,
        passed=judge(TARGETS, metrics),
        raw=raw,
        notes=["a note"],
        ray_version="2.60.0",
        sizes=cluster.FULL,
        heartbeat=1.0,
        kills=kills,
    )


def test_the_markdown_has_every_section_with_verdicts_cores_and_kills(tmp_path: Path) -> None:
    md = markdown(result())

    for title in ("## Transport", "## CPU-bound work", "## Node loss", "## Notes"):
        assert title in md
    row = next(line for line in md.splitlines() if line.startswith("| `ask_vs_ray_call` |"))
    assert "| 1.082 | >= 1.000 | pass |" in row
    row = next(line for line in md.splitlines() if line.startswith("| `two_vs_one` |"))
    assert "| 1.250 | >= 1.700 | miss |" in row
    assert (
        "| `two_nodes_share_b` | share of the tasks node b ran in the 2-node layout | 25% |" in md
    )
    assert "| 1 node: the driver and every worker in node a | 200.0 | 0.50 | 0.50 | 0.50 " in md
    assert "| 3 | 1.030 | 40 | yes |" in md
    assert "Ray 2.60.0" in md and "- a note" in md
    chart(result(), tmp_path / "cluster.png")
    assert (tmp_path / "cluster.png").read_bytes().startswith(PNG)


def test_a_target_not_measured_still_has_its_row() -> None:
    r = result()
    partial = msgspec.structs.replace(
        r, metrics={k: v for k, v in r.metrics.items() if k != "two_vs_one"}
    )
    assert "| `two_vs_one` | 2 nodes / 1 node (median of per-repeat ratios) | not measured |" in (
        markdown(partial)
    )


def test_the_result_round_trips_through_json() -> None:
    r = result()
    back = msgspec.json.decode(msgspec.json.encode(r), type=ClusterResult)
    assert back.metrics == r.metrics and back.kills == r.kills and back.sizes == r.sizes


def test_repeats_below_one_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "cluster", "--repeats", "0"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--repeats" in line and "actoros bench cluster --help" in line


# -- end to end ----------------------------------------------------------------------------------

REQUIRED = [
    "ask_rt_per_s",
    "tell_msg_per_s",
    "ray_ping_rt_per_s",
    "ray_call_rt_per_s",
    "ask_vs_ray_call",
    "ask_vs_ray_ping",
    "tell_vs_ray_call",
    "tell_vs_ray_ping",
    *(f"{layout}_tasks_per_s" for layout in LAYOUTS),
    *(f"{layout}_cores_{node}" for layout, (nodes, _) in LAYOUTS.items() for node in nodes),
    "two_vs_one",
    "workers_two_vs_one",
    "task_ms",
    "recovery_p50_s",
    "recovery_p90_s",
    "recovery_max_s",
]


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_a_quick_run_measures_everything_and_every_killed_node_comes_back(
    tmp_path: Path,
) -> None:
    pytest.importorskip("ray", reason="the cluster extra is not installed (make setup)")
    # its own process: the benchmark starts its own Ray cluster, and this test process may
    # be connected to the cluster tests' one already
    run = subprocess.run(
        [sys.executable, "-m", "actoros", "bench", "cluster", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    for name in ("cluster.json", "cluster.md", "cluster.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "cluster.png").read_bytes().startswith(PNG)
    r = msgspec.json.decode((tmp_path / "cluster.json").read_bytes(), type=ClusterResult)
    assert (r.benchmark, r.quick, r.repeats, r.sizes) == ("cluster", True, 1, cluster.QUICK)
    for key in REQUIRED:
        value = r.metrics[key]
        assert math.isfinite(value) and value > 0, (key, value)
    assert 0 <= r.metrics["two_nodes_share_b"] <= 1
    assert len(r.kills) == cluster.QUICK.kills
    assert all(k.recovery_s is not None and k.new_pid for k in r.kills), r.kills
    assert r.metrics["unrecovered"] == 0
    assert set(r.passed) == set(TARGETS)
    assert not any("checksums differ" in note for note in r.notes)
    assert r.loop in ("uvloop", "asyncio")
    table = (tmp_path / "cluster.md").read_text()
    assert table in run.stdout  # the table also goes to stdout
