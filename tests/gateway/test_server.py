"""``GatewayActor``: uvicorn on the actors' loop, started by the runner as ``/gateway`` after
the agent groups; where it listens, what a taken port says, that it stops first, and that
``actoros run`` and ``run_system`` serve it (with and without a workload)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import structlog
from structlog.testing import capture_logs

from actoros import LifecycleEvent
from actoros.app import RunSummary, run_system, start_system
from actoros.config import ConfigError, parse_config
from actoros.gateway import GatewayAddress
from actoros.testing import capture_events

from .conftest import BASE, RunningGateway, config_text, gate, start_gateway

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hello"}]
REPO = Path(__file__).resolve().parents[2]


def _info_logs() -> None:
    """Let info lines through (the suite's structlog drops them); restored after the test."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))


async def test_the_gateway_listens_on_a_free_port_and_says_where(tmp_path: Path) -> None:
    _info_logs()
    with capture_logs() as logs:
        async with start_gateway(tmp_path) as gateway:
            address = gateway.url
            assert address.startswith("http://127.0.0.1:")
            assert int(address.rpartition(":")[2]) > 0
            listening = [e for e in logs if e["event"] == "gateway.listening"]
            assert listening == [
                {
                    "event": "gateway.listening",
                    "actor": "/gateway",
                    "address": address,
                    "auth": False,
                    "log_level": "info",
                }
            ]
            # the last top-level actor: after the kernel and the agent groups
            top = [i.path for i in gateway.system.actors.snapshot() if i.path.count("/") == 1]
            assert top == ["/kernel", "/agents", "/gateway"]
            models = await gateway.client().models.list()
            assert models.data


async def test_the_gateway_stops_first_and_nothing_it_served_restarts(tmp_path: Path) -> None:
    config = parse_config(config_text(), base_dir=tmp_path)
    system = await start_system(config)
    ref = system.actors.lookup("/gateway")
    assert ref is not None
    url = await ref.ask(GatewayAddress())
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    try:
        reply = await client.chat.completions.create(model="echo", messages=USER)
        assert reply.choices[0].message.content == "echo: hello"
        with capture_events(system.actors, LifecycleEvent) as events:
            await system.shutdown()
        stopped = [e.path for e in events if e.kind == "stopped"]
        assert stopped[0] == "/gateway"
        assert stopped.index("/gateway") < stopped.index("/agents/echo")
        with pytest.raises(openai.APIConnectionError):  # nobody listens any more
            await client.models.list()
    finally:
        await client.close()
        await system.shutdown()


async def test_a_taken_port_is_one_config_error_naming_the_fix(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = parse_config(config_text(gateway={"port": port}), base_dir=tmp_path)
        with pytest.raises(ConfigError) as caught:
            await start_system(config)
        assert caught.value.lines() == [
            f"config: gateway.port: port {port} is in use: set gateway.port (0 = any free port)"
        ]
    # what had started was stopped again: the same config starts on a free port
    async with start_gateway(tmp_path) as gateway:
        assert (await gateway.client().models.list()).data


async def test_stopping_answers_a_waiting_request_503_at_once(tmp_path: Path) -> None:
    async with start_gateway(tmp_path) as gateway:
        client = gateway.client()
        held = asyncio.ensure_future(client.chat.completions.create(model="hold", messages=USER))
        await gateway.gate.entered.wait()
        # the gate stays shut: the request is answered by the shutdown, not by the agent
        with capture_events(gateway.system.actors, LifecycleEvent) as events:
            await gateway.system.shutdown()
        with pytest.raises(openai.InternalServerError) as caught:
            await held
        assert caught.value.status_code == 503
        assert "the gateway is stopping" in str(caught.value)
        assert not [e for e in events if e.kind in ("failed", "restarted")]


async def test_stopping_ends_an_open_stream_with_a_last_event(tmp_path: Path) -> None:
    args = {"max_model_len": 100_000, "eos_after": [50_000, 50_000], "token_delay": 0.001}
    async with start_gateway(tmp_path, inference={"engine": "fake", "engine_args": args}) as gw:
        client = gw.client()
        stream = await client.chat.completions.create(
            model="fake", messages=USER, max_tokens=50_000, stream=True
        )
        seen = 0
        with pytest.raises(openai.APIError) as caught:
            async for _ in stream:
                seen += 1
                if seen == 2:
                    stopping = asyncio.ensure_future(gw.system.shutdown())
        await stopping
        assert caught.value.body == {
            "message": "the gateway is stopping; retry once it is back",
            "type": "server_error",
            "param": None,
            "code": "unavailable",
        }


async def test_run_system_serves_the_gateway_while_the_workload_runs(tmp_path: Path) -> None:
    _info_logs()
    gate.reset()
    workload = {"agent": "hold", "tasks": [{"id": "held", "input": "wait for the test"}]}
    config = parse_config(config_text(workload=workload), base_dir=tmp_path)
    out = io.StringIO()
    with capture_logs() as logs:
        running = asyncio.ensure_future(run_system(config, out=out))
        try:
            await gate.entered.wait()  # the workload's one task is being answered
            [url] = [e["address"] for e in logs if e["event"] == "gateway.listening"]
            client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            async with client:
                reply = await client.chat.completions.create(model="echo", messages=USER)
            assert reply.choices[0].message.content == "echo: hello"
            assert not running.done()
        finally:
            gate.open()
        summary = await running
    assert summary == RunSummary(
        tasks=1, ok=1, failed=0, seconds=summary.seconds, output_tokens=summary.output_tokens
    )
    [line] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert line["output"] == "released"


async def test_the_gateway_example_config_serves_its_agents(tmp_path: Path) -> None:
    text = (REPO / "configs" / "gateway.yaml").read_text(encoding="utf-8")
    text = text.replace("state_dir: ../.actoros/gateway", f"state_dir: {tmp_path}")
    text = text.replace("port: 8000 ", "port: 0 ")
    config = parse_config(text, base_dir=REPO / "configs")
    assert config.gateway is not None and config.gateway.port == 0
    system = await start_system(config)
    try:
        ref = system.actors.lookup("/gateway")
        assert ref is not None
        url = await ref.ask(GatewayAddress())
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
            ids = [m.id for m in (await client.models.list()).data]
            assert ids == ["router", "faq", "orders", "fake"]
            hello = await client.chat.completions.create(model="router", messages=USER)
            assert hello.choices[0].message.content == "Hello! Ask me about your order or our shop."
    finally:
        await system.shutdown()


# -- actoros run --------------------------------------------------------------------------------


def _config_file(tmp_path: Path, **sections: object) -> Path:
    """A config for ``actoros run`` in a subprocess: ``BASE`` without the ``hold`` agent (its
    tool lives in this test package, which the subprocess cannot import)."""
    agents = [a for a in BASE["agents"] if a["name"] != "hold"]
    sections = {"services": None, "agents": agents, **sections}
    path = tmp_path / "gateway.yaml"
    text = config_text(**sections).replace("state_dir: state", f"state_dir: {tmp_path / 'state'}")
    path.write_text(text, encoding="utf-8")
    return path


def _start(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "actoros", "--log-format", "json", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=REPO,
    )


def _wait_for_event(proc: subprocess.Popen[str], event: str, timeout: float = 30) -> dict:  # type: ignore[type-arg]
    """The first JSON log line on the process's stderr with ``event`` (a cross-process wait:
    read lines until it comes or the deadline passes)."""
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {event} line: {seen}"
        if selector.select(timeout=left):
            line = proc.stderr.readline()
            assert line, f"exited before {event}: {seen}"
            seen += line
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == event:
                    return record  # type: ignore[no-any-return]


def test_actoros_run_serves_the_gateway_until_ctrl_c(tmp_path: Path) -> None:
    proc = _start(_config_file(tmp_path))
    try:
        url = _wait_for_event(proc, "gateway.listening")["address"]
        with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
            reply = client.chat.completions.create(model="echo", messages=USER)
            assert reply.choices[0].message.content == "echo: hello"
            chunks = list(client.chat.completions.create(model="fake", messages=USER, stream=True))
            assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""
    assert '"gateway.stopped"' in err and '"system.stopped"' in err


def test_actoros_run_on_a_taken_port_exits_2_with_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        path = _config_file(tmp_path, gateway={"port": port})
        done = subprocess.run(
            [sys.executable, "-m", "actoros", "--log-level", "error", "run", str(path)],
            capture_output=True,
            text=True,
            timeout=50,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"{path}: gateway.port: port {port} is in use: set gateway.port (0 = any free port)"
    ]


async def test_idle_connections_outlive_the_clients_keep_alive(gateway: RunningGateway) -> None:
    """The server keeps an idle connection open longer than httpx (the openai client's
    transport) keeps its own, so the client always closes first: no request is ever sent on
    a connection the server is closing."""
    ref = gateway.system.actors.lookup("/gateway")
    assert ref is not None
    server = ref._cell._actor._server  # type: ignore[union-attr]
    client_expiry = httpx.Limits().keepalive_expiry
    assert client_expiry is not None
    assert server.config.timeout_keep_alive > client_expiry
