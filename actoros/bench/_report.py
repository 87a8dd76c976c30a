"""Turn a ``CoreResult`` into the Markdown table and the PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ._peers import PEERS
from ._result import CoreResult

# metric -> (what it is, unit kind); metrics not listed are shown with their key
LABELS: dict[str, tuple[str, str]] = {
    "ask_rt_per_s": ("actoros ask round trips/s (sequential, one actor)", "rate"),
    "raw_ask_rt_per_s": ("raw Queue + Future ask round trips/s", "rate"),
    "ask_ratio": ("ask: actoros / raw (median of per-repeat ratios)", "ratio"),
    "tell_msg_per_s": ("actoros tell msgs/s, until processed", "rate"),
    "raw_oneway_msg_per_s": ("raw bounded Queue one-way msgs/s", "rate"),
    "tell_ratio": ("tell: actoros / raw one-way (median of per-repeat ratios)", "ratio"),
    "raw_pingpong_rt_per_s": ("raw Queue ping-pong round trips/s", "rate"),
    "fanout_rounds_per_s": ("fan-out/fan-in rounds/s (one ask to each actor)", "rate"),
    "fanout_msgs_per_s": ("fan-out/fan-in asks/s", "rate"),
    "spawn_per_s_100k": ("spawns/s, 100k actors", "rate"),
    "bytes_per_idle_actor_100k": ("RSS bytes per idle actor, 100k actors", "bytes"),
    "shutdown_100k_seconds": ("shutdown of 100k idle actors, s", "seconds"),
    "spawn_100k_seconds": ("time to spawn 100k actors, s", "seconds"),
    "spawn_per_s_1m": ("spawns/s, 1M actors", "rate"),
    "spawn_1m_seconds": ("time to spawn 1M actors, s", "seconds"),
    "bytes_per_idle_actor_1m": ("RSS bytes per idle actor, 1M actors", "bytes"),
    "shutdown_1m_seconds": ("shutdown of 1M idle actors, s", "seconds"),
    "bytes_per_idle_actor": ("RSS bytes per idle actor (1M if measured, else 100k)", "bytes"),
    "restart_p50_us": ("restart latency p50, µs (crash → restarted actor answers)", "us"),
    "restart_p99_us": ("restart latency p99, µs", "us"),
}


def _fmt(value: float, kind: str) -> str:
    if math.isnan(value):
        return "n/a"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind in ("us", "seconds"):
        return f"{value:,.1f}" if kind == "us" else f"{value:.2f}"
    return f"{value:,.0f}"


def _kind(key: str) -> str:
    if key in LABELS:
        return LABELS[key][1]
    if key.startswith(("ask_vs_", "tell_vs_")):
        return "ratio"
    return "rate"


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
    m = result.machine
    lines = [
        "# actoros bench core",
        "",
        (
            f"actoros {result.version}, Python {result.python}, loop {result.loop}, "
            f"{m.cpu_count} CPUs, {m.platform}; {result.timestamp}; "
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
        value = result.metrics[key]
        kind = _kind(key)
        target = result.targets.get(key)
        if target is None:
            goal, status = "", ""
        else:
            goal = f"{target.op} {_fmt(target.value, kind)}"
            met = result.passed.get(key)
            status = "n/a" if met is None else ("pass" if met else "miss")
        lines.append(f"| `{key}` | {_label(key)} | {_fmt(value, kind)} | {goal} | {status} |")
    for key, target in result.targets.items():
        if key not in result.metrics:
            lines.append(
                f"| `{key}` | {_label(key)} | not measured | {target.op} "
                f"{_fmt(target.value, _kind(key))} | n/a |"
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
            f"| {name} | {peer.version or ''} | {peer.status} | {_fmt(ask, 'rate')} | "
            f"{_fmt(tell, 'rate')} | {(peer.reason or '').replace('|', '/')} |"
        )
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def chart(result: CoreResult, path: Path) -> None:
    """Four panels: ask rates, one-way rates, restart latency, memory per idle actor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
