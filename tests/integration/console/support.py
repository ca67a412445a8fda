"""What the console's tests share: a Chromium from Debian's packages driven by Playwright (never
a browser Playwright downloads), a client of the console that logs in as a browser would, and
the console's forms read out of its pages."""

from __future__ import annotations

import html
import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "test-token"  # make_settings' API_TOKEN


def chromium_or_skip() -> str:
    """The path of Debian's Chromium, or skip saying how to get it (.ci/run installs it)."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("the Python package playwright is not installed (make install)")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(
            f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does), or set "
            "CONSOLE_CHROMIUM"
        )
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    path = chromium_or_skip()
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def hidden(html: str, name: str) -> str:
    """The value of the first hidden field `name` in a page."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found is not None, f"no {name} field in the page"
    return found.group(1)


@asynccontextmanager
async def console_client(port: int | None) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{port}"
    # Origin as a browser sends it with a form; Connection: close leaves nothing open at stop.
    headers = {"Origin": base, "Connection": "close"}
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        yield client


async def log_in(client: httpx.AsyncClient, operator: str = "alice") -> str:
    """Log in through the form; the session's CSRF token, as the pages carry it."""
    answer = await client.post("/console/login", data={"operator": operator, "token": TOKEN})
    assert answer.status_code == 303, answer.text
    page = await client.get("/console")
    return hidden(page.text, "csrf")


async def act(
    client: httpx.AsyncClient, action: str, csrf: str, **fields: Any
) -> tuple[httpx.Response, str]:
    """POST an action form; (its answer, the page it leads to with what the service did)."""
    answer = await client.post(f"/console/actions/{action}", data={"csrf": csrf, **fields})
    if answer.status_code != 303:
        return answer, answer.text
    page = await client.get(answer.headers["location"])
    return answer, page.text


def flashes(page: str) -> list[tuple[str, str]]:
    """(ok|fail, message) of each answer shown in a page."""
    return [
        (kind, html.unescape(re.sub(r"\s+", " ", text).strip()))
        for kind, text in re.findall(r'data-flash="(ok|fail)">(.*?)</div>', page, re.S)
    ]
