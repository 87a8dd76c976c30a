"""Shared test setup: every async test runs on both event loops, quietly logged.

Event loops: pytest-asyncio (1.x) parametrizes each async test with the loop factories that the
``pytest_asyncio_loop_factories`` hook returns, so every async test runs twice, with ids
``[asyncio]`` and ``[uvloop]`` (uvloop only where it is installed). This is pytest-asyncio's
documented replacement for overriding the deprecated ``event_loop_policy`` fixture.

Time: tests use a ``ManualClock`` (``actoros.testing.test_system``) and await events or asks;
they never sleep to let something happen. Every test has a pytest-timeout limit (the project
default, tighter per module where it makes sense).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

import pytest
import pytest_asyncio
import structlog

from actoros import ActorSystem, ManualClock
from actoros.testing import test_system

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency, but the runtime works without
    uvloop = None  # type: ignore[assignment]


def _asyncio_loop() -> asyncio.AbstractEventLoop:
    # the standard library's own loop, whatever global policy someone installed
    return asyncio.DefaultEventLoopPolicy().new_event_loop()


LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": _asyncio_loop}
if uvloop is not None:
    LOOP_FACTORIES["uvloop"] = uvloop.new_event_loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each async test once per event loop implementation."""
    return LOOP_FACTORIES


def pytest_configure(config: pytest.Config) -> None:
    # Runtime logs at warning and above go to stderr (pytest shows them for failing tests);
    # configuring structlog here also keeps the tests independent of actoros.logging.
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """Give every test the suite's structlog configuration back: code under test (the CLI's
    main(), a benchmark) may configure structlog with cached loggers, and a logger cached in
    one test would escape the next test's capture_logs."""
    saved = structlog.get_config()
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture
def clock() -> ManualClock:
    """The manual clock of the ``system`` fixture (time stands still until ``advance``)."""
    return ManualClock()


@pytest_asyncio.fixture(loop_scope="function")
async def system(clock: ManualClock) -> AsyncIterator[ActorSystem]:
    """A started ActorSystem on ``clock``, shut down after the test."""
    async with test_system(clock=clock) as system:
        yield system
