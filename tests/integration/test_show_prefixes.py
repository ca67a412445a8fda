"""`show ID` and `GET /api/v1/executions/{id}` (CONTRACT sections 2 and 6): an execution found by
its id, its signal id or an unambiguous prefix of either, with its whole event trail under the
dotted kinds (old kinds included), numbers exact; and the API's other answers in JSON."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from structlog.testing import capture_logs

from trade_executor.api.app import create_app
from trade_executor.api.gateway import HealthFacts
from trade_executor.broker.jsonnum import loads
from trade_executor.cli.main import main
from trade_executor.config.sources import load_settings
from trade_executor.domain.execution import Execution
from trade_executor.store.postgres import PgStore, create_pool

INSERT_EXECUTION = """
INSERT INTO executions (id, signal_id, state, reason, symbol, action, order_type, client_order_id,
                        quantity, entry_price, stop_loss, take_profit, risk_amount, position_value,
                        filled_qty, trading_day)
VALUES ($1, $2, $3, $4, 'AAPL', 'BUY', 'LMT', $5, 133, 150, 145, 160, 665.00, 19950.00, 0,
        current_date)
"""
INSERT_EVENT = "INSERT INTO execution_events (execution_id, kind, detail) VALUES ($1, $2, $3)"

# Ids chosen so that prefixes overlap on purpose: two executions start "a1b2c3", one signal "5e5e".
FIRST = UUID("a1b2c3d4-0000-4000-8000-000000000001")
SECOND = UUID("a1b2c3ff-0000-4000-8000-000000000002")
FIRST_SIGNAL = UUID("5e5e0000-0000-4000-8000-0000000000aa")
SECOND_SIGNAL = UUID("77770000-0000-4000-8000-0000000000bb")


def query(url: str, sql: str, *args: Any) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    asyncio.run(run())


pytestmark = pytest.mark.usefixtures("clean_environment")


@pytest.fixture
def ledger(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_url)
    query(db_url, INSERT_EXECUTION, FIRST, FIRST_SIGNAL, "unknown", "answer lost", "te-first")
    query(db_url, INSERT_EXECUTION, SECOND, SECOND_SIGNAL, "filled", None, "te-second")
    # The trail as an older version wrote it (bare kinds) and as this one does (dotted).
    query(db_url, INSERT_EVENT, FIRST, "claimed", json.dumps({"approved_by": "alice"}))
    query(db_url, INSERT_EVENT, FIRST, "submitting", json.dumps({"risk_amount": "665.00"}))
    query(db_url, INSERT_EVENT, FIRST, "order.unknown", json.dumps({"price": 150.25}))
    return db_url


def test_show_by_execution_id_prints_the_row_and_the_dotted_trail(
    ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(FIRST)]) == 0
    out = capsys.readouterr().out
    assert f"execution        {FIRST}" in out
    assert f"signal           {FIRST_SIGNAL}" in out
    assert "state            unknown: answer lost" in out
    assert "BUY 133 AAPL LMT @ 150" in out
    kinds = [line.split()[1] for line in out[out.index("events (3)") :].splitlines()[1:]]
    assert kinds == ["execution.claimed", "order.submitting", "order.unknown"]


@pytest.mark.parametrize(
    "typed",
    [str(FIRST_SIGNAL), "5e5e", "5E5E0000", "a1b2c3d4", "a1b2-c3d4", str(FIRST).upper()],
)
def test_show_finds_one_execution_by_id_signal_id_or_prefix(
    typed: str, ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", typed, "--json"]) == 0
    body = loads(capsys.readouterr().out)
    assert body["execution"]["id"] == str(FIRST)


def test_show_json_keeps_numbers_exact(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "a1b2c3d4", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"risk_amount":665.00' in out and '"position_value":19950.00' in out
    body = loads(out)
    assert body["execution"]["risk_amount"] == Decimal("665.00")
    assert [e["kind"] for e in body["events"]] == [
        "execution.claimed",
        "order.submitting",
        "order.unknown",
    ]
    assert body["events"][2]["detail"]["price"] == Decimal("150.25")


def test_an_ambiguous_prefix_names_the_candidates(
    ledger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "a1b2c3"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "trade-executor: a1b2c3 is ambiguous: it starts a1b2c3d4 (signal 5e5e0000), "
        "a1b2c3ff (signal 77770000); give more digits\n"
    )


def test_an_unknown_id_is_one_sentence(ledger: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "cccc"]) == 1
    assert capsys.readouterr().err == (
        "trade-executor: no execution has the id or signal id cccc\n"
    )


# -- the HTTP API ---------------------------------------------------------------------------------


class _Gateway:
    """The service's gateway, reduced to the store (no actors needed to read the ledger)."""

    def __init__(self, store: PgStore) -> None:
        self.store = store
        self.outcomes = None

    def approval_seen(self, approval_id: UUID) -> None:
        raise AssertionError("not used")

    def facts(self) -> HealthFacts:
        return HealthFacts(role="active")

    async def check_bridge(self) -> None:
        raise ConnectionError("no bridge here")

    async def close_positions(
        self, symbol: str | None, reason: str, requested_by: str, wait: float
    ) -> list[Execution] | None:
        raise AssertionError("not used")

    def render_metrics(self) -> bytes:
        return b""

    async def report(
        self, first: date | None, last: date | None, strategy: str | None
    ) -> dict[str, Any]:
        from trade_executor.ops.report import build_report

        built = await build_report(
            self.store,
            load_settings(),
            first=first,
            last=last,
            strategy=strategy,
            read_bridge=False,
        )
        return built.to_json()


@pytest.fixture
async def api(ledger: str) -> AsyncIterator[httpx.AsyncClient]:
    pool = await create_pool(ledger, min_size=1, max_size=2)
    settings = load_settings(database_url=ledger, api_token="right-token")
    app = create_app(settings, _Gateway(PgStore(pool)))
    # A client address of its own per test: refused tokens are rate-limited per client.
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    transport = httpx.ASGITransport(app=app, client=(address, 4242))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client
    finally:
        await pool.close()


@pytest.mark.anyio
async def test_get_an_execution_by_prefix_with_its_events(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/executions/5e5e")
    assert response.status_code == 200
    body = loads(response.content)
    assert body["execution"]["id"] == str(FIRST)
    assert body["execution"]["risk_amount"] == Decimal("665.00")
    assert body["events"][0]["kind"] == "execution.claimed"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "status"),
    [
        # a fixed id that no test creates (a random one makes xdist's workers collect differently)
        ("/api/v1/executions/5f3c9e0a-7d1b-4c2e-9a8f-0b6d4e2c1a97", 404),
        ("/api/v1/executions/a1b2c3", 400),  # ambiguous
        ("/api/v1/executions/not-an-id", 400),
    ],
)
async def test_get_an_execution_errors_are_json(
    api: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await api.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]


@pytest.mark.anyio
async def test_unknown_routes_and_wrong_methods_answer_json(api: httpx.AsyncClient) -> None:
    missing = await api.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not found: GET /no/such/route"}
    wrong = await api.get("/api/v1/execute")
    assert wrong.status_code == 405
    assert wrong.json() == {"error": "method not allowed: GET /api/v1/execute"}
    assert wrong.headers["allow"] == "POST"


@pytest.mark.anyio
async def test_a_refused_token_is_logged_once_per_client(api: httpx.AsyncClient) -> None:
    body = {"signal_id": str(uuid.uuid4()), "approved_by": "x"}
    with capture_logs() as logs:
        for _ in range(3):
            response = await api.post(
                "/api/v1/execute", json=body, headers={"Authorization": "Bearer wrong"}
            )
            assert response.status_code == 401
    refused = [line for line in logs if line["event"] == "api.unauthorized"]
    assert len(refused) == 1  # then once a minute with a count, never a line per request
    assert str(refused[0]["client"]).startswith("10.")
    assert refused[0]["header"] == "present"
    assert refused[0]["log_level"] == "warning"


@pytest.mark.anyio
async def test_the_report_route_answers_json_and_refuses_a_bad_day(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.get("/api/v1/report", params={"day": "2026-12-07", "strategy": "none-such"})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["from"], body["to"], body["trades"]) == ("2026-12-07", "2026-12-07", [])
    assert body["total"]["trades"] == 0 and body["strategy"] == "none-such"
    bad = await api.get("/api/v1/report", params={"day": "2026-13-01"})
    assert bad.status_code == 400 and "not a day" in bad.json()["error"]
    both = await api.get("/api/v1/report", params={"day": "2026-12-07", "from": "2026-12-01"})
    assert both.status_code == 400
