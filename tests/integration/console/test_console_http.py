"""The console over HTTP against the real service (PostgreSQL, the executor, a paper bridge):
read-only without the token, the session cookie (never the token), forms refused from another
origin or without the session's CSRF token, and each action answered with what the service did.
The browser itself: test_console_browser.py."""

from __future__ import annotations

import html
from decimal import Decimal

import asyncpg
import httpx
import pytest

from tests.integration.actors.test_deadlines_pg import left_submitting
from tests.integration.console.support import TOKEN, act, console_client, flashes, hidden, log_in
from tests.support import ThreadedBridge, make_settings, running_service, wait_for
from trade_executor.domain.execution import Changes
from trade_executor.domain.states import Transition
from trade_executor.store.postgres import PgStore

pytestmark = pytest.mark.anyio

HALTED = "SELECT halted FROM executor_control WHERE id = 1"


async def halted(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(HALTED))


async def test_read_only_without_the_token(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with (
        running_service(make_settings(db_url, bridge)) as service,
        console_client(service.http_port) as client,
    ):
        page = await client.get("/console")
        assert page.status_code == 200
        assert 'data-state="role">this instance: active' in page.text
        assert 'data-state="mode">PAPER' in page.text
        assert 'data-state="halted">not halted' in page.text
        assert 'data-state="bridge">bridge up' in page.text
        assert "data-action=" not in page.text and 'name="csrf"' not in page.text
        assert "log in to act" in page.text
        fragment = await client.get("/console/fragment")
        assert fragment.status_code == 200 and "<html" not in fragment.text
        # An action without a session is refused and changes nothing.
        answer = await client.post(
            "/console/actions/halt", data={"csrf": "x", "reason": "not logged in"}
        )
        assert answer.status_code == 401
        assert "read-only" in answer.text
        assert not await halted(conn)


async def test_login_gives_a_session_cookie_never_the_token(
    db_url: str, bridge: ThreadedBridge
) -> None:
    async with (
        running_service(make_settings(db_url, bridge)) as service,
        console_client(service.http_port) as client,
    ):
        wrong = await client.post("/console/login", data={"operator": "mallory", "token": "guess"})
        assert wrong.status_code == 401
        assert "not the service's API token" in html.unescape(wrong.text)
        assert "te_console" not in wrong.headers.get("set-cookie", "")

        answer = await client.post("/console/login", data={"operator": "alice", "token": TOKEN})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "Path=/console" in cookie
        assert TOKEN not in cookie and TOKEN not in answer.headers["location"]
        for path in ("/console", "/console/fragment", "/console/login"):
            shown = await client.get(path)
            assert TOKEN not in shown.text and TOKEN not in str(shown.url)
        page = await client.get("/console")
        assert "data-operator>alice<" in page.text
        assert 'data-action="halt"' in page.text


async def test_forms_from_another_origin_or_without_the_csrf_token_are_refused(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with (
        running_service(make_settings(db_url, bridge)) as service,
        console_client(service.http_port) as client,
    ):
        csrf = await log_in(client)
        form = {"csrf": csrf, "reason": "forged"}
        elsewhere = await client.post(
            "/console/actions/halt", data=form, headers={"Origin": "http://evil.example"}
        )
        assert elsewhere.status_code == 403
        # No Origin and no Referer: refused too (a browser always sends one with a form).
        base = str(client.base_url)
        async with httpx.AsyncClient(base_url=base, cookies=client.cookies) as bare:
            unsigned = await bare.post("/console/actions/halt", data=form)
        assert unsigned.status_code == 403
        stale = await client.post(
            "/console/actions/halt", data={"csrf": csrf + "x", "reason": "stale"}
        )
        assert stale.status_code == 403
        assert not await halted(conn)
        # A Referer of another site is refused; the console's own (no Origin sent) accepted.
        async with httpx.AsyncClient(base_url=base, cookies=client.cookies) as bare:
            foreign = await bare.post(
                "/console/actions/halt",
                data={"csrf": csrf, "reason": "forged"},
                headers={"Referer": "http://evil.example/console"},
            )
            assert foreign.status_code == 403
            assert not await halted(conn)
            own = await bare.post(
                "/console/actions/halt",
                data={"csrf": csrf, "reason": "lunch"},
                headers={"Referer": f"{base}/console"},
            )
        assert own.status_code == 303
        assert await halted(conn)


async def test_halt_and_resume_are_answered_with_what_the_service_did(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with (
        running_service(make_settings(db_url, bridge)) as service,
        console_client(service.http_port) as client,
    ):
        csrf = await log_in(client)
        answer, page = await act(client, "halt", csrf, reason="")
        assert answer.status_code == 303
        assert flashes(page) == [
            ("fail", "halt: not done, give a reason: it is recorded with what you do")
        ]
        assert not await halted(conn)

        answer, page = await act(client, "halt", csrf, reason="IB maintenance")
        [(kind, said)] = flashes(page)
        assert kind == "ok", said
        assert said.startswith("halt: halted: IB maintenance (by alice); the running service (")
        assert said.endswith(") applied it")
        assert await halted(conn)
        assert service.actors is not None and service.actors.executor.halted
        assert "HALTED by alice: IB maintenance" in page

        # A second halt with another reason is refused unless "replace" is ticked.
        _, page = await act(client, "halt", csrf, reason="another")
        [(kind, said)] = flashes(page)
        assert kind == "fail" and 'tick "replace the reason"' in said

        _, page = await act(client, "resume", csrf, reason="maintenance over")
        [(kind, said)] = flashes(page)
        assert kind == "ok", said
        assert said.startswith("resume: resumed (by alice (console: maintenance over); ")
        assert not await halted(conn)
        assert not service.actors.executor.halted
        changed_by = await conn.fetchval("SELECT changed_by FROM executor_control")
        assert changed_by == "alice (console: maintenance over)"


async def test_an_unknown_execution_is_listed_and_resolved_from_its_page(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    async with running_service(make_settings(db_url, bridge)) as service:
        assert service.store is not None
        store = PgStore(service.store.pool)
        intent = await left_submitting(conn, store, "LOST", None)
        await store.apply(intent.id, Transition.LOSE_TRACK, Changes(reason="lost"))
        async with console_client(service.http_port) as client:
            overview = await client.get("/console")
            assert f"/console/executions/{intent.id}" in overview.text
            assert f"trade-executor resolve {str(intent.id)[:8]} --as" in overview.text
            csrf = await log_in(client)
            page = await client.get(f"/console/executions/{intent.id}")
            assert "data-needs-operator" in page.text and 'data-action="resolve"' in page.text
            assert "execution.submit_intent" in page.text or "events" in page.text
            answer, shown = await act(
                client,
                "resolve",
                hidden(page.text, "csrf"),
                execution_id=str(intent.id),
                outcome="failed",
                reason="no order in TWS",
                back=f"/console/executions/{intent.id}",
            )
            assert answer.headers["location"] == f"/console/executions/{intent.id}"
            [(kind, said)] = flashes(shown)
            assert (kind, said) == ("ok", f"resolve: execution {intent.id} resolved as failed")
            row = await conn.fetchrow(
                "SELECT state, reason FROM executions WHERE id = $1", intent.id
            )
            assert row is not None and row["state"] == "failed"
            assert row["reason"] == "resolved_failed by alice (console: no order in TWS)"
            # Resolved once: the same form again is refused with the CLI's sentence.
            _, shown = await act(
                client,
                "resolve",
                csrf,
                execution_id=str(intent.id),
                outcome="failed",
                reason="again",
            )
            [(kind, said)] = flashes(shown)
            assert kind == "fail" and "a final execution cannot be resolved" in said


async def test_without_an_api_token_the_console_stays_read_only(
    db_url: str, bridge: ThreadedBridge
) -> None:
    async with (
        running_service(make_settings(db_url, bridge, api_token=None)) as service,
        console_client(service.http_port) as client,
    ):
        form = await client.get("/console/login")
        assert "Actions are disabled: the service has no API_TOKEN" in form.text
        answer = await client.post("/console/login", data={"operator": "a", "token": ""})
        assert answer.status_code == 401 and "te_console" not in answer.headers.get(
            "set-cookie", ""
        )


async def test_protect_and_close_say_plainly_when_nothing_was_done(
    db_url: str, bridge: ThreadedBridge
) -> None:
    async with (
        running_service(make_settings(db_url, bridge)) as service,
        console_client(service.http_port) as client,
    ):
        csrf = await log_in(client)
        _, page = await act(client, "close", csrf, symbol="NOPE", reason="flat")
        assert flashes(page) == [("fail", "close: no open position for NOPE")]
        # No open position to protect (the protect operation of broker_truth.py): said,
        # nothing sent.
        _, page = await act(
            client, "protect", csrf, symbol="AAPL", stop_loss="145", reason="unprotected"
        )
        [(kind, said)] = flashes(page)
        assert kind == "fail" and "no open position for AAPL" in said
        _, page = await act(client, "protect", csrf, symbol="AAPL", stop_loss="-1", reason="x")
        assert flashes(page) == [("fail", "protect: not done, stop loss must be a positive price")]
        # (At start-up the service probes the bridge's endpoints: those name no symbol of ours.)
        posts = [r for r in bridge.requests() if r["path"].startswith("/positions/AAPL")]
        assert posts == []
        missing = await client.get("/console/executions/zzzz")
        assert missing.status_code == 404 and "is not an id" in html.unescape(missing.text)
        unknown = await client.get("/console/executions/00000000")
        assert unknown.status_code == 404


async def test_a_standbys_console_shows_it_and_its_halt_reaches_the_active_instance(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    settings = make_settings(db_url, bridge)
    async with (
        running_service(settings) as active,
        running_service(settings, role="standby") as standby,
        console_client(standby.http_port) as client,
    ):
        shown = await client.get("/console")
        assert 'data-state="role">this instance: standby' in shown.text
        assert 'data-state="service">active instance ' in shown.text
        csrf = await log_in(client)
        _, page = await act(client, "halt", csrf, reason="from the standby")
        [(kind, said)] = flashes(page)
        assert kind == "ok" and said.endswith(") applied it"), said
        assert active.actors is not None and active.actors.executor.halted
        assert await halted(conn)


async def test_a_position_closed_at_an_unknown_price_is_priced_from_its_page(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """`resolve ID --exit-price P` from the console: the bridge restarted with another client id
    and IB filled the stop meanwhile; the reconciler closed the position at the stop's P&L, price
    unknown. Its page has an exit price field, checked as the command line checks it (one
    sentence for a price that is none), and the running service books the real P&L."""
    from tests.integration.test_bridge_restart_positions import child, realized_reaches
    from tests.integration.test_exits_pg import enter, row, settings_for

    settings = settings_for(db_url, bridge, reconcile_interval=0.5)
    async with running_service(settings) as service:
        assert service.actors is not None
        signal_id = await enter(conn, bridge, "PYPL")
        stop = child(bridge, (await row(conn, signal_id))["order_id"], "STP")
        bridge.admin("POST", "/admin/restart", {"client_id_changed": True})
        bridge.admin("POST", "/admin/fill", {"order_id": stop, "price": 144.50})
        await wait_for(
            conn,
            "SELECT position_state FROM executions WHERE signal_id = $1",
            signal_id,
            expect="closed",
            timeout=30,
        )
        execution_id = (await row(conn, signal_id))["id"]
        page_path = f"/console/executions/{execution_id}"
        async with console_client(service.http_port) as client:
            csrf = await log_in(client)
            page = await client.get(page_path)
            assert "data-needs-operator" in page.text and 'name="exit_price"' in page.text
            assert f"trade-executor resolve {str(execution_id)[:8]} --exit-price P" in page.text
            overview = await client.get("/console")
            assert f"resolve {str(execution_id)[:8]} --exit-price P" in overview.text
            for wrong, said in (
                ("abc", "exit price: 'abc' is not a price"),
                ("-1", "exit price: a price must be a positive number, got '-1'"),
            ):
                _, shown = await act(
                    client, "resolve", csrf, execution_id=str(execution_id),
                    exit_price=wrong, reason="TWS fill",
                )  # fmt: skip
                [(kind, text)] = flashes(shown)
                assert kind == "fail" and said in text and "Traceback" not in text
            assert (await row(conn, signal_id))["exit_avg_price"] is None  # nothing done
            _, shown = await act(
                client, "resolve", csrf, execution_id=str(execution_id),
                exit_price="144.50", reason="TWS fill",
            )  # fmt: skip
            [(kind, text)] = flashes(shown)
            assert kind == "ok", text
            assert "closed: external 133 @ 144.5000, realized P&L -731.50" in text
            priced = await row(conn, signal_id)
            assert (priced["exit_avg_price"], priced["realized_pnl"]) == (
                Decimal("144.5000"), Decimal("-731.50"))  # fmt: skip
            await realized_reaches(service.actors.executor.riskbook, Decimal("-731.50"))
            by = await conn.fetchval(
                "SELECT detail->>'by' FROM execution_events WHERE execution_id = $1"
                " AND kind = 'position.exit_price_given'",
                execution_id,
            )
            assert by == "alice (console: TWS fill)"
            # Priced once: again is refused with the command line's sentence.
            _, shown = await act(
                client, "resolve", csrf, execution_id=str(execution_id),
                exit_price="144.60", reason="again",
            )  # fmt: skip
            [(kind, text)] = flashes(shown)
            assert kind == "fail" and "only a position the broker closed at an unknown" in text


async def test_an_unknown_execution_resolved_filled_from_its_page_needs_its_price(
    db_url: str, bridge: ThreadedBridge, conn: asyncpg.Connection
) -> None:
    """`resolve ID --as filled --fill-price P` from the console: never "filled 133 @ -"."""
    async with running_service(make_settings(db_url, bridge)) as service:
        assert service.store is not None
        store = PgStore(service.store.pool)
        intent = await left_submitting(conn, store, "FILD", None)
        await store.apply(intent.id, Transition.LOSE_TRACK, Changes(reason="lost"))
        async with console_client(service.http_port) as client:
            csrf = await log_in(client)
            page = await client.get(f"/console/executions/{intent.id}")
            assert 'name="fill_price"' in page.text and 'name="exit_price"' not in page.text
            fields = {"execution_id": str(intent.id), "outcome": "filled", "reason": "in TWS"}
            for price, said in (
                ("", "--as filled needs the entry's price"),
                ("x", "fill price: 'x' is not a price"),
                ("0", "fill price: a price must be a positive number, got '0'"),
            ):
                _, shown = await act(client, "resolve", csrf, fill_price=price, **fields)
                [(kind, text)] = flashes(shown)
                assert kind == "fail" and said in text, text
            assert await conn.fetchval("SELECT state FROM executions WHERE id = $1", intent.id) == (
                "unknown"
            )
            _, shown = await act(client, "resolve", csrf, fill_price="150.02", **fields)
            [(kind, text)] = flashes(shown)
            assert (kind, text) == ("ok", f"resolve: execution {intent.id} resolved as filled")
        row = await conn.fetchrow(
            "SELECT state, filled_qty, avg_fill_price FROM executions WHERE id = $1", intent.id
        )
        assert row is not None
        assert (row["state"], row["filled_qty"], row["avg_fill_price"]) == (
            "filled", 133, Decimal("150.02"))  # fmt: skip
