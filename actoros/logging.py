"""Logging for actoros: structlog, pretty on a terminal, JSON lines otherwise.

Every actoros module logs through ``structlog.get_logger("actoros.<area>")`` with an event name
and key/value pairs; ``actor`` (the path) and ``message_type`` are the keys that name what an
event is about::

    log.info("dead_letter", actor="/a/b", message_type="Ping", reason="stopped")

``configure()`` sets up where those lines go. The runtime calls it with the defaults when the
first ``ActorSystem`` starts and structlog is not configured yet; the CLI calls it from its
``--log-level``/``--log-format`` options. Call it yourself, before the first log line, to
choose. Calls below the level return at once, before any processor runs, and loggers cache
their configuration on first use; so configuring again later does not change loggers that
have already logged.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["configure", "get_logger"]

Format = Literal["auto", "console", "json"]

_LEVELS = ("debug", "info", "warning", "error", "critical")


def configure(
    level: str | int = "info",
    fmt: Format = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for actoros. Calling it again with the same arguments changes nothing.

    ``level``: a level name (``"debug"`` ... ``"critical"``, any case) or a ``logging`` level
    number; calls below it are dropped before any processing. ``fmt``: ``"console"`` (aligned,
    coloured on a TTY), ``"json"`` (one JSON object a line) or ``"auto"`` (console when the
    stream is a terminal, else JSON). ``stream``: where lines go; ``None`` = whatever
    ``sys.stderr`` is when a line is written.

    Every line carries ``event``, ``level``, ``timestamp`` (ISO 8601, UTC) and ``logger`` (the
    name given to ``get_logger``).
    """
    threshold = _level_number(level)
    if fmt == "auto":
        target = stream if stream is not None else sys.stderr
        fmt = "console" if _isatty(target) else "json"
    renderer: list[Processor]
    if fmt == "console":
        target = stream if stream is not None else sys.stderr
        renderer = [structlog.dev.ConsoleRenderer(colors=_isatty(target))]
    elif fmt == "json":
        renderer = [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        raise ValueError(f"unknown log format {fmt!r}; expected 'auto', 'console' or 'json'")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=LineLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str, **initial_values: Any) -> Any:
    """``structlog.get_logger(name)``: a lazy logger whose lines carry ``logger=name``."""
    return structlog.get_logger(name, **initial_values)


def add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Processor: add ``logger`` (the name passed to ``get_logger``) when there is one."""
    name = getattr(logger, "name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


class LineLogger:
    """Writes each rendered line to a stream and flushes it.

    With ``stream=None`` it looks ``sys.stderr`` up per line, so test runners and tools that
    swap ``sys.stderr`` after configuration still see the output.
    """

    __slots__ = ("name", "_stream")

    _lock = threading.Lock()  # lines written from worker threads do not interleave

    def __init__(self, name: str | None = None, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    def msg(self, message: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        with self._lock:
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def __repr__(self) -> str:
        return f"<LineLogger(name={self.name!r}, stream={self._stream!r})>"


class LineLoggerFactory:
    """structlog logger factory: ``get_logger(name)`` → a ``LineLogger`` that knows its name."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def __call__(self, *args: Any) -> LineLogger:
        name = args[0] if args and isinstance(args[0], str) else None
        return LineLogger(name, self._stream)


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = level.lower()
    if name not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(_LEVELS)}")
    return int(getattr(logging, name.upper()))


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
