"""Smoke test of ``actoros bench inference`` with the fake engine: no vLLM needed.

Tiny sizes (``ACTOROS_BENCH_TINY=1``), one repeat; no timing assertions — the numbers of a
smoke run on a shared CI machine mean nothing. The run must still produce every documented
metric, the targets, and well-formed JSON, Markdown and PNG.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import msgspec
import pytest

from actoros.bench.inference import run as inference
from actoros.bench.inference.result import InferenceResult
from actoros.cli import main as cli_main

pytestmark = pytest.mark.timeout(120)

HEADLINE = [
    "actor_tok_per_s",
    "direct_tok_per_s",
    "actor_vs_direct",
    "sequential_tok_per_s",
    "batching_speedup",
    "ttft_overhead_ms_p50",
    "direct_req_per_s",
    "actor_req_per_s",
    "direct_cpu_us_per_tok",
    "actor_cpu_us_per_tok",
    "actor_cpu_vs_direct",
    "shared_actor_vs_direct",
    "shared_actor_cpu_vs_direct",
]
# per path and concurrency level, vLLM's benchmark metrics
PER_LEVEL = [
    "tok_per_s",
    "req_per_s",
    "ttft_ms_p50",
    "ttft_ms_p99",
    "tpot_ms_p50",
    "tpot_ms_p99",
    "itl_ms_p50",
    "itl_ms_p99",
    "e2el_ms_p50",
    "e2el_ms_p99",
    "prompt_tokens",
    "output_tokens",
    "cpu_us_per_tok",
]


def check_results(out: Path, levels: tuple[int, ...]) -> InferenceResult:
    for name in ("inference.json", "inference.md", "inference.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "inference.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = msgspec.json.decode((out / "inference.json").read_bytes(), type=InferenceResult)
    metrics = result.metrics
    for key in HEADLINE:
        assert math.isfinite(metrics[key]), (key, metrics[key])
    for c in levels:
        for pre in ("", "shared_"):  # the distinct-prompt series and the shared-prompt one
            assert metrics[f"{pre}actor_vs_direct_c{c}"] > 0
            assert metrics[f"{pre}actor_cpu_vs_direct_c{c}"] > 0
            assert math.isfinite(metrics[f"{pre}ttft_overhead_ms_p50_c{c}"])
            for path in ("direct", "actor"):
                for key in PER_LEVEL:
                    value = metrics[f"{pre}{path}_{key}_c{c}"]
                    assert math.isfinite(value) and value >= 0, (pre, path, key, c, value)
    for key in ("tok_per_s", "req_per_s", "e2el_ms_p50"):
        assert metrics[f"sequential_{key}"] > 0
    return result


def test_fake_engine_run_writes_json_markdown_and_chart_with_every_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACTOROS_BENCH_TINY", "1")

    assert inference.main(quick=True, out=tmp_path, repeats=1, engine="fake") == 0

    result = check_results(tmp_path, inference.TINY.concurrency)
    assert result.benchmark == "inference"
    assert result.engine.kind == "fake"
    assert result.quick is True and result.repeats == 1
    assert result.workload == inference.TINY
    # every request produced exactly the output length asked for (ignore_eos)
    for c in result.workload.concurrency:
        for path in ("direct", "actor"):
            assert result.metrics[f"{path}_output_tokens_c{c}"] == result.workload.output_tokens
            assert result.metrics[f"{path}_prompt_tokens_c{c}"] == result.workload.prompt_tokens
    assert set(result.targets) == {
        "actor_vs_direct",
        "actor_cpu_vs_direct",
        "ttft_overhead_ms_p50",
        *(f"actor_vs_direct_c{c}" for c in result.workload.concurrency),
        *(f"actor_cpu_vs_direct_c{c}" for c in result.workload.concurrency),
    }
    assert set(result.passed) == set(result.targets)
    assert all(len(samples) == 1 for samples in result.raw.values())  # one repeat
    table = (tmp_path / "inference.md").read_text()
    assert "| `actor_vs_direct` |" in table and "| `actor_cpu_vs_direct` |" in table
    assert "## By concurrency: every request its own random prompt" in table
    assert "## By concurrency: one shared prompt" in table
    assert table in capsys.readouterr().out  # the table also goes to stdout
    plain = msgspec.json.decode((tmp_path / "inference.json").read_bytes())
    assert {"benchmark", "version", "machine", "engine", "workload", "metrics", "targets"} <= set(
        plain
    )
    assert plain["loop"] == "uvloop"


def test_cli_runs_the_fake_engine_with_a_chosen_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTOROS_BENCH_TINY", "1")
    argv = ["bench", "inference", "--engine", "fake", "--concurrency", "2,1", "--repeats", "1"]

    assert cli_main([*argv, "--out", str(tmp_path)]) == 0

    result = check_results(tmp_path, (1, 2))
    assert result.workload.concurrency == (1, 2)


def test_cli_rejects_a_bad_concurrency_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "inference", "--engine", "fake", "--concurrency", "4,0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("actoros: error:") and "concurrency" in err and "\n" not in err


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_vllm_engine_without_vllm_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["bench", "inference", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--engine fake" in err and "\n" not in err


def test_distinct_prompts_differ_and_the_shared_series_repeats_one_prompt() -> None:
    from actoros.bench.inference._backends import FakeBackend

    backend = FakeBackend(inference.TINY)
    distinct = backend.prompts(50, distinct=True)
    assert len({p.text for p in distinct}) == 50
    assert {len(p.text.split()) for p in distinct} == {inference.TINY.prompt_tokens}
    assert {p.text for p in backend.prompts(3, distinct=False)} == {backend.prompt}


def test_a_random_prompt_is_shortened_until_the_engine_counts_at_most_the_target() -> None:
    import random

    from actoros.bench.inference._backends import random_prompt

    # a toy tokenizer: every id decodes to two characters, which encode to one id each, plus
    # a start token: the first draw is about twice too long
    def decode(ids: list[int]) -> str:
        return "".join(f"{i % 10}{i % 10}" for i in ids)

    def encode(text: str) -> list[int]:
        return [0, *(int(ch) for ch in text)]

    prompt = random_prompt(random.Random(1), list(range(10, 30)), 16, decode, encode)
    assert 8 <= len(encode(prompt.text)) <= 16


@pytest.mark.vllm  # importing vLLM takes seconds (minutes on a loaded machine)
@pytest.mark.timeout(600)
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vLLM")
def test_the_direct_baseline_asks_for_deltas_when_streamed_and_the_final_output_otherwise() -> None:
    from vllm.sampling_params import RequestOutputKind

    from actoros.inference.vllm_direct import DirectLLM

    assert DirectLLM.sampling(8).output_kind == RequestOutputKind.DELTA
    assert DirectLLM.sampling(8, stream=False).output_kind == RequestOutputKind.FINAL_ONLY
