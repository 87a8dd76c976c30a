"""``actoros bench gateway``: its statistics and report, and a ``--quick`` run end to end.

The quick run drives a real gateway (``start_system`` with a ``gateway:`` section, fake engine)
from the ``openai`` client in its own process. No timing assertions — numbers of a smoke run
on a shared machine mean nothing; the run must still answer every request, report every
series at every level and write well-formed JSON, Markdown and PNG. The SmolLM2 part is
``-m vllm``.
"""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest

from actoros.bench._common import BenchError, Machine, vllm_missing
from actoros.bench.gateway import run as gateway
from actoros.bench.gateway._sweep import AGENT
from actoros.bench.gateway.report import chart, markdown
from actoros.bench.gateway.result import (
    EngineInfo,
    GatewayResult,
    Workload,
    medians,
    ratio_key,
    ratio_targets,
)
from actoros.cli import main as cli_main

pytestmark = pytest.mark.timeout(180)

LEVELS = (1, 4)
PNG = b"\x89PNG\r\n\x1a\n"


def workload(series: tuple[str, ...] = ("raw_stream", "actor_stream")) -> Workload:
    return Workload(
        concurrency=LEVELS,
        series=series,
        waves=2,
        min_requests=4,
        prompt="Write a story.",
        output_tokens=8,
    )


def result(metrics: dict[str, float], workloads: dict[str, Workload]) -> GatewayResult:
    targets = ratio_targets(LEVELS)
    info = {
        e: EngineInfo(
            kind=e, model=e, agent="assistant", version="", settings={}, start_seconds=1.0
        )
        for e in workloads
    }
    return GatewayResult(
        version="0",
        python="3.11",
        loop="uvloop",
        machine=Machine.current(),
        timestamp="2025-01-01T00:00:00+00:00",
        quick=False,
        repeats=3,
        client={"library": "openai (AsyncOpenAI)", "openai": "1"},
        engines=info,
        workloads=workloads,
        metrics=metrics,
        targets=targets,
        passed={k: t.met(metrics.get(k, math.nan)) for k, t in targets.items()},
        raw={},
    )


# -- statistics and targets --------------------------------------------------------------------


def test_requests_per_level_are_waves_of_the_concurrency_with_a_floor() -> None:
    w = workload()
    assert [w.requests(c) for c in (1, 2, 4, 16)] == [4, 4, 8, 32]


def test_metrics_are_medians_of_repeats_and_the_ratio_headline_is_the_median_of_levels() -> None:
    raw = {
        "vllm_raw_stream_tok_per_s_c1": [10.0, 30.0, 20.0],
        ratio_key("vllm", 1): [0.90, 0.99, 0.97],
        ratio_key("vllm", 4): [0.96, 0.94, 0.98],
        "fake_raw_stream_req_per_s_c4": [],  # a series that never ran has no metric
    }
    metrics = medians(raw, {"vllm": workload()})

    assert metrics["vllm_raw_stream_tok_per_s_c1"] == 20.0
    assert metrics[ratio_key("vllm", 1)] == 0.97
    assert metrics[ratio_key("vllm", 4)] == 0.96
    assert metrics[ratio_key("vllm")] == pytest.approx(0.965)
    assert "fake_raw_stream_req_per_s_c4" not in metrics


def test_the_ratio_target_applies_at_each_level_and_to_the_median() -> None:
    targets = ratio_targets((1, 4, 16))

    assert set(targets) == {"vllm_gateway_vs_actor", *(ratio_key("vllm", c) for c in (1, 4, 16))}
    assert all(t.op == ">=" and t.value == 0.95 for t in targets.values())
    assert targets[ratio_key("vllm", 4)].met(0.95) is True
    assert targets[ratio_key("vllm", 4)].met(0.949) is False
    assert targets[ratio_key("vllm", 4)].met(math.nan) is None


def test_token_notes_check_equal_prompts_and_answers_that_reach_max_tokens() -> None:
    w = workload()
    full = {
        f"vllm_{s}_{t}_c{c}": 8.0
        for s in w.series
        for c in LEVELS
        for t in ("prompt_tokens", "output_tokens")
    }
    short = {**full, "vllm_raw_stream_output_tokens_c4": 6.5, "vllm_raw_stream_prompt_tokens_c1": 9}

    same, reached = gateway._token_notes(full, {"vllm": w})
    assert same == "vllm: the raw and actor paths' prompts were 8 tokens each"
    assert "every request" in reached
    differ, ended = gateway._token_notes(short, {"vllm": w})
    assert "prompts differ" in differ and "`vllm_raw_stream_prompt_tokens_c1` 9.0" in differ
    assert (
        "ended before max_tokens=8" in ended and "`vllm_raw_stream_output_tokens_c4` 6.5" in ended
    )


# -- the report --------------------------------------------------------------------------------


def test_markdown_reports_pass_or_miss_per_level_and_the_median(tmp_path: Path) -> None:
    metrics = {
        ratio_key("vllm", 1): 0.99,
        ratio_key("vllm", 4): 0.90,
        ratio_key("vllm"): 0.945,
        "vllm_raw_stream_tok_per_s_c1": 30.0,
        "vllm_actor_stream_tok_per_s_c1": 30.3,
        "vllm_raw_stream_req_per_s_c4": 1.5,
        "vllm_raw_stream_e2el_ms_p99_c4": 2500.0,
    }
    res = result(metrics, {"vllm": workload()})

    table = markdown(res)

    assert "| 1 | 30.0 | 30.3 | 0.990 | >= 0.950 | pass |" in table
    assert "| 4 | n/a | n/a | 0.900 | >= 0.950 | miss |" in table
    assert "| median | | | 0.945 | >= 0.950 | miss |" in table
    assert "## SmolLM2 (vLLM): by concurrency" in table
    assert "| 4 | raw model, stream | 8 | 1.50 | n/a | n/a | 2500.00 |" in table
    chart(res, tmp_path / "gateway.png")
    assert (tmp_path / "gateway.png").read_bytes()[:8] == PNG


def test_a_fake_only_report_says_smollm2_was_not_measured(tmp_path: Path) -> None:
    w = workload(gateway.FAKE_SERIES)
    metrics = {f"fake_{s}_req_per_s_c{c}": 100.0 * c for s in w.series for c in LEVELS}
    res = result(metrics, {"fake": w})

    table = markdown(res)

    assert "SmolLM2 (vLLM) was not measured" in table
    assert "| vllm_gateway_vs_actor" not in table and "| median |" not in table
    assert "| 4 | agent, one response | 8 | 400.00 | n/a |" in table  # no usage given
    chart(res, tmp_path / "gateway.png")
    assert (tmp_path / "gateway.png").read_bytes()[:8] == PNG


# -- choosing the engines ----------------------------------------------------------------------


def test_quick_measures_the_fake_engine_only_and_says_so() -> None:
    notes: list[str] = []
    assert gateway._engines("both", True, None, notes) == ["fake"]
    assert notes == ["SmolLM2 (vLLM): skipped under --quick"]


def test_a_missing_model_skips_smollm2_under_both_and_is_an_error_under_vllm(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "no-such-model")
    notes: list[str] = []

    assert gateway._engines("both", False, missing, notes) == ["fake"]
    assert len(notes) == 1 and notes[0].startswith("SmolLM2 (vLLM): skipped,")
    with pytest.raises(BenchError, match="--engine vllm"):
        gateway._engines("vllm", False, missing, [])


def test_cli_refuses_an_out_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "results"
    file.write_text("")
    assert cli_main(["bench", "gateway", "--quick", "--out", str(file)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_cli_engine_vllm_without_the_model_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "gateway", "--engine", "vllm", "--model", str(tmp_path / "nothing")]
    assert cli_main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("actoros: error: --engine vllm:") and "\n" not in err


# -- end to end --------------------------------------------------------------------------------


def check_series(res: GatewayResult, engine: str) -> None:
    w = res.workloads[engine]
    m = res.metrics
    for c in w.concurrency:
        for series in w.series:
            key = f"{engine}_{series}"
            assert m[f"{key}_req_per_s_c{c}"] > 0, (key, c)
            assert m[f"{key}_failed_c{c}"] == 0, (key, c)
            assert m[f"{key}_e2el_ms_p99_c{c}"] >= m[f"{key}_e2el_ms_p50_c{c}"] > 0
            assert len(res.raw[f"{key}_req_per_s_c{c}"]) == res.repeats
            if "_stream" in series:
                assert m[f"{key}_ttft_ms_p50_c{c}"] > 0, (key, c)
            # this process's CPU per output token (the gateway and actors are in it)
            assert m[f"{key}_cpu_us_per_tok_c{c}"] > 0, (key, c)
            if not series.startswith("agent"):  # the gateway reports no usage for agents
                assert m[f"{key}_output_tokens_c{c}"] == w.output_tokens, (key, c)
            if not series.startswith("actor"):  # measured in the load generator's process
                assert m[f"{key}_client_cpu_c{c}"] > 0
        assert math.isfinite(m[ratio_key(engine, c)]) and m[ratio_key(engine, c)] > 0


def test_cli_quick_drives_the_gateway_on_the_fake_engine_and_writes_the_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["bench", "gateway", "--quick", "--out", str(tmp_path)]) == 0

    for name in ("gateway.json", "gateway.md", "gateway.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "gateway.png").read_bytes()[:8] == PNG
    res = msgspec.json.decode((tmp_path / "gateway.json").read_bytes(), type=GatewayResult)
    assert res.benchmark == "gateway" and res.quick and res.loop == "uvloop"
    assert list(res.engines) == ["fake"] and res.workloads["fake"] == gateway.QUICK["fake"]
    assert res.engines["fake"].model == "fake" and res.engines["fake"].agent == AGENT
    assert res.repeats == gateway.QUICK_REPEATS and res.client["openai"]
    check_series(res, "fake")
    assert all(v is None for v in res.passed.values())  # SmolLM2 not measured
    assert any("every request of the raw and actor paths" in n for n in res.notes)
    assert "fake: the raw and actor paths' prompts were" in " ".join(res.notes)
    table = (tmp_path / "gateway.md").read_text()
    assert table in capsys.readouterr().out  # the table also goes to stdout


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smollm2_gateway_and_actor_alone_side_by_side(tmp_path: Path) -> None:
    pytest.importorskip("vllm", reason="needs vLLM: pip install -e '.[cpu]'")
    if vllm_missing(None) is not None:
        pytest.skip(vllm_missing(None) or "")

    assert gateway.main(quick=False, out=tmp_path, engine="vllm", repeats=1, concurrency=(4,)) == 0

    res = msgspec.json.decode((tmp_path / "gateway.json").read_bytes(), type=GatewayResult)
    assert list(res.engines) == ["vllm"] and res.engines["vllm"].version
    check_series(res, "vllm")
    assert res.passed[ratio_key("vllm", 4)] is not None  # measured: pass or miss, not n/a
