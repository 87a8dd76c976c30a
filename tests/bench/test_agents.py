"""Smoke test of ``actoros bench agents`` on the fake engine: no vLLM needed.

Tiny sizes (``ACTOROS_BENCH_TINY=1``); no timing assertions — the numbers of a smoke run on a
shared CI machine mean nothing. The run must still finish every task of the rule and fake-LLM
workloads, report every documented metric and write well-formed JSON, Markdown and PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from actoros import ActorSystem
from actoros.agents import AgentReply
from actoros.bench.agents import run as agents
from actoros.bench.agents._workloads import rule_task, spawn_rule_agents
from actoros.bench.agents.result import AgentsResult
from actoros.cli import main as cli_main

pytestmark = pytest.mark.timeout(120)

METRICS = [
    "rule_tasks_per_s",
    "rule_latency_p50_ms",
    "rule_latency_p99_ms",
    "llm_fake_tasks_per_s",
    "llm_fake_latency_p50_ms",
    "llm_fake_latency_p99_ms",
]


def check_results(out: Path) -> AgentsResult:
    for name in ("agents.json", "agents.md", "agents.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "agents.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = msgspec.json.decode((out / "agents.json").read_bytes(), type=AgentsResult)
    for key in METRICS:
        assert math.isfinite(result.metrics[key]) and result.metrics[key] > 0, key
    assert result.metrics["rule_failed"] == 0
    assert result.metrics["llm_fake_failed"] == 0
    assert result.metrics["llm_fake_steps_per_task"] >= 1
    assert "llm_vllm_tasks_per_s" not in result.metrics
    assert result.engines == ["rule", "fake"]
    for key in ("rule_tasks_per_s", "llm_fake_tasks_per_s"):  # one value per timed batch
        assert len(result.raw[key]) == result.repeats == agents.REPEATS
    return result


def test_fake_engine_run_finishes_every_task_and_writes_json_markdown_and_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACTOROS_BENCH_TINY", "1")

    assert agents.main(quick=False, out=tmp_path, engine="fake") == 0

    result = check_results(tmp_path)
    assert result.benchmark == "agents" and result.sizes == agents.TINY
    assert any("--engine fake" in note for note in result.notes)  # says why vLLM was skipped
    table = (tmp_path / "agents.md").read_text()
    assert "| `rule_tasks_per_s` |" in table and "| `llm_fake_latency_p99_ms` |" in table
    assert table in capsys.readouterr().out  # the table also goes to stdout
    assert msgspec.json.decode((tmp_path / "agents.json").read_bytes())["loop"] == "uvloop"


def test_cli_quick_skips_vllm_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTOROS_BENCH_TINY", "1")

    assert cli_main(["bench", "agents", "--quick", "--out", str(tmp_path)]) == 0

    result = check_results(tmp_path)
    assert result.quick is True
    assert any("skipped under --quick" in note for note in result.notes)


def test_cli_refuses_an_out_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "results"
    file.write_text("")
    assert cli_main(["bench", "agents", "--quick", "--out", str(file)]) == 2
    assert "not a directory" in capsys.readouterr().err


async def test_rule_workload_calls_the_calculator_through_the_tool_service() -> None:
    async with ActorSystem("test-bench-agents") as system:
        refs = await spawn_rule_agents(system, agents=4, groups=2)
        assert [r.path for r in refs] == [
            "/rules-0/rule-0",
            "/rules-0/rule-1",
            "/rules-1/rule-2",
            "/rules-1/rule-3",
        ]

        calc = await refs[0].ask(rule_task(0))  # "(0 + 7) * 3 / 2"
        reply = await refs[1].ask(rule_task(1))

    assert isinstance(calc, AgentReply) and calc.data == {"tool": "calculator", "value": 10.5}
    assert isinstance(reply, AgentReply) and reply.text == "status of order 1: noted by rule-1"


async def test_the_prefix_series_alternates_modes_on_agents_sharing_one_system_prompt() -> None:
    from actoros.bench.agents._prefix import PrefixSizes, prefix_series
    from actoros.inference.fake_engine import FakeEngine

    built: list[bool] = []
    engines: list[FakeEngine] = []

    def engine(cache_on: bool) -> FakeEngine:
        built.append(cache_on)
        engines.append(FakeEngine(eos_after=(4, 4)))
        return engines[-1]

    metrics: dict[str, float] = {}
    raw: dict[str, list[float]] = {}
    notes: list[str] = []
    sizes = PrefixSizes(agents=3, rounds=2, max_tokens=4)
    info = await prefix_series(sizes, engine, 2048, 30.0, metrics, raw, notes)

    assert built == [False, True]
    for mode in ("on", "off"):
        assert metrics[f"prefix_{mode}_failed"] == 0
        assert metrics[f"prefix_{mode}_ttft_p50_ms"] > 0
        assert len(raw[f"prefix_{mode}_output_tok_per_s"]) == sizes.rounds
        assert len(raw[f"prefix_{mode}_ttft_ms"]) == sizes.rounds * sizes.agents
        # a warm-up round and the timed rounds, one request per agent each
        assert len(engines[built.index(mode == "on")].generated) == (1 + 2) * 3
    assert info["system_prompt_tokens"] > 0
    # the fake engine counts no prefix-cache hits: said, and no hit rate made up
    assert "prefix_on_hit_rate" not in metrics
    assert any("do not count prefix-cache hits" in n for n in notes)


async def test_the_prefix_hit_rate_is_each_engines_counters_growth_over_its_rounds() -> None:
    from actoros.bench.agents._prefix import PrefixSizes, prefix_series
    from actoros.inference.fake_engine import FakeEngine

    reads: dict[bool, int] = {True: 0, False: 0}
    engines: dict[int, bool] = {}

    def engine(cache_on: bool) -> FakeEngine:
        built = FakeEngine(eos_after=(4, 4))
        engines[id(built)] = cache_on
        return built

    def counters(built: FakeEngine) -> tuple[float, float]:  # a read: 100 queries, 60|0 hits
        cache_on = engines[id(built)]
        reads[cache_on] += 1
        return 100.0 * reads[cache_on], (60.0 if cache_on else 0.0) * reads[cache_on]

    metrics: dict[str, float] = {}
    sizes = PrefixSizes(agents=2, rounds=3, max_tokens=4)
    await prefix_series(sizes, engine, 2048, 30.0, metrics, {}, [], counters)
    assert reads == {True: 2 * sizes.rounds, False: 2 * sizes.rounds}  # around every round
    assert metrics["prefix_on_hit_rate"] == pytest.approx(0.6)
    assert metrics["prefix_off_hit_rate"] == 0.0
