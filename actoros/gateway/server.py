"""``GatewayActor``: an actor that owns the HTTP server (uvicorn, on the actors' own loop).

Why an actor: the server then starts, stops and restarts like every other part of the
system — ``actoros run`` spawns it as ``/gateway`` after the agent groups, so it is the first
to stop on shutdown and no request arrives for an agent that is gone. Why the same loop:
handlers ask agents and the inference actor directly, with no thread hop per token.

``on_start`` binds the socket itself (a taken port is a clear error, not uvicorn's
``sys.exit``), starts ``uvicorn.Server.serve`` as a task and returns once the server accepts
connections. ``on_stop`` first tells long requests (``shutdown.py``): a request still waiting
answers 503 and a stream sends its last event; then it asks the server to exit, lets open
responses finish for ``shutdown_grace`` seconds, and cancels what is left. If the server task
ends on its own, the actor fails and its supervisor restarts it. Ask ``GatewayAddress()`` for
the URL it serves (``port: 0`` binds any free port); it is logged as ``gateway.listening``.

Each connection is guarded below the app (``connections.py``): its request headers must
arrive within ``gateway.header_timeout``, and at most ``gateway.max_connections`` are served
at once. Each is a file descriptor: the start warns (``gateway.fd_limit``) when the process's
descriptor limit cannot hold that many beside the rest of the system.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import resource
import socket
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import structlog
import uvicorn
from starlette.applications import Starlette

from actoros.config import ConfigError, GatewayConfig, Problem
from actoros.core import Actor, Context

from .app import build_app
from .connections import guarded_protocol
from .host import Host
from .shutdown import Shutdown

__all__ = ["GatewayActor", "GatewayAddress", "GatewayError"]

log = structlog.get_logger("actoros.gateway")

# Seconds an idle keep-alive connection stays open. Longer than clients keep theirs (httpx,
# under the openai client: 5 s), so the client closes first: with uvicorn's default (5 s) a
# request sent on a connection the server is closing at that moment fails ("Connection
# error") and the openai client must retry it.
KEEP_ALIVE = 75
# File descriptors kept for the rest of the process (SQLite files, the engine's pipes and
# sockets, tools) beside the gateway's connections.
FD_RESERVE = 256


class GatewayAddress(msgspec.Struct, frozen=True):
    """Ask the gateway actor: it replies with its URL, ``"http://127.0.0.1:8000"``."""


class _ServerExited(msgspec.Struct, frozen=True):
    error: str


class GatewayError(Exception):
    """The gateway could not start (its port is taken, its host cannot be bound)."""


class _Server(uvicorn.Server):
    """uvicorn's server, embedded: no signal handlers of its own (the CLI owns Ctrl-C, and
    stops the system, which stops this actor), and an event set once it accepts."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class GatewayActor(Actor):
    """Serves ``build_app(host)`` on ``host.config.gateway``'s address (see the module doc).

    ``app_factory`` builds the ASGI app (tests may pass their own); ``shutdown_grace``: seconds
    open responses (streams) may take to finish once the gateway stops.
    """

    def __init__(
        self,
        host: Host,
        *,
        app_factory: Callable[[Host], Starlette] = build_app,
        shutdown_grace: float = 3.0,
    ) -> None:
        self.host = host
        self.config: GatewayConfig = host.config.gateway or GatewayConfig()
        self.app_factory = app_factory
        self.shutdown_grace = shutdown_grace
        self.address = ""
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self._stopping = False
        self._shutdown = Shutdown()

    async def on_start(self) -> None:
        _route_uvicorn_logs()
        app = self.app_factory(self.host)  # a config problem (an unset token env) raises here
        self._shutdown = app.state.shutdown = Shutdown()
        _check_fd_limit(self.config.max_connections)
        self._socket = sock = _bind(self.config.host, self.config.port)
        try:
            bound_host, bound_port = sock.getsockname()[:2]
            server = _Server(
                uvicorn.Config(
                    app,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                    timeout_graceful_shutdown=math.ceil(self.shutdown_grace),
                    timeout_keep_alive=KEEP_ALIVE,
                    server_header=False,
                    http=guarded_protocol(
                        header_timeout=self.config.header_timeout,
                        max_connections=self.config.max_connections,
                    ),
                    ws="none",  # no WebSocket routes: an upgrade request is a plain request
                )
            )
            self._server = server
            self._task = task = asyncio.get_running_loop().create_task(
                server.serve(sockets=[sock]), name=f"gateway {bound_host}:{bound_port}"
            )
            ready = asyncio.ensure_future(server.ready.wait())
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if not server.ready.is_set():
                error = task.exception() if not task.cancelled() else None
                raise GatewayError(f"the gateway's server did not start: {error!r}")
        except BaseException:
            sock.close()
            raise
        host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.address = f"http://{host}:{bound_port}"
        task.add_done_callback(self._exited)
        log.info(
            "gateway.listening",
            actor=self.ctx.path,
            address=self.address,
            auth=bool(self.config.tokens),
        )

    def _exited(self, task: asyncio.Task[None]) -> None:
        if self._stopping:
            return
        error = "cancelled" if task.cancelled() else repr(task.exception())
        self.ctx.self.tell(_ServerExited(error))

    def receive(self, message: Any, ctx: Context) -> Any:
        match message:
            case GatewayAddress():
                return self.address
            case _ServerExited(error=error):
                raise GatewayError(f"the gateway's server stopped on its own: {error}")
        return super().receive(message, ctx)

    async def on_stop(self) -> None:
        self._stopping = True
        self._shutdown.begin()  # waiting requests answer 503, streams send their last event
        server, task = self._server, self._task
        try:
            if server is None or task is None or task.done():
                return
            server.should_exit = True
            # uvicorn lets open responses finish for timeout_graceful_shutdown, then cancels
            done, _ = await asyncio.wait({task}, timeout=self.shutdown_grace + 2.0)
            if not done:
                server.force_exit = True
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            log.info("gateway.stopped", actor=self.ctx.path, address=self.address)
        finally:
            if self._socket is not None:  # uvicorn closes it, unless its task died first
                self._socket.close()


def _check_fd_limit(max_connections: int) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < max_connections + FD_RESERVE:
        log.warning(
            "gateway.fd_limit",
            max_connections=max_connections,
            fd_limit=soft,
            fix=f"raise the limit (ulimit -n {max_connections + FD_RESERVE}) or lower "
            "gateway.max_connections",
        )


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``; ``ConfigError`` naming the fix otherwise."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} is in use: set gateway.port (0 = any free port)"
            raise ConfigError("config", [Problem("gateway.port", None, message)]) from None
        message = f"cannot listen on {host}:{port} ({exc.strerror or exc}): set gateway.host"
        raise ConfigError("config", [Problem("gateway.host", None, message)]) from None


class _StructlogHandler(logging.Handler):
    """uvicorn logs through ``logging``: its warnings and errors go to structlog instead."""

    def emit(self, record: logging.LogRecord) -> None:
        method = log.error if record.levelno >= logging.ERROR else log.warning
        method(
            "gateway.server",
            logger_name=record.name,
            message=record.getMessage(),
            exc_info=record.exc_info,
        )


def _route_uvicorn_logs() -> None:
    logger = logging.getLogger("uvicorn")  # uvicorn.error and uvicorn.access propagate to it
    if not any(isinstance(h, _StructlogHandler) for h in logger.handlers):
        logger.addHandler(_StructlogHandler(level=logging.WARNING))
    logger.propagate = False
