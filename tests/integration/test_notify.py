"""Notifications end to end: structured log events -> the tap -> the Notifier actor -> Apprise
(`json://`) -> a real local HTTP receiver. Also: a receiver that hangs or answers 500 costs
nothing but counted failures, and NOTIFY_URLS' secrets stay out of the log and check-config."""

from __future__ import annotations

import io
from typing import Any

import anyio
import pytest

from tests.support.receiver import SECRET, Receiver
from trade_executor.cli.main import main
from trade_executor.config.sources import load_settings
from trade_executor.notify.actor import Notifier
from trade_executor.observability.logging import configure_logging, get_logger
from trade_executor.observability.metrics import Metrics

pytestmark = pytest.mark.anyio


async def _until(predicate: Any, what: str) -> None:
    with anyio.fail_after(10):
        while not predicate():
            await anyio.sleep(0.01)
    assert predicate(), what


def _count(metrics: Metrics, kind: str, outcome: str) -> float:
    return float(metrics.notifications.labels(kind=kind, outcome=outcome)._value.get())


async def test_a_scripted_session_reaches_the_receiver(receiver: Receiver) -> None:
    settings = load_settings(environ={}, notify_urls=receiver.url())
    out = io.StringIO()
    configure_logging("json", "info", stream=out, secrets=settings.secret_values())
    metrics = Metrics()
    notifier = Notifier(settings, metrics, retry_delays=(0.05,))
    log = get_logger("test")
    async with anyio.create_task_group() as tg:
        await tg.start(notifier.run)
        log.info(
            "order.filled",
            symbol="AAPL",
            side="BUY",
            filled_qty=133,
            avg_fill_price="150.00",
            order_id=7,
            execution_id="3f2a91c0-aaaa",
        )
        log.info(
            "position.closed",
            symbol="AAPL",
            exit_reason="stop_loss",
            exit_qty=133,
            exit_avg_price="145.00",
            entry_price="150.00",
            realized_pnl="-665.00",
            r_multiple="-1.0000",
            risk_amount="665.00",
            execution_id="3f2a91c0-aaaa",
        )
        log.error("executor.breaker_tripped", failures=3, reason="breaker: broker: refused")
        log.error(
            "execution.unknown", symbol="MSFT", reason="answer_lost", execution_id="9b1c0000-bbbb"
        )
        log.info("order.submitted", symbol="AAPL")  # not a notification
        await _until(lambda: _count(metrics, "needs_operator", "sent") == 1, "all four sent")
        tg.cancel_scope.cancel()
    titles = [b["title"] for b in receiver.bodies]
    assert titles == [
        "Filled: BUY AAPL 133 @ 150.00",
        "Closed AAPL (stop_loss): P&L -665.00, R -1.0000",
        "Breaker halted the service: breaker: broker: refused",
        "Needs an operator: MSFT (execution.unknown)",
    ]
    assert "145.00" in receiver.bodies[1]["message"]
    assert "trade-executor show 9b1c0000" in receiver.bodies[3]["message"]
    assert SECRET not in out.getvalue()


async def test_a_hanging_or_failing_receiver_costs_only_counted_failures(
    receiver: Receiver,
) -> None:
    settings = load_settings(environ={}, notify_urls=receiver.url())
    out = io.StringIO()
    configure_logging("json", "info", stream=out, secrets=settings.secret_values())
    metrics = Metrics()
    notifier = Notifier(settings, metrics, retry_delays=(0.05,), send_timeout=1.0, queue_size=2)
    log = get_logger("test")
    receiver.hang.clear()
    receiver.status = 500
    async with anyio.create_task_group() as tg:
        await tg.start(notifier.run)
        log.info("order.filled", symbol="A", filled_qty=1, avg_fill_price="1")
        await anyio.to_thread.run_sync(receiver.arrived.wait, 5)
        # The receiver holds the first message: the log calls of the next events return at
        # once (the executor's path), the oldest queued ones are dropped and counted.
        for i in range(6):
            log.info("order.filled", symbol=f"S{i}", filled_qty=1, avg_fill_price="1")
        await _until(lambda: _count(metrics, "filled", "dropped") >= 1, "a drop counted")
        receiver.hang.set()
        await _until(
            lambda: _count(metrics, "filled", "failed") >= 2, "failures counted after retries"
        )
        tg.cancel_scope.cancel()
    assert _count(metrics, "filled", "sent") == 0
    assert '"event": "notify.failed"' in out.getvalue()
    assert SECRET not in out.getvalue()


def test_check_config_never_shows_the_urls(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1:5432/x")
    monkeypatch.setenv("NOTIFY_URLS", f"tgram://123456:{SECRET}/98765,json://localhost/{SECRET}")
    assert main(["check-config"]) == 0
    shown = capsys.readouterr()
    assert "NOTIFY_URLS=tgram://***,json://***" in shown.out
    assert SECRET not in shown.out + shown.err


def test_notify_test_says_which_target_answered(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second target refuses (500 from a receiver that is not there is a connect error).
    monkeypatch.setenv("NOTIFY_URLS", f"{receiver.url()},json://127.0.0.1:9/{SECRET}?cto=1")
    assert main(["notify-test"]) == 1
    shown = capsys.readouterr()
    assert "target 1 (json://***): answered" in shown.out
    assert "target 2 (json://***): did not accept it" in shown.out
    assert SECRET not in shown.out + shown.err
    assert receiver.bodies[0]["title"] == "trade-executor test notification"
