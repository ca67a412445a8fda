"""The console in a real browser: Debian's headless Chromium driven by Playwright, against the
real service with the demo's own data (its sample signals approved one by one, its exits run).

What it shows: the pages render the demo's positions (broker beside ledger), closed trades, the
P&L chart and the per-strategy table; the live part refreshes itself without a page reload; a
halt pressed in the page is acknowledged by the running service; a close pressed in the page
reaches the paper bridge exactly once. Screenshots of the main pages are written to
CONSOLE_SCREENSHOTS (`make screenshots`), else to the test's temporary directory.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from tests.integration.console.support import TOKEN, chromium, chromium_or_skip
from tests.support import make_settings, running_service, threaded_bridge
from trade_executor.store import operator
from trade_executor_dev.demo.narration import Terminal
from trade_executor_dev.demo.story import approve_samples, run_to_exits

if TYPE_CHECKING:
    from playwright.async_api import ViewportSize

pytestmark = pytest.mark.anyio

WAIT_MS = 30_000  # deadline for the page to show something, never a measured duration
VIEWPORT: ViewportSize = {"width": 1360, "height": 1000}


def screenshots_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def close_posts(requests: list[dict[str, object]], symbol: str) -> list[dict[str, object]]:
    return [
        r for r in requests if r["method"] == "POST" and r["path"] == f"/positions/{symbol}/close"
    ]


async def test_the_console_in_a_browser_with_the_demos_data(
    db_url: str, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    chromium_or_skip()
    shots = screenshots_dir(tmp_path)
    # The demo's bridge: prices tick, so its LMT entries fill as they do in `make demo`.
    with threaded_bridge(seed=1, tick_interval=0.05) as bridge:
        settings = make_settings(db_url, bridge)
        async with running_service(settings) as service, chromium() as browser:
            outcomes = await approve_samples(settings, db_url, Terminal(io.StringIO()))
            held = {
                o.sample.symbol: o.row for o in outcomes if o.row and o.row["state"] == "filled"
            }
            assert set(held) == {"AAPL", "TSLA"}, {o.sample.symbol: o.row for o in outcomes}
            base = f"http://127.0.0.1:{service.http_port}"
            page = await browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(WAIT_MS)

            # Read-only: the demo's two open positions, broker quantity beside the ledger's.
            await page.goto(f"{base}/console")
            for symbol, quantity in (("AAPL", held["AAPL"]["filled_qty"]),
                                     ("TSLA", -held["TSLA"]["filled_qty"])):  # fmt: skip
                row = page.locator(f'[data-table="positions"] tr[data-symbol="{symbol}"]')
                await row.locator('[data-qty="ledger"]').filter(has_text=str(quantity)).wait_for()
                await row.locator('[data-qty="broker"]').filter(has_text=str(quantity)).wait_for()
                await row.get_by_text("agree").wait_for()
            assert await page.locator("form[data-action]").count() == 0
            await page.locator('[data-state="mode"]').filter(has_text="PAPER").wait_for()
            await page.locator('[data-state="bridge"]').filter(has_text="bridge up").wait_for()
            await page.screenshot(path=str(shots / "console-read-only.png"), full_page=True)

            # The live part refreshes by itself: a halt written elsewhere (as `trade-executor
            # halt` does) appears without the page being reloaded (the marker survives).
            await page.evaluate("window.notReloaded = true")
            assert service.store is not None
            await operator.change_switch(service.store.pool, True, "written elsewhere", "cli")
            await (
                page.locator('[data-state="halted"]')
                .filter(has_text="HALTED by cli: written elsewhere")
                .wait_for()
            )
            assert await page.evaluate("window.notReloaded === true")
            assert int(await page.locator("#live").get_attribute("data-refreshed") or 0) >= 1
            await operator.change_switch(service.store.pool, False, None, "cli")
            await page.locator('[data-state="halted"]').filter(has_text="not halted").wait_for()

            # Log in: the token goes into the form once; the browser keeps a session cookie.
            await page.get_by_role("link", name="log in to act").click()
            await page.screenshot(path=str(shots / "console-login.png"), full_page=True)
            await page.get_by_label("your name").fill("alice")
            await page.get_by_label("API token").fill(TOKEN)
            await page.get_by_role("button", name="log in").click()
            await page.locator("[data-operator]").filter(has_text="alice").wait_for()
            [cookie] = await page.context.cookies()
            assert cookie["name"] == "te_console"
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert TOKEN not in cookie["value"] and TOKEN not in page.url
            assert TOKEN not in await page.content()

            # A halt pressed in the page, acknowledged by the running service.
            halt = page.locator('form[data-action="halt"]')
            await halt.get_by_label("reason").fill("lunch break")
            await halt.get_by_role("button", name="halt").click()
            flash = page.locator('[data-flash="ok"]')
            await flash.filter(has_text="applied it").wait_for()
            said = await flash.inner_text()
            assert re.fullmatch(
                r"halt: halted: lunch break \(by alice\); the running service \(.+\) applied it",
                said,
            ), said
            assert service.actors is not None and service.actors.executor.halted
            assert await conn.fetchval("SELECT halted FROM executor_control") is True
            await (
                page.locator('[data-state="halted"]')
                .filter(has_text="HALTED by alice: lunch break")
                .wait_for()
            )
            await page.screenshot(path=str(shots / "console-halted.png"), full_page=True)
            resume = page.locator('form[data-action="resume"]')
            await resume.get_by_label("reason").fill("back")
            await resume.get_by_role("button", name="resume").click()
            await page.locator('[data-flash="ok"]').filter(has_text="resumed").wait_for()
            assert not service.actors.executor.halted

            # A close pressed in the page reaches the paper bridge once.
            assert close_posts(bridge.requests(), "AAPL") == []
            aapl = page.locator('[data-table="positions"] tr[data-symbol="AAPL"]')
            await aapl.get_by_text("close…").click()
            close = aapl.locator('form[data-action="close"]')
            await close.get_by_label("reason").fill("done for the day")
            await close.get_by_role("button", name="close AAPL at market").click()
            await page.locator("[data-flash]").filter(has_text="AAPL").wait_for()
            said = await page.locator("[data-flash]").inner_text()
            quantity = held["AAPL"]["filled_qty"]
            assert re.fullmatch(
                rf"close: AAPL closed: close {quantity} @ [0-9.]+, realized P&L -?[0-9.]+ "
                r"\(-?[0-9.]+ R\)",
                said,
            ), said
            assert len(close_posts(bridge.requests(), "AAPL")) == 1

            # The demo's exits for the rest; the page then shows today's closes, the chart
            # and the per-strategy table, refreshed in place.
            await run_to_exits(db_url, bridge.url, outcomes, Terminal(io.StringIO()))
            await page.locator('[data-count="closed"]').filter(has_text="2").wait_for()
            chart = page.locator('svg.chart[data-points="2"]')
            await chart.wait_for()
            realized = await conn.fetchval(
                "SELECT sum(realized_pnl) FROM executions WHERE position_state = 'closed'"
            )
            assert await chart.get_attribute("data-total") == str(realized)
            await page.locator('[data-table="strategies"] td').filter(has_text="demo").wait_for()
            await (
                page.locator('[data-table="closed"] tr[data-symbol="TSLA"]')
                .get_by_text("take_profit")
                .wait_for()
            )
            assert len(close_posts(bridge.requests(), "AAPL")) == 1  # still once
            await page.screenshot(path=str(shots / "console.png"), full_page=True)

            # One execution's page: its whole trail, the console's close request in it.
            await page.locator('[data-table="closed"] tr[data-symbol="AAPL"] a').click()
            events = page.locator('[data-table="events"]')
            await events.get_by_text("position.close_requested").wait_for()
            await events.get_by_text("done for the day").first.wait_for()
            count = await conn.fetchval(
                "SELECT count(*) FROM execution_events WHERE execution_id = $1",
                held["AAPL"]["id"],
            )
            await page.locator('[data-count="events"]').filter(has_text=str(count)).wait_for()
            await page.screenshot(path=str(shots / "console-execution.png"), full_page=True)
