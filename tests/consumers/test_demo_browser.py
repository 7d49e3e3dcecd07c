"""The chat demo in a real browser: two pages on two worker processes talk to each other.

Headless Chromium (Debian's, /usr/bin/chromium; .ci/run installs it) driven by
Playwright for Python. Playwright's own browser download cannot work offline, so the
test names the executable.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator

import pytest

from tests.consumers.conftest import cli_process, free_port

CHROMIUM = os.environ.get("CHANLAYERS_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, which this
# closed network refuses.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    from playwright.async_api import Browser, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None

if async_playwright is None or shutil.which(CHROMIUM) is None:
    why = "needs playwright (pip install playwright) and chromium (apt-get install chromium)"
    if os.environ.get("CHANLAYERS_CI"):
        raise RuntimeError(f"the browser test {why}; .ci/run installs both")
    pytest.skip(f"the browser test {why}", allow_module_level=True)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium, closed after the test."""
    assert async_playwright is not None
    async with async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_chat(
    browser: Browser, url: str, user: str, failed: list[str], width: int = 1000
) -> tuple[Page, int]:
    """A page in the lobby as user, and the pid of the worker serving its socket.

    The URL of every response of 400 and over lands in failed.
    """
    # A context of its own (its own localStorage), with the name set before the page's
    # script runs: one socket per page, so one join and one leave line.
    context = await browser.new_context(viewport={"width": width, "height": 700})
    await context.add_init_script(f"localStorage.setItem('chanlayers-user', '{user}')")
    page = await context.new_page()
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    await page.goto(url)
    status = page.locator("#status")
    await status.filter(has_text=re.compile(r"served by worker pid \d+")).wait_for(timeout=10_000)
    found = re.search(r"pid (\d+)", await status.inner_text())
    assert found is not None
    return page, int(found.group(1))


@pytest.mark.timeout(120)
async def test_two_pages_on_two_workers_chat_in_a_real_browser(
    browser: Browser, redis_layer_url: str
) -> None:
    failed: list[str] = []
    port = free_port()
    url = f"http://127.0.0.1:{port}/#lobby"
    async with cli_process(
        "demo", "--workers", "2", "--port", str(port), "--layer", redis_layer_url
    ) as server:
        async with asyncio.timeout(60):
            while True:  # until uvicorn listens
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.2)
                    continue
                writer.close()
                await writer.wait_closed()
                break
            ann, ann_pid = await open_chat(browser, url, "ann", failed)
            while True:  # reopen until the second page is served by the other worker
                bob, bob_pid = await open_chat(browser, url, "bob", failed, width=390)
                if bob_pid != ann_pid:
                    break
                await bob.close()

        # The join line names the user, on the other worker's page.
        joined = ann.locator("#log li", has_text=f"bob joined (worker pid {bob_pid})")
        await expect(joined).to_have_count(1, timeout=10_000)

        # The deployment's counter comes from the layer's shared figures.
        counter = ann.locator("#deployment")
        await expect(counter).to_have_text(re.compile(r"^[\d,]+$"), timeout=10_000)
        before = int((await counter.inner_text()).replace(",", ""))

        await ann.fill("#text", "hello from a browser")
        await ann.click("button")
        line = bob.locator("#log li", has_text="hello from a browser")
        await line.wait_for(timeout=10_000)
        assert (await line.inner_text()).startswith("ann: hello from a browser")

        # Both pages got it (a delivery each, on two workers): the whole deployment's
        # counter moves on ann's page, and each page counts what it saw in its room.
        async with asyncio.timeout(15):
            while int((await counter.inner_text()).replace(",", "")) < before + 2:
                await asyncio.sleep(0.2)
        await expect(bob.locator("#room-count")).to_have_text("1")
        await expect(ann.locator("#room-count")).to_have_text("1")

        # On a 390 px wide screen the Send button is whole and usable.
        box = await bob.locator("button").bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 390
        await bob.fill("#text", "from a phone")
        await bob.click("button")
        await ann.locator("#log li", has_text="bob: from a phone").wait_for(timeout=10_000)

        await bob.close()
        left = ann.locator("#log li", has_text=f"bob left (worker pid {bob_pid})")
        await expect(left).to_have_count(1, timeout=10_000)
        assert failed == []  # no 404, for the favicon or anything else
        assert server.returncode is None
