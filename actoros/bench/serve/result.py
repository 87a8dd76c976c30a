"""The result of ``actoros bench serve`` as data: what goes into ``serve.json``.

Metric keys are flat: ``<server>_<stat>_c<N>`` for a server at concurrency N, where a server is
``gateway`` (``actoros run`` of a config with a ``gateway:`` section, the raw model) or
``vllm_serve`` (vLLM's own OpenAI server), and a stat one of ``STATS`` as vLLM's benchmark
client (``vllm bench serve``) reports it in its ``--save-result`` JSON. Ratios are
``ratio_<stat>_c<N>``: the gateway's value over vllm serve's, per repeat (the two ran with the
same prompts in that repeat), then the median.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from .._common import RepeatedResult, Target, median

SERVERS = ("gateway", "vllm_serve")

# our stat -> the key of ``vllm bench serve``'s result JSON
STATS: dict[str, str] = {
    "tok_per_s": "output_throughput",
    "req_per_s": "request_throughput",
    "ttft_ms_p50": "median_ttft_ms",
    "ttft_ms_p99": "p99_ttft_ms",
    "tpot_ms_p50": "median_tpot_ms",
    "tpot_ms_p99": "p99_tpot_ms",
    "itl_ms_p50": "median_itl_ms",
    "itl_ms_p99": "p99_itl_ms",
    "e2el_ms_p50": "median_e2el_ms",
    "e2el_ms_p99": "p99_e2el_ms",
    "completed": "completed",
    "failed": "failed",
    "output_tokens": "total_output_tokens",
    "input_tokens": "total_input_tokens",
}
RATIO_STATS = ("tok_per_s", "ttft_ms_p50", "tpot_ms_p50", "itl_ms_p50", "e2el_ms_p50")
# the goals: at least vllm serve's throughput, TTFT and TPOT no worse, at every level
GOALS = {
    "tok_per_s": Target(">=", 1.0),
    "ttft_ms_p50": Target("<=", 1.0),
    "tpot_ms_p50": Target("<=", 1.0),
}


class Workload(msgspec.Struct, frozen=True, kw_only=True):
    """What ``vllm bench serve`` sends at every level, to both servers alike."""

    concurrency: tuple[int, ...]
    prompts_per_level: int  # requests at concurrency N: prompts_per_level * N
    input_len: int  # random dataset: tokens per prompt
    output_len: int  # max tokens per answer, reached on every request (--ignore-eos)
    backend: str  # vllm bench serve's --backend
    endpoint: str  # its --endpoint
    temperature: float

    def requests(self, concurrency: int) -> int:
        return self.prompts_per_level * concurrency


class ServerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One server under test: how it was started and how long it took to answer."""

    command: list[str]  # the command line (the gateway's: ``actoros run`` of ``config``)
    config: str = ""  # the gateway's YAML config ("" for vllm serve)
    start_seconds: list[float] = []  # from the start of the process to the first answer
    affinity: dict[str, list[int]] = {}  # CPUs per process once ready (main, vLLM's children)


def key(server: str, stat: str, concurrency: int) -> str:
    return f"{server}_{stat}_c{concurrency}"


def ratio_key(stat: str, concurrency: int) -> str:
    return f"ratio_{stat}_c{concurrency}"


def sample(saved: Mapping[str, Any]) -> dict[str, float]:
    """Our stats from one ``vllm bench serve --save-result`` JSON (NaN where it has none)."""
    out = {}
    for stat, field in STATS.items():
        value = saved.get(field)
        out[stat] = float(value) if isinstance(value, int | float) else math.nan
    return out


def ratios(raw: Mapping[str, list[float]], concurrency: int) -> dict[str, list[float]]:
    """Per stat of ``RATIO_STATS``: the per-repeat ratios gateway / vllm serve at one level,
    pairing the repeats in order (each repeat ran both servers on the same prompts)."""
    out: dict[str, list[float]] = {}
    for stat in RATIO_STATS:
        ours = raw.get(key("gateway", stat, concurrency), [])
        theirs = raw.get(key("vllm_serve", stat, concurrency), [])
        out[ratio_key(stat, concurrency)] = [
            a / b if b > 0 else math.nan for a, b in zip(ours, theirs, strict=False)
        ]
    return out


def targets(concurrency: tuple[int, ...]) -> dict[str, Target]:
    return {ratio_key(stat, c): goal for c in concurrency for stat, goal in GOALS.items()}


def medians(raw: Mapping[str, list[float]]) -> dict[str, float]:
    return {name: median(samples) for name, samples in raw.items() if samples}


class ServeResult(RepeatedResult, frozen=True, kw_only=True):
    """Metrics are flat, medians over repeats (their keys: see the module docstring)."""

    benchmark: str = "serve"
    model: str  # the model folder both servers load
    model_id: str  # the id both answer to
    vllm_version: str
    engine_args: dict[str, Any]  # the same engine arguments for both servers
    workload: Workload
    servers: dict[str, ServerInfo]  # by server name (``SERVERS``)
    client: list[str]  # one level's ``vllm bench serve`` command, as run
    order: list[list[str]]  # the servers' order in each repeat
