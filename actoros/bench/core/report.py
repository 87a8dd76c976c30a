"""Turn a ``CoreResult`` into the Markdown table and the PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._common import fmt, goal, notes_section, pyplot, save_chart
from ._peers import PEERS
from .result import CoreResult

# how each kind of number is shown (``_common.fmt`` specs)
RATE = ",.0f"
RATIO = ".2f"
BYTES = ",.0f"
SECONDS = ".2f"
US = ",.1f"

# metric -> (what it is, how it is shown); metrics not listed are shown with their key
LABELS: dict[str, tuple[str, str]] = {
    "ask_rt_per_s": ("actoros ask round trips/s (sequential, one actor)", RATE),
    "raw_ask_rt_per_s": ("raw Queue + Future ask round trips/s", RATE),
    "ask_ratio": ("ask: actoros / raw (median of per-repeat ratios)", RATIO),
    "tell_msg_per_s": ("actoros tell msgs/s, until processed", RATE),
    "raw_oneway_msg_per_s": ("raw bounded Queue one-way msgs/s", RATE),
    "tell_ratio": ("tell: actoros / raw one-way (median of per-repeat ratios)", RATIO),
    "raw_pingpong_rt_per_s": ("raw Queue ping-pong round trips/s", RATE),
    "fanout_rounds_per_s": ("fan-out/fan-in rounds/s (one ask to each actor)", RATE),
    "fanout_msgs_per_s": ("fan-out/fan-in asks/s", RATE),
    "spawn_per_s_100k": ("spawns/s, 100k actors", RATE),
    "bytes_per_idle_actor_100k": ("RSS bytes per idle actor, 100k actors", BYTES),
    "shutdown_100k_seconds": ("shutdown of 100k idle actors, s", SECONDS),
    "spawn_100k_seconds": ("time to spawn 100k actors, s", SECONDS),
    "spawn_per_s_1m": ("spawns/s, 1M actors", RATE),
    "spawn_1m_seconds": ("time to spawn 1M actors, s", SECONDS),
    "bytes_per_idle_actor_1m": ("RSS bytes per idle actor, 1M actors", BYTES),
    "shutdown_1m_seconds": ("shutdown of 1M idle actors, s", SECONDS),
    "bytes_per_idle_actor": ("RSS bytes per idle actor (1M if measured, else 100k)", BYTES),
    "restart_p50_us": ("restart latency p50, µs (crash → restarted actor answers)", US),
    "restart_p99_us": ("restart latency p99, µs", US),
}


def _spec(key: str) -> str:
    if key in LABELS:
        return LABELS[key][1]
    if key.startswith(("ask_vs_", "tell_vs_")):
        return RATIO
    return RATE


def _label(key: str) -> str:
    if key in LABELS:
        return LABELS[key][0]
    for prefix, what in (("ask_vs_", "ask: actoros / "), ("tell_vs_", "tell: actoros / ")):
        if key.startswith(prefix):
            return what + key[len(prefix) :]
    if key.startswith("peer_"):
        name, _, kind = key[len("peer_") :].partition("_")
        for peer in PEERS:  # peer names may contain '_'
            if key.startswith(f"peer_{peer}_"):
                name, kind = peer, key[len(f"peer_{peer}_") :]
        noun = "ask round trips/s" if kind == "ask_rt_per_s" else "tell msgs/s"
        return f"{name} {noun}"
    return key


def markdown(result: CoreResult) -> str:
    order = list(LABELS) + sorted(k for k in result.metrics if k not in LABELS)
    lines = [
        "# actoros bench core",
        "",
        (
            f"{result.about()}; "
            f"{'quick' if result.quick else 'full'} run, median of {result.repeats} repeat(s)."
        ),
        "",
        (
            "Absolute numbers depend on this machine and its load; the ratios compare runs "
            "made side by side in the same process and are the numbers to compare across "
            "machines."
        ),
        "",
        "| metric | what | value | target | status |",
        "|---|---|---:|---:|---|",
    ]
    for key in order:
        if key not in result.metrics:
            continue
        spec = _spec(key)
        wanted, status = goal(result, key, spec)
        value = fmt(result.metrics[key], spec)
        lines.append(f"| `{key}` | {_label(key)} | {value} | {wanted} | {status} |")
    for key, target in result.targets.items():
        if key not in result.metrics:
            lines.append(
                f"| `{key}` | {_label(key)} | not measured | {target.op} "
                f"{fmt(target.value, _spec(key))} | n/a |"
            )
    lines += [
        "",
        "## Peers",
        "",
        "| peer | version | status | ask rt/s | tell msgs/s | note |",
        "|---|---|---|---:|---:|---|",
    ]
    for name, peer in result.peers.items():
        ask = result.metrics.get(f"peer_{name}_ask_rt_per_s", math.nan)
        tell = result.metrics.get(f"peer_{name}_tell_msg_per_s", math.nan)
        lines.append(
            f"| {name} | {peer.version or ''} | {peer.status} | {fmt(ask, RATE)} | "
            f"{fmt(tell, RATE)} | {(peer.reason or '').replace('|', '/')} |"
        )
    lines += notes_section(result.notes)
    return "\n".join(lines) + "\n"


def chart(result: CoreResult, path: Path) -> None:
    """Four panels: ask rates, one-way rates, restart latency, memory per idle actor."""
    plt = pyplot()
    metrics = result.metrics
    peers = [p for p, r in result.peers.items() if r.status == "ok"]

    def bars(
        ax: Any,
        items: list[tuple[str, float | None]],
        title: str,
        unit: str,
        target: float | None = None,
        log: bool = False,
    ) -> None:
        present = [(label, v) for label, v in items if v is not None and not math.isnan(v)]
        labels = [label for label, _ in present]
        values = [v for _, v in present]
        colors = [
            "#888888"
            if label.startswith("raw")
            else "#1f77b4"
            if label.startswith("actoros")
            else "#ff7f0e"
            for label in labels
        ]
        ax.bar(labels, values, color=colors)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit, fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        if log:
            ax.set_yscale("log")
        if target is not None:
            ax.axhline(target, color="red", linestyle="--", linewidth=1, label="target")
            ax.legend(fontsize=8)
        for i, v in enumerate(values):
            ax.annotate(
                f"{v:,.0f}" if v >= 10 else f"{v:.2f}", (i, v), ha="center", va="bottom", fontsize=7
            )

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    bars(
        axes[0][0],
        [
            ("raw Queue+Future", metrics.get("raw_ask_rt_per_s")),
            ("raw ping-pong", metrics.get("raw_pingpong_rt_per_s")),
            ("actoros ask", metrics.get("ask_rt_per_s")),
            ("actoros fan-out", metrics.get("fanout_msgs_per_s")),
        ]
        + [(p, metrics.get(f"peer_{p}_ask_rt_per_s")) for p in peers],
        "ask: round trips/s (fan-out: asks/s to 1,000 actors)",
        "round trips/s",
        log=True,
    )
    bars(
        axes[0][1],
        [
            ("raw bounded Queue", metrics.get("raw_oneway_msg_per_s")),
            ("actoros tell", metrics.get("tell_msg_per_s")),
        ]
        + [(p, metrics.get(f"peer_{p}_tell_msg_per_s")) for p in peers],
        "one-way: messages/s until processed",
        "messages/s",
        log=True,
    )
    restart_target = result.targets.get("restart_p50_us")
    bars(
        axes[1][0],
        [
            ("actoros p50", metrics.get("restart_p50_us")),
            ("actoros p99", metrics.get("restart_p99_us")),
        ],
        "restart latency: crash → restarted actor answers",
        "µs",
        target=restart_target.value if restart_target else None,
    )
    mem_target = result.targets.get("bytes_per_idle_actor")
    bars(
        axes[1][1],
        [
            ("actoros 100k", metrics.get("bytes_per_idle_actor_100k")),
            ("actoros 1M", metrics.get("bytes_per_idle_actor_1m")),
        ],
        "RSS per idle actor",
        "bytes",
        target=mem_target.value if mem_target else None,
    )
    fig.suptitle(
        f"actoros bench core — {result.loop}, {result.machine.cpu_count} CPUs, "
        f"median of {result.repeats}",
        fontsize=11,
    )
    save_chart(fig, path)
