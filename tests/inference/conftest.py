"""Shared setup for the inference tests.

The inference actor's engines run in real time (``FakeEngine``'s ``token_delay`` and
``start_delay`` are loop sleeps), so most tests use ``rt_system``, a system on the event loop's
own clock. Tests that drive ask timeouts use the repository's ``system`` fixture (a
``ManualClock``): a timeout then fires exactly when the test advances the clock.
``HeldEngine`` holds an engine's start until the test opens its gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from actoros import ActorSystem
from actoros.inference.fake_engine import FakeEngine
from actoros.testing import test_system


@pytest_asyncio.fixture(loop_scope="function")
async def rt_system() -> AsyncIterator[ActorSystem]:
    """A started system on the event loop's clock, shut down after the test."""
    async with test_system(real_time=True) as system:
        yield system


class HeldEngine(FakeEngine):
    """A ``FakeEngine`` whose start completes once ``gate`` is set: requests wait meanwhile."""

    def __init__(self, gate: asyncio.Event, **options: Any) -> None:
        super().__init__(**options)
        self.gate = gate

    async def start(self) -> None:
        await self.gate.wait()
        await super().start()
