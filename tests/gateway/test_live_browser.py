"""The live page in headless Chromium (Debian's ``chromium``, driven by Playwright).

The page is served by the shared fixture's real gateway over a real system on the fake
engine. A real crash: the fake engine is killed and the next request makes the inference
actor fail, so its supervisor restarts it; the test waits (with a deadline) until the page's
restart count for ``/kernel/inference`` goes up. With ``ACTOROS_SCREENSHOT=PATH`` the second
test saves a screenshot of the page under real traffic to PATH (docs/live-page.png is made
this way).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from actoros import LifecycleEvent
from actoros.agents import AgentError, UserMessage

from .conftest import RunningGateway, engine_ready

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"Debian's chromium is not installed at {CHROMIUM} (make setup installs it with "
        "apt-get when it can; as root: apt-get install -y chromium)",
    ),
]

DEADLINE_MS = 20_000  # how long the page gets to show what the test waits for


@contextlib.asynccontextmanager
async def browser_page() -> AsyncIterator[Page]:
    async with async_playwright() as playwright:
        # we run as root in containers: Chromium's sandbox needs --no-sandbox there
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            yield page
        finally:
            await browser.close()


def restarts_are(path: str, count: int) -> str:
    """JS: the page's restart count for ``path`` is ``count``."""
    return (
        f"document.querySelector('tr[data-path=\"{path}\"] td.restarts')?.textContent === '{count}'"
    )


async def crash_the_inference_actor(gateway: RunningGateway) -> None:
    """Kill the fake engine; the next request fails the inference actor, which restarts."""
    restarted = asyncio.Event()

    def seen(event: LifecycleEvent) -> None:
        if event.path == "/kernel/inference" and event.kind == "restarted":
            restarted.set()

    unsubscribe = gateway.system.actors.events.subscribe(seen, LifecycleEvent)
    try:
        gateway.engine().kill()
        faq = gateway.system.agent("faq")
        assert faq is not None
        # this request, or one of the test's traffic, meets the dead engine
        with contextlib.suppress(AgentError):
            await faq.ask(UserMessage(text="are you there?"), timeout=10)
        await asyncio.wait_for(restarted.wait(), DEADLINE_MS / 1000)
    finally:
        unsubscribe()
    await engine_ready(gateway.system)


async def test_the_page_shows_a_crashed_actor_restart(gateway: RunningGateway) -> None:
    async with browser_page() as page:
        await page.goto(f"{gateway.url}/")
        await page.wait_for_function(
            "document.getElementById('status').dataset.state === 'live'", timeout=DEADLINE_MS
        )
        await page.wait_for_function(restarts_are("/kernel/inference", 0), timeout=DEADLINE_MS)
        row = page.locator('tr[data-path="/kernel/inference"]')
        assert await row.locator("td.kind").text_content() == "InferenceActor"
        assert await row.get_attribute("data-state") == "running"
        assert await page.locator('tr[data-path="/agents/faq"]').count() == 1
        assert await page.locator("#system").text_content() == "gw"

        await crash_the_inference_actor(gateway)
        await page.wait_for_function(restarts_are("/kernel/inference", 1), timeout=DEADLINE_MS)
        assert "bumped" in (await row.get_attribute("class") or "")  # highlighted
        assert await page.locator("#total-restarts").text_content() == "1"
        # still the same page: the tree was updated in place, not reloaded
        assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1


async def test_the_page_shows_live_activity_and_the_throughput_chart(
    gateway: RunningGateway,
) -> None:
    screenshot = os.environ.get("ACTOROS_SCREENSHOT")
    samples = 40 if screenshot else 3  # a screenshot deserves a longer chart
    router, echo = gateway.system.agent("router"), gateway.system.agent("echo")
    assert router is not None and echo is not None
    stop = asyncio.Event()

    async def user(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            await router.ask(UserMessage(text=f"question {n}.{i}: when do you open?"), timeout=10)
            await echo.ask(UserMessage(text=f"ping {n}.{i}"), timeout=10)
            if screenshot and i % (n + 2) == 0:  # uneven traffic draws a livelier chart
                await asyncio.sleep(0.05 * n)

    users = [asyncio.ensure_future(user(n)) for n in range(4)]
    try:
        async with browser_page() as page:
            await page.goto(f"{gateway.url}/?interval=0.5")
            await page.wait_for_function(
                "document.querySelectorAll('#chart path.line').length > 0 && "
                "Number(document.querySelector('tr[data-path=\"/agents/faq\"] td.processed')"
                ".textContent.replace(/,/g, '')) > 0",
                timeout=DEADLINE_MS,
            )
            # the chart fills one point a second; tokens/s above zero while agents answer
            await page.wait_for_function(
                f"(() => {{ const d = document.querySelector('#chart path.line')"
                f"?.getAttribute('d') || ''; return d.split('L').length >= {samples}; }})()",
                timeout=DEADLINE_MS + samples * 1500,
            )
            tokens_now = await page.locator("#tokens-now").text_content()
            assert tokens_now not in (None, "–") and float(tokens_now.replace(",", "")) > 0
            numbers = await page.locator("#inference-numbers").text_content()
            assert numbers is not None and "engine ready" in numbers
            if screenshot:
                await crash_the_inference_actor(gateway)  # a restart, highlighted
                await page.wait_for_function(
                    restarts_are("/kernel/inference", 1), timeout=DEADLINE_MS
                )
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=screenshot, full_page=True)
    finally:
        stop.set()
        for task in users:
            task.cancel()
        await asyncio.gather(*users, return_exceptions=True)
