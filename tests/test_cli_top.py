"""``actoros top CONFIG_OR_URL``: one frame (``--once``) from a running gateway, by URL and by
config file, with and without a token; and the errors a user meets (nothing listening, no
``gateway:`` section, ``port: 0``, a missing token).

The system runs in-process (the app's assembly on the fake engine, its gateway on a free
port); ``actoros top`` runs as a user runs it, in its own process.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actoros.agents import UserMessage
from actoros.app import System, start_system
from actoros.cli import main
from actoros.config import parse_config
from actoros.core import ActorInfo
from actoros.gateway import GatewayAddress
from actoros.gateway.live import TreeFrame
from actoros.gateway.top import render

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "configs" / "fake.yaml"


def config_text(tmp_path: Path, gateway: str | None) -> str:
    """configs/fake.yaml with its state in ``tmp_path``, no workload, and ``gateway``."""
    text = FAKE.read_text(encoding="utf-8").replace(
        "state_dir: ../.actoros/fake", f"state_dir: {tmp_path / 'state'}"
    )
    text = text.partition("\nworkload:")[0] + "\n"
    return text + (f"gateway: {gateway}\n" if gateway is not None else "")


@asynccontextmanager
async def running(tmp_path: Path, gateway: str = "{port: 0}") -> AsyncIterator[tuple[System, str]]:
    system = await start_system(parse_config(config_text(tmp_path, gateway), base_dir=tmp_path))
    try:
        ref = system.actors.lookup("/gateway")
        assert ref is not None
        yield system, str(await ref.ask(GatewayAddress()))
    finally:
        await system.shutdown()


async def top(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m actoros top ARGS``, while this loop keeps serving the gateway."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actoros",
        "top",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 40)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_once_prints_the_tree_and_numbers_of_a_running_gateway(tmp_path: Path) -> None:
    async with running(tmp_path) as (system, url):
        router = system.agent("router")
        assert router is not None
        await router.ask(UserMessage(text="What are your opening hours?"), timeout=10)
        status, out, err = await top(url, "--once")
        paths = [info.path for info in system.actors.snapshot()]
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("shop · up ")
    assert re.search(r"· \d+ actors ·", lines[0])
    assert lines[1].startswith("inference: engine ready · ")
    assert "1 done" in lines[1]
    header = next(i for i, line in enumerate(lines) if line.startswith("ACTOR"))
    assert lines[header].split() == ["ACTOR", "KIND", "STATE", "RESTARTS", "MAILBOX", "PROCESSED"]
    rows = lines[header + 1 :]
    assert [row.split()[0] for row in rows] == paths  # every actor, in tree order
    faq = next(row for row in rows if row.split()[0] == "/workers/faq").split()
    assert faq[1:4] == ["LLMAgent", "running", "0"] and int(faq[5]) >= 1
    assert "\x1b[" not in out  # not a terminal: no colors, no screen clearing


async def test_a_config_file_names_the_gateway_and_its_token(tmp_path: Path) -> None:
    tokens = "tokens: [{name: ops, token: s3cret-token}]"
    async with running(tmp_path, f"{{port: 0, {tokens}}}") as (_, url):
        port = url.rpartition(":")[2]
        config = tmp_path / "config.yaml"  # the config the system runs, its port now known
        config.write_text(config_text(tmp_path, f"{{port: {port}, {tokens}}}"), encoding="utf-8")
        by_config = await top(str(config), "--once")
        no_token = await top(url, "--once")
        wrong = await top(url, "--once", "--token", "nope")
        by_env = await top(url, "--once", env={"ACTOROS_TOKEN": "s3cret-token"})
    assert by_config[0] == 0, by_config[2]
    assert by_config[1].startswith("shop · up ")
    assert by_env[0] == 0 and "/kernel/inference" in by_env[1]
    assert no_token[0] == 2 and wrong[0] == 2
    assert no_token[2] == (
        f"actoros: error: the gateway at {url} wants a token: pass --token TOKEN or set "
        "ACTOROS_TOKEN (one of its config's gateway.tokens)\n"
    )
    assert "refused the token" in wrong[2] and "nope" not in wrong[2]


def test_an_unreachable_gateway_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["top", url, "--once"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"actoros: error: cannot reach the gateway at {url} (")
    assert err.endswith("): start it with `actoros run CONFIG`\n")


def test_an_unreachable_gateway_of_a_config_names_that_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "shop.yaml"
    config.write_text(config_text(tmp_path, f"{{port: {closed_port()}}}"), encoding="utf-8")
    assert main(["top", str(config), "--once"]) == 1
    assert capsys.readouterr().err.endswith(f"start it with `actoros run {config}`\n")


def test_a_config_without_a_gateway_section_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "shop.yaml"
    config.write_text(config_text(tmp_path, None), encoding="utf-8")
    assert main(["top", str(config), "--once"]) == 2
    assert capsys.readouterr().err == (
        f"actoros: error: {config} has no 'gateway:' section, so its system serves no live "
        "view: add one (e.g. 'gateway: {port: 8000}') or pass the gateway's URL\n"
    )


def test_a_config_with_port_0_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "shop.yaml"
    config.write_text(config_text(tmp_path, "{port: 0}"), encoding="utf-8")
    assert main(["top", str(config), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gateway.port: 0" in err and "gateway.listening" in err


def test_a_missing_config_and_a_bad_interval_are_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", str(tmp_path / "nowhere.yaml"), "--once"]) == 2
    assert "nowhere.yaml" in capsys.readouterr().err
    assert main(["top", "http://127.0.0.1:1", "--interval", "0"]) == 2
    assert "--interval: must be more than 0" in capsys.readouterr().err


def test_render_fits_the_terminal_and_says_what_it_left_out() -> None:
    rows = [
        ActorInfo(
            path=f"/big/a{i}",
            parent="/big",
            name=f"a{i}",
            kind="Worker",
            state="running",
            restarts=i % 2,
            mailbox=0,
            processed=i,
            children=0,
        )
        for i in range(30)
    ]
    payload = {
        "system": "s",
        "time": 0.0,
        "uptime_s": 3725.0,
        "hidden": 0,
        "inference": None,
        "totals": {"actors": 30, "restarts": 15, "mailbox": 0, "processed": 435, "dead_letters": 2},
        "actors": [msgspec.to_builtins(r) for r in rows],
    }
    text = render(msgspec.convert(payload, TreeFrame), url="http://x", width=60, height=20)
    lines = text.splitlines()
    assert len(lines) <= 20 and all(len(line) <= 60 for line in lines)
    assert lines[0].startswith("s · up 1h 02m 05s · 30 actors · 15 restarts")
    assert lines[1] == "inference: no inference actor answering"
    assert lines[-1].startswith("… ") and "more rows" in lines[-1]
    colored = render(msgspec.convert(payload, TreeFrame), url="http://x", color=True)
    assert "\x1b[31m" in colored  # restarts in red


def frame_of(rows: list[ActorInfo], groups: tuple[dict[str, Any], ...] = ()) -> TreeFrame:
    payload = {
        "system": "s",
        "time": 0.0,
        "uptime_s": 1.0,
        "hidden": sum(group["hidden"] for group in groups),
        "inference": None,
        "totals": {
            "actors": len(rows),
            "restarts": 0,
            "mailbox": 0,
            "processed": 0,
            "dead_letters": 0,
        },
        "actors": [msgspec.to_builtins(r) for r in rows] + list(groups),
    }
    return msgspec.convert(payload, TreeFrame)


def row(path: str, node: str | None = None) -> ActorInfo:
    parent, _, name = path.rpartition("/")
    return ActorInfo(
        path=path,
        parent=parent or None,
        name=name,
        kind="Worker",
        state="running",
        restarts=0,
        mailbox=0,
        processed=0,
        children=0,
        node=node,
    )


def test_render_of_a_single_process_has_no_node_column() -> None:
    text = render(frame_of([row("/front"), row("/front/a")]), url="http://x")
    header = text.splitlines()[4]
    assert header.split() == ["ACTOR", "KIND", "STATE", "RESTARTS", "MAILBOX", "PROCESSED"]
    assert "NODE" not in text


def test_render_of_a_cluster_shows_each_actors_node_after_its_path() -> None:
    rows = [row("/front", "head"), row("/workers", "workers"), row("/workers/w0", "workers")]
    group = {
        "type": "ActorGroup",
        "path": "/workers/…",
        "parent": "/workers",
        "name": "… 3 more actors",
        "restarts": 0,
        "mailbox": 0,
        "processed": 0,
        "hidden": 3,
    }
    lines = render(frame_of(rows, (group,)), url="http://x").splitlines()
    header, body = lines[4], lines[5:]
    assert header.split()[:3] == ["ACTOR", "NODE", "KIND"]
    assert [line.split()[:3] for line in body[:3]] == [
        ["/front", "head", "Worker"],
        ["/workers", "workers", "Worker"],
        ["/workers/w0", "workers", "Worker"],
    ]
    node_column = slice(header.index("NODE"), header.index("KIND"))
    assert body[3].strip().startswith("… 3 more") and not body[3][node_column].strip()
    assert header.index("NODE") == body[0].index("head")  # the column lines up
    narrow = render(frame_of(rows, (group,)), url="http://x", width=60).splitlines()
    assert all(len(line) <= 60 for line in narrow) and "NODE" in narrow[4]
