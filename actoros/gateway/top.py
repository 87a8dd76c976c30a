"""``actoros top``: the live page's tree and numbers in a terminal, read from ``/api/tree``.

``fetch`` reads one frame from a running gateway (plain ``urllib``: one GET a refresh needs
no async client); ``render`` turns it into text (a pure function of the frame and the
terminal's size); ``watch`` repeats both every ``interval`` seconds until Ctrl-C.
``gateway_url`` and ``config_token`` find the gateway a config file describes.

Errors the user can fix (no ``gateway:`` section, ``port: 0``, a missing or wrong token) are
``TopError`` with status 2; a gateway that does not answer is ``TopError`` with status 1.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import TextIO

import msgspec

from actoros.config import Config
from actoros.core import ActorInfo

from .live.frames import ActorGroup, TreeFrame

__all__ = ["TopError", "config_token", "fetch", "gateway_url", "render", "watch"]

FETCH_TIMEOUT = 5.0  # seconds one /api/tree request may take


class TopError(Exception):
    """What keeps ``top`` from showing the tree, said in one line; ``status``: the exit code."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def gateway_url(config: Config, source: str = "the config") -> str:
    """The URL of the gateway ``config`` describes (a wildcard host is reached on loopback)."""
    gateway = config.gateway
    if gateway is None:
        raise TopError(
            f"{source} has no 'gateway:' section, so its system serves no live view: add one "
            "(e.g. 'gateway: {port: 8000}') or pass the gateway's URL"
        )
    if gateway.port == 0:
        raise TopError(
            f"{source} sets gateway.port: 0 (any free port), so the port is known only once it "
            "runs: pass the URL its gateway.listening log line shows"
        )
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(gateway.host, gateway.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{gateway.port}"


def config_token(config: Config, environ: Mapping[str, str] | None = None) -> str | None:
    """The first of the config's gateway tokens that can be read (literal, or its env var)."""
    env = os.environ if environ is None else environ
    gateway = config.gateway
    for token in gateway.tokens if gateway is not None else ():
        secret = token.token if token.token_env is None else env.get(token.token_env)
        if secret:
            return secret
    return None


def fetch(url: str, token: str | None = None, *, start_hint: str = "CONFIG") -> TreeFrame:
    """``GET url/api/tree`` as a ``TreeFrame``; ``TopError`` saying what is wrong otherwise."""
    request = urllib.request.Request(f"{url.rstrip('/')}/api/tree")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            what = "refused the token" if token else "wants a token"
            raise TopError(
                f"the gateway at {url} {what}: pass --token TOKEN or set ACTOROS_TOKEN "
                "(one of its config's gateway.tokens)"
            ) from None
        raise TopError(
            f"the server at {url} answered /api/tree with HTTP {exc.code} {exc.reason}: is it "
            "an actoros gateway?",
            status=1,
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TopError(
            f"cannot reach the gateway at {url} ({_reason(reason)}): start it with "
            f"`actoros run {start_hint}`",
            status=1,
        ) from None
    try:
        return msgspec.json.decode(body, type=TreeFrame)
    except msgspec.DecodeError as exc:
        raise TopError(
            f"the server at {url} did not answer /api/tree like an actoros gateway ({exc})",
            status=1,
        ) from None


def _reason(reason: object) -> str:
    text = getattr(reason, "strerror", None) or str(reason)
    return text.lower() if text else type(reason).__name__


_RED, _YELLOW, _DIM, _BOLD, _RESET = "\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"
_NUMBERS = (("RESTARTS", 8), ("MAILBOX", 7), ("PROCESSED", 10))


def _uptime(seconds: float) -> str:
    s = int(seconds)
    h, m, r = s // 3600, s % 3600 // 60, s % 60
    return f"{h}h {m:02d}m {r:02d}s" if h else f"{m}m {r:02d}s" if m else f"{r}s"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _fit(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: max(0, width - 1)] + "…"


def _node(row: ActorInfo | ActorGroup) -> str:
    return (row.node or "") if isinstance(row, ActorInfo) else ""


def render(
    frame: TreeFrame,
    *,
    url: str,
    width: int | None = None,
    height: int | None = None,
    color: bool = False,
) -> str:
    """The frame as text, at most ``width`` columns wide and ``height`` lines high (``None``:
    no limit, every row). A NODE column follows ACTOR only when some row has a ``node`` (the
    system leads a cluster)."""

    def paint(text: str, code: str, on: bool = True) -> str:
        return f"{code}{text}{_RESET}" if color and on else text

    t = frame.totals
    lines = [
        _fit(
            f"{frame.system} · up {_uptime(frame.uptime_s)} · {t.actors:,} actors · "
            f"{t.restarts:,} restarts · {t.mailbox:,} in mailboxes · {t.processed:,} processed"
            f" · {t.dead_letters:,} dead letters",
            width,
        )
    ]
    inf = frame.inference
    if inf is None:
        lines.append("inference: no inference actor answering")
    else:
        ttft = "–" if inf.ttft_p50_s is None else f"{inf.ttft_p50_s * 1000:.0f} ms"
        state = "ready" if inf.engine_ready else "starting"
        lines.append(
            _fit(
                f"inference: engine {state} · {inf.in_flight:,} in flight · {inf.waiting:,} "
                f"waiting · {inf.completed:,} done · {inf.failed:,} failed · "
                f"{_rate(inf.tokens_per_s)} tokens/s (1 min) · TTFT p50 {ttft}",
                width,
            )
        )
    clock = time.strftime("%H:%M:%S", time.localtime(frame.time))
    note = f" · {frame.hidden:,} actors grouped" if frame.hidden else ""
    lines.append(_fit(f"{url} at {clock}{note}", width))
    lines.append("")

    numbers = sum(w + 2 for _, w in _NUMBERS)
    kind_w = min(max([4, *(len(r.kind) for r in frame.actors)]), 20)
    state_w = 8
    nodes = [_node(r) for r in frame.actors]
    node_w = min(max([4, *(len(n) for n in nodes if n)]), 16) if any(nodes) else 0
    node_col = node_w + 2 if node_w else 0
    longest = max([5, *(len(r.path) + 2 * r.path.count("/") for r in frame.actors)])
    path_w = (
        longest
        if width is None
        else max(12, min(longest, width - numbers - kind_w - node_col - 14))
    )
    node_head = f"  {'NODE':<{node_w}}" if node_w else ""
    head = f"{'ACTOR':<{path_w}}{node_head}  {'KIND':<{kind_w}}  {'STATE':<{state_w}}"
    head += "".join(f"  {name:>{w}}" for name, w in _NUMBERS)
    lines.append(paint(_fit(head, width), _BOLD))
    rows = frame.actors
    room = None if height is None else max(1, height - len(lines) - 1)
    if room is not None and len(rows) > room:
        rows, cut = rows[: room - 1], len(rows) - (room - 1)
    else:
        cut = 0
    for row in rows:
        node = f"  {_fit(_node(row), node_w):<{node_w}}" if node_w else ""
        depth = row.path.count("/") - 1
        group = isinstance(row, ActorGroup)
        label = row.name if group else row.path
        path = _fit("  " * depth + label, path_w)
        parts = [
            (f"{path:<{path_w}}{node}  {_fit(row.kind, kind_w):<{kind_w}}  ", ""),
            (
                f"{_fit(row.state, state_w):<{state_w}}",
                "" if row.state in ("running", "") else _YELLOW,
            ),
            (f"  {row.restarts:>{_NUMBERS[0][1]},}", _RED if row.restarts > 0 else ""),
            (f"  {row.mailbox:>{_NUMBERS[1][1]},}  {row.processed:>{_NUMBERS[2][1]},}", ""),
        ]
        plain = "".join(text for text, _ in parts)
        if width is not None and len(plain) > width:  # too narrow for colors and all columns
            lines.append(_fit(plain, width))
            continue
        line = "".join(paint(text, code, bool(code)) for text, code in parts)
        lines.append(paint(line, _DIM, group))
    if cut:
        lines.append(
            _fit(f"… {cut:,} more rows (a taller terminal shows them; --once prints all)", width)
        )
    return "\n".join(lines) + "\n"


def watch(
    url: str,
    *,
    token: str | None = None,
    interval: float = 1.0,
    once: bool = False,
    out: TextIO | None = None,
    start_hint: str = "CONFIG",
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Show the tree once (``once``) or every ``interval`` s until Ctrl-C; the exit status.

    The first frame must come (else ``TopError``); later failures are shown and retried.
    """
    out = out if out is not None else sys.stdout
    tty = out.isatty()
    color = tty and "NO_COLOR" not in os.environ
    frame = fetch(url, token, start_hint=start_hint)
    try:
        while True:
            size = shutil.get_terminal_size()
            text = render(
                frame,
                url=url,
                width=size.columns if tty else None,
                height=None if once or not tty else size.lines,
                color=color,
            )
            out.write(("\x1b[H\x1b[2J" if tty and not once else "") + text)
            out.flush()
            if once:
                return 0
            sleep(interval)
            while True:
                try:
                    frame = fetch(url, token, start_hint=start_hint)
                    break
                except TopError as exc:
                    out.write(("\x1b[H\x1b[2J" if tty else "") + f"{exc} (retrying)\n")
                    out.flush()
                    sleep(interval)
    except KeyboardInterrupt:  # Ctrl-C is how top ends
        if tty:
            out.write("\n")
        return 0
