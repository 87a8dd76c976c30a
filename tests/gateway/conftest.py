"""Shared setup for the gateway tests: a started system on the fake engine, its gateway on a
free port, and the official ``openai`` client pointed at it.

``gateway`` (fixture) is that system with ``BASE`` as its config; ``start_gateway(tmp_path,
**sections)`` starts one with sections of ``BASE`` replaced or added (``gateway={...}``
merges into the gateway section, other keys replace a whole section). The agents:

- ``echo`` (rule) replies ``echo: <text>``;
- ``hold`` (rule) calls the ``hold`` tool, which waits until the test opens ``gate`` — a
  request held open as long as a test needs, without sleeping (``gate.entered`` is set once
  a call is waiting);
- ``faq`` (llm) answers with the fake engine's filler text, in a thread;
- ``router`` (rule) forwards everything to ``faq``.

``allow_raw_model`` is on: ``model="fake"`` goes to the inference actor itself. No tokens:
the gateway listens on 127.0.0.1 without auth, as the config checks demand.

``RawConnection`` is a plain TCP connection to a gateway, for what no HTTP client sends (half
a request, a body that never ends, nothing at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import openai
import pytest_asyncio
import yaml

from actoros.app import System, start_system
from actoros.config import parse_config
from actoros.gateway import GatewayAddress
from actoros.inference.actor import InferenceMetrics, InferenceStats
from actoros.inference.fake_engine import FakeEngine


class Gate:
    """What the ``hold`` tool waits on; ``reset()`` for each started gateway (its events then
    belong to the test's loop)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.cancelled = asyncio.Event()  # a waiting call was cancelled (its asker gone)

    def open(self) -> None:
        self.opened.set()


gate = Gate()


async def hold() -> str:
    """Wait until the test opens the gate."""
    entered, opened, cancelled = gate.entered, gate.opened, gate.cancelled
    entered.set()
    try:
        await opened.wait()
    except asyncio.CancelledError:
        cancelled.set()
        raise
    return "released"


BASE: dict[str, Any] = {
    "system": {"name": "gw", "state_dir": "state"},
    "inference": {"engine": "fake", "engine_args": {"max_model_len": 4096}},
    "services": {"tools": {"user": {"hold": f"{hold.__module__}:hold"}}},
    "gateway": {"port": 0, "allow_raw_model": True},
    "agents": [
        {"name": "echo", "kind": "rule", "rules": [{"reply": "echo: {text}"}]},
        {"name": "hold", "kind": "rule", "tools": ["hold"], "rules": [{"tool": "hold"}]},
        {"name": "faq", "kind": "llm", "max_tokens": 32, "max_steps": 1},
        {
            "name": "router",
            "kind": "rule",
            "permissions": {"agents": ["faq"], "inference": False},
            "rules": [{"forward": "faq"}],
        },
    ],
}


class RunningGateway:
    """A started system and its gateway's URL; ``client()`` makes an ``openai.AsyncOpenAI``
    for it (no retries: a test sees each status the gateway sends)."""

    def __init__(self, system: System, url: str) -> None:
        self.system = system
        self.url = url
        self.gate = gate
        self._clients: list[openai.AsyncOpenAI] = []

    def client(self, api_key: str = "unused", **options: Any) -> openai.AsyncOpenAI:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 20.0)
        client = openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=api_key, **options)
        self._clients.append(client)
        return client

    def engine(self) -> FakeEngine:
        """The fake engine inside the running inference actor (to kill it)."""
        ref = self.system.service("inference")
        assert ref is not None
        engine = ref._cell._actor.engine  # type: ignore[union-attr]
        assert isinstance(engine, FakeEngine)
        return engine

    def restarts(self) -> dict[str, int]:
        """Restarts so far of every actor, by path."""
        return {info.path: info.restarts for info in self.system.actors.snapshot()}

    async def close(self) -> None:
        for client in self._clients:
            await client.close()


class RawConnection:
    """A TCP connection to ``url``'s host and port: send bytes, read one response, or wait for
    the server to close it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        return cls(*await asyncio.open_connection(parts.hostname, parts.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], Any]:
        """The next response: status, headers (lower-case names), body (JSON decoded if it
        is JSON)."""
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("content-type", "").startswith("application/json"):
            return int(status_line.split()[1]), headers, msgspec.json.decode(body)
        return int(status_line.split()[1]), headers, body

    async def closed(self) -> None:
        """Return once the server has closed the connection (whatever it sent before)."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionResetError:
            pass

    def close(self) -> None:
        self.writer.close()


def chat_post(content_length: int, start: bytes = b"") -> bytes:
    """A chat-completions ``POST``'s head announcing ``content_length`` bytes of JSON body,
    then ``start``, the body's first bytes (the rest is for the test to send, or not)."""
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
        b"application/json\r\nContent-Length: %d\r\n\r\n" % content_length + start
    )


def config_text(**sections: Any) -> str:
    data = copy.deepcopy(BASE)
    for name, value in sections.items():
        if name == "gateway" and value is not None:
            data["gateway"] = {**data["gateway"], **value}
        elif value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return yaml.safe_dump(data, sort_keys=False)


async def engine_ready(system: System, timeout: float = 10.0) -> None:
    """Wait until the inference engine has started (it starts in a task of its actor)."""
    inference = system.service("inference")
    if inference is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        metrics = await inference.ask(InferenceStats())
        if isinstance(metrics, InferenceMetrics) and metrics.engine_ready:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the fake engine did not start")


@contextlib.asynccontextmanager
async def start_gateway(
    tmp_path: Path, *, wait_engine: bool = True, **sections: Any
) -> AsyncIterator[RunningGateway]:
    """A system from ``BASE`` with ``sections`` changed, its gateway listening."""
    gate.reset()
    config = parse_config(config_text(**sections), base_dir=tmp_path)
    system = await start_system(config)
    running = None
    try:
        ref = system.actors.lookup("/gateway")
        assert ref is not None
        running = RunningGateway(system, str(await ref.ask(GatewayAddress())))
        if wait_engine:
            await engine_ready(system)
        yield running
    finally:
        gate.open()  # a held tool call must not hold up the shutdown
        if running is not None:
            await running.close()
        await system.shutdown()


@pytest_asyncio.fixture(loop_scope="function")
async def gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    """The ``BASE`` system, started, with its gateway on a free port of 127.0.0.1."""
    async with start_gateway(tmp_path) as running:
        yield running
