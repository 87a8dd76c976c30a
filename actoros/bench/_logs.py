"""Logging while a benchmark runs: the bench's progress at INFO, the runtime's events at ERROR.

The runtime logs a warning per actor failure and an info line per restart; printed to a
terminal they would measure the terminal, not the runtime. So, for the duration of a run,
structlog's global configuration is a level filter at ERROR (its cheapest form: calls below
the level are no-ops) and the bench reports progress through its own logger, which does not
depend on that configuration. The log calls in the runtime still run, as they do for users
who raise the level. The previous configuration is restored afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import structlog


def _progress_logger() -> Any:
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        context_class=dict,
        logger_name="actoros.bench",
    )


class _Progress:
    """The bench's logger; resolved at each call so that it writes to the current stderr."""

    def info(self, event: str, **kw: Any) -> None:
        _progress_logger().info(event, **kw)

    def error(self, event: str, **kw: Any) -> None:
        _progress_logger().error(event, **kw)


progress = _Progress()


@contextlib.contextmanager
def bench_logging() -> Iterator[None]:
    """Quiet the runtime's logs (ERROR and up, to stderr) for the duration of a run."""
    saved = structlog.get_config() if structlog.is_configured() else None
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        if saved is not None:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()
