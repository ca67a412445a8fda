"""Bad input against the real process: garbage notifications, malformed signals, orphan
approvals, malformed HTTP bodies. Each is answered by a recorded reason (the ledger, a log line or
a 400 with {"error"}) and the service stays alive: after every barrage a valid approval is placed
exactly once.

Hypothesis generates part of each barrage. For the notifications and the signals it is used as a
generator (the examples are committed together, then checked one by one, each failure naming its
input); for the HTTP API each example is a request checked on the spot (so a failure shrinks).
Example counts are modest: the whole module runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import re
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support import ThreadedBridge, approve, insert_signal
from tests.support.chaos import (
    ENTRY,
    STOP,
    TARGET,
    ExecutorProcess,
    Harness,
    check_invariants,
    wait_settled,
)

pytestmark = pytest.mark.anyio

T = TypeVar("T")
TOKEN = "chaos-token"  # BASE_ENV's API_TOKEN
PG_NOTIFY_MAX = 7999  # PostgreSQL's payload limit: shorter than 8000 bytes
AT_BROKER_OK = ("submitted", "partially_filled", "filled")


def symbol(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:7].upper()


def examples(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """`n` (at most) distinct examples of a strategy: hypothesis as a generator."""
    drawn: list[T] = []

    @settings(
        max_examples=n,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        drawn.append(value)

    collect()
    return drawn


@pytest.fixture
async def live(harness: Harness) -> ExecutorProcess:
    process = harness.start(MAX_OPEN_POSITIONS="100", MAX_DAILY_LOSS="1000000")
    await process.wait_ready()
    return process


async def still_alive(
    process: ExecutorProcess, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    """The process is running and a valid approval is placed, once."""
    assert process.returncode() is None, "the process died of bad input"
    signal_id = await insert_signal(conn, symbol("OK"), "BUY", ENTRY, STOP, TARGET)
    await approve(conn, signal_id)
    [execution] = await wait_settled(conn, [signal_id], timeout=30, process=process)
    assert execution["state"] in AT_BROKER_OK, dict(execution)
    refs = [o["order_ref"] for o in bridge.parent_orders(sent_refs=True)]
    assert refs.count(execution["client_order_id"]) == 1
    assert process.returncode() is None


# ---- 1. notifications ----------------------------------------------------------------------


def no_nul(text: str) -> bool:
    return "\x00" not in text  # PostgreSQL text cannot hold NUL


JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
# Payloads that are never the documented {"approval_id": uuid, "signal_id": uuid}.
GARBAGE_PAYLOADS = st.one_of(
    st.text(max_size=200).filter(no_nul),
    JSON_VALUES.map(json.dumps).filter(no_nul),
    # the right key, a wrong type or a string that is no UUID
    st.one_of(JSON_LEAVES.filter(lambda v: not isinstance(v, str)), st.text(alphabet="xyz-!' ;"))
    .map(lambda v: json.dumps({"approval_id": v, "signal_id": str(uuid.uuid4())}))
    .filter(no_nul),
)


def fixed_payloads(approved_id: uuid.UUID, unapproved_id: uuid.UUID) -> list[tuple[str, str]]:
    """(payload, what the listener must do): `bad` -> listener.bad_payload and a sweep;
    `hint` -> a well-formed hint that the executor re-reads and does not execute again."""
    injection = "'; DROP TABLE executions; --"
    return [
        ("", "bad"),
        ("null", "bad"),
        ("[]", "bad"),
        ("{}", "bad"),
        ("not json at all", "bad"),
        ('{"approval_id": ', "bad"),
        ('{"approval_id": 42}', "bad"),
        ('{"approval_id": null}', "bad"),
        ('{"approval_id": ["' + str(approved_id) + '"]}', "bad"),
        ('{"approval_id": "not-a-uuid"}', "bad"),
        (json.dumps({"approval_id": injection}), "bad"),
        (injection, "bad"),
        ("x" * PG_NOTIFY_MAX, "bad"),  # oversized: as large as pg_notify allows
        (json.dumps({"approval_id": "a" * (PG_NOTIFY_MAX - 20)}), "bad"),
        ('{"approval_id": NaN}', "bad"),
        ("\u202eünïcødé ☃", "bad"),
        # Well-formed but forged: an approval that does not exist, one that is not approved,
        # one already executed (a duplicate). Re-read from the tables: nothing new executes.
        (json.dumps({"approval_id": str(uuid.uuid4()), "signal_id": str(uuid.uuid4())}), "hint"),
        (json.dumps({"approval_id": str(unapproved_id)}), "hint"),
        (json.dumps({"approval_id": str(approved_id), "signal_id": injection}), "hint"),
    ]


async def test_garbage_notifications(
    live: ExecutorProcess, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    # One execution to replay, one approval that is not approved.
    done = await insert_signal(conn, symbol("N"), "BUY", ENTRY, STOP, TARGET)
    approved_id = await approve(conn, done)
    await wait_settled(conn, [done], process=live)
    held = await insert_signal(conn, symbol("U"), "BUY", ENTRY, STOP, TARGET)
    unapproved_id = await approve(conn, held, approved=False)

    payloads = fixed_payloads(approved_id, unapproved_id)
    payloads += [(p, "bad") for p in examples(GARBAGE_PAYLOADS, 60)]
    for payload, _ in payloads:
        await conn.execute("SELECT pg_notify('trade_approvals', $1)", payload)
    # PostgreSQL itself refuses a payload of 8000 bytes or more.
    with pytest.raises(asyncpg.InvalidParameterValueError):
        await conn.execute("SELECT pg_notify('trade_approvals', $1)", "x" * 8000)

    bad = [p for p, kind in payloads if kind == "bad"]
    with anyio.fail_after(30):
        while len(live.events("listener.bad_payload")) < len(bad):
            assert live.returncode() is None
            await anyio.sleep(0.1)
    logged = live.events("listener.bad_payload")
    assert len(logged) == len(bad)
    for record, payload in zip(logged, bad, strict=True):
        assert record["level"] == "warning"
        assert record["length"] == len(payload)
        assert payload.startswith(record["payload"]), (record, payload)
        assert len(record["payload"]) <= 200  # only an excerpt is logged
    assert not live.events("listener.disconnected")
    await still_alive(live, conn, bridge)
    # Nothing but the two real approvals ever executed; the forged hints were ignored.
    assert await conn.fetchval("SELECT count(*) FROM executions") == 2
    assert await conn.fetchval("SELECT count(*) FROM executions WHERE signal_id = $1", held) == 0
    assert live.events("approval.ignored")
    assert await live.stop() == 0
    await check_invariants(conn, bridge, max_daily_loss=1000000, max_open_positions=100)


# ---- 2. malformed signals ------------------------------------------------------------------

INSERT_RAW_SIGNAL = """
INSERT INTO strategy_signals (id, symbol, strategy_id, signal_type, confidence, entry_price,
                              stop_loss, take_profit, reasoning, expires_at)
VALUES ($1, $2, 'chaos', $3, 0.5, $4::text::numeric, $5::text::numeric, $6::text::numeric,
        'bad input', $7)
"""


@dataclass(frozen=True)
class RawSignal:
    """A strategy_signals row as the strategy service might write it: anything goes."""

    name: str
    symbol: str | None
    side: str | None
    entry: str | None
    stop: str | None
    target: str | None
    expires_in: float = 3600.0  # seconds; negative = already expired
    expect: str = "invalid_signal: "  # a prefix of the reason, or exactly "expired"

    def matches(self, reason: str | None) -> bool:
        if reason is None:
            return False
        if self.expect == "expired":
            return reason == "expired"
        return reason.startswith(self.expect)


def buy(name: str, **changes: Any) -> RawSignal:
    base: dict[str, Any] = {
        "symbol": symbol("B"),
        "side": "BUY",
        "entry": ENTRY,
        "stop": STOP,
        "target": TARGET,
    }
    base.update(changes)
    return RawSignal(name, **base)


def sell(name: str, **changes: Any) -> RawSignal:
    return buy(name, **{"side": "SELL", "stop": "101", "target": "98", **changes})


FIXED_SIGNALS = [
    buy("entry NaN", entry="NaN", expect="invalid_signal: entry_price"),
    buy("stop NaN", stop="NaN", expect="invalid_signal: stop_loss"),
    buy("target NaN", target="NaN", expect="invalid_signal: take_profit"),
    buy("entry +inf", entry="Infinity", expect="invalid_signal: entry_price"),
    buy("stop -inf", stop="-Infinity", expect="invalid_signal: stop_loss"),
    buy("target +inf", target="Infinity", expect="invalid_signal: take_profit"),
    buy("entry negative", entry="-100", expect="invalid_signal: entry_price"),
    buy("stop negative", stop="-1", expect="invalid_signal: stop_loss"),
    buy("entry zero", entry="0", expect="invalid_signal: entry_price"),
    buy("stop zero", stop="0", expect="invalid_signal: stop_loss"),
    buy("target zero", target="0", expect="invalid_signal: take_profit"),
    buy("entry rounds to zero", entry="0.004", stop="0.001", target="0.009"),
    buy("entry absurd", entry="1e30", target="2e30", expect="invalid_signal: entry_price"),
    buy("entry 10^100", entry="1" + "0" * 100, expect="invalid_signal: entry_price"),
    buy("target just above sanity", target="1000000.01", expect="invalid_signal: take_profit"),
    buy("entry missing", entry=None, expect="invalid_signal: entry_price"),
    buy("symbol empty", symbol="", expect="invalid_signal: symbol"),
    buy("symbol blank", symbol="   ", expect="invalid_signal: symbol"),
    buy("symbol NULL", symbol=None, expect="invalid_signal: symbol"),
    buy("symbol 500 chars", symbol="A" * 500, expect="invalid_signal: symbol"),
    buy("symbol injection", symbol="X'; DROP TABLE executions;--", expect="invalid_signal: symbol"),
    buy("symbol newline", symbol="AAPL\nMSFT", expect="invalid_signal: symbol"),
    buy("BUY stop above entry", stop="101", expect="invalid_signal: stop_loss"),
    buy("BUY stop equals entry", stop=ENTRY, expect="invalid_signal: stop_loss"),
    buy("BUY target below entry", target="99.5", expect="invalid_signal: take_profit"),
    sell("SELL stop below entry", stop="99", expect="invalid_signal: stop_loss"),
    sell("SELL target above entry", target="103", expect="invalid_signal: take_profit"),
    buy("HOLD", side="HOLD", expect="invalid_signal: HOLD"),
    buy("hold lower case", side="hold", expect="invalid_signal: HOLD"),
    buy("unknown type", side="SHORT", expect="invalid_signal: unknown signal_type"),
    buy("type injection", side="BUY'; --", expect="invalid_signal: unknown signal_type"),
    buy("type empty", side="", expect="invalid_signal: signal_type"),
    buy("type NULL", side=None, expect="invalid_signal: signal_type"),
    buy("expired", expires_in=-60, expect="expired"),
    buy("expired long ago", expires_in=-10 * 365 * 86400, expect="expired"),
]


def _decimal_text(low: int | None = None, high: int | None = None) -> st.SearchStrategy[str]:
    return st.decimals(
        min_value=low, max_value=high, allow_nan=False, allow_infinity=False, places=4
    ).map(str)


BAD_PRICES = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "0", "-0", "0.001", "0.004"]),
    _decimal_text(high=0),
    _decimal_text(low=1_000_001, high=10**40),
)
SYMBOL_OK = re.compile(r"[A-Za-z0-9./ -]+")
BAD_SYMBOLS = st.one_of(
    st.sampled_from([None, "", " ", "\t"]),
    st.text(alphabet=string.ascii_uppercase, min_size=21, max_size=500),
    st.text(min_size=1, max_size=12).filter(
        lambda s: no_nul(s) and bool(s.strip()) and not SYMBOL_OK.fullmatch(s.strip())
    ),
)
BAD_TYPES = st.one_of(
    st.sampled_from([None, "HOLD", "Hold", " hold ", ""]),
    st.text(max_size=20).filter(
        lambda t: no_nul(t) and t.strip().upper() not in ("BUY", "SELL", "HOLD")
    ),
)


@st.composite
def bad_signals(draw: st.DrawFn) -> RawSignal:
    """A valid BUY or SELL with exactly one defect."""
    base = draw(st.sampled_from([buy, sell]))("generated", symbol=symbol("H"))
    defect = draw(st.sampled_from(["price", "symbol", "type", "side", "expired"]))
    fields = dict(base.__dict__)
    if defect == "price":
        fields[draw(st.sampled_from(["entry", "stop", "target"]))] = draw(BAD_PRICES)
    elif defect == "symbol":
        fields["symbol"] = draw(BAD_SYMBOLS)
    elif defect == "type":
        fields["side"] = draw(BAD_TYPES)
    elif defect == "side":
        # The stop or the target on the wrong side of the entry (or on it).
        which = draw(st.sampled_from(["stop", "target"]))
        wrong_up = (which == "stop") == (base.side == "BUY")
        offset = draw(st.decimals(min_value=0, max_value=50, places=2))
        fields[which] = str(100 + offset if wrong_up else 100 - offset)
    else:
        fields["expires_in"] = -draw(st.floats(min_value=1, max_value=1e8))
        fields["expect"] = "expired"
    fields["name"] = f"generated {defect}"
    return RawSignal(**fields)


async def insert_raw(conn: asyncpg.Connection, raw: RawSignal) -> uuid.UUID:
    signal_id = uuid.uuid4()
    await conn.execute(
        INSERT_RAW_SIGNAL,
        signal_id,
        raw.symbol,
        raw.side,
        raw.entry,
        raw.stop,
        raw.target,
        datetime.now(UTC) + timedelta(seconds=raw.expires_in),
    )
    return signal_id


async def test_malformed_signals_are_rejected_with_a_reason(
    live: ExecutorProcess, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    raws = FIXED_SIGNALS + examples(bad_signals(), 60)
    by_id: dict[uuid.UUID, RawSignal] = {}
    for raw in raws:
        signal_id = await insert_raw(conn, raw)
        await approve(conn, signal_id)
        by_id[signal_id] = raw
    rows = await wait_settled(conn, list(by_id), timeout=60, process=live)
    wrong = [
        (by_id[row["signal_id"]], row["state"], row["reason"])
        for row in rows
        if row["state"] != "rejected" or not by_id[row["signal_id"]].matches(row["reason"])
    ]
    assert not wrong, wrong
    assert bridge.orders() == []
    # Every rejection is logged and recorded in the audit trail with its reason.
    logged = {r["signal_id"] for r in live.events("execution.rejected")}
    assert {str(s) for s in by_id} <= logged
    await still_alive(live, conn, bridge)
    assert await live.stop() == 0
    assert not [r for r in live.records() if r.get("level") in ("error", "critical")]
    await check_invariants(conn, bridge, max_daily_loss=1000000, max_open_positions=100)


# ---- 3. orphan approvals -------------------------------------------------------------------

INSERT_ORPHAN = """
INSERT INTO trade_approvals (id, signal_id, approved, approved_at, approved_by)
VALUES ($1, $2, true, now(), 'tester')
"""
FK_OF_APPROVALS = """
SELECT conname FROM pg_constraint
WHERE conrelid = 'trade_approvals'::regclass AND contype = 'f'
"""


async def test_approvals_without_a_signal(
    live: ExecutorProcess, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    """A NULL signal_id: seen (trigger and sweeps), ignored with a reason, nothing executes.
    A signal that does not exist: the foreign key refuses the approval outright. On a legacy
    database without that key, the orphan is ignored like the NULL one."""
    null_approval = uuid.uuid4()
    await conn.execute(INSERT_ORPHAN, null_approval, None)

    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(INSERT_ORPHAN, uuid.uuid4(), uuid.uuid4())

    # A legacy jax-trading-assistant table may have no foreign key (migrate never adds one).
    for name in await conn.fetch(FK_OF_APPROVALS):
        await conn.execute(f'ALTER TABLE trade_approvals DROP CONSTRAINT "{name["conname"]}"')
    orphan_approval = uuid.uuid4()
    await conn.execute(INSERT_ORPHAN, orphan_approval, uuid.uuid4())

    def ignored(approval_id: uuid.UUID) -> list[dict[str, Any]]:
        return [r for r in live.events("approval.ignored") if r["approval_id"] == str(approval_id)]

    with anyio.fail_after(30):
        while not (ignored(null_approval) and ignored(orphan_approval)):
            assert live.returncode() is None
            await anyio.sleep(0.1)
    for approval_id in (null_approval, orphan_approval):
        assert ignored(approval_id)[0]["reason"] == "signal not found"
    assert await conn.fetchval("SELECT count(*) FROM executions") == 0
    await still_alive(live, conn, bridge)
    assert await conn.fetchval("SELECT count(*) FROM executions") == 1
    assert await live.stop() == 0


# ---- 4. HTTP API bodies --------------------------------------------------------------------


def api_url(process: ExecutorProcess) -> str:
    port = process.http_port()
    assert port is not None, "no api.listening line"
    return f"http://127.0.0.1:{port}/api/v1/execute"


AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
# A new connection for every request: a POST on a kept-alive connection that the server closes
# at that instant (its keep-alive timeout, on a loaded machine) fails on the client side, which
# says nothing about the service. A connection the server drops unanswered still fails the test.
FRESH = httpx.Limits(max_keepalive_connections=0)
UUID_TEXT = str(uuid.UUID(int=1))


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


FIXED_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not json", b"not json"),
    ("truncated", b'{"signal_id": '),
    ("invalid utf-8", b"\xff\xfe\xfd\x00"),
    ("utf-8 BOM only", b"\xef\xbb\xbf"),
    ("null", b"null"),
    ("array", b"[]"),
    ("number", b"1"),
    ("string", b'"signal"'),
    ("empty object", b"{}"),
    ("no approved_by", body({"signal_id": UUID_TEXT})),
    ("no signal_id", body({"approved_by": "ops"})),
    ("signal_id number", body({"signal_id": 123, "approved_by": "ops"})),
    ("signal_id null", body({"signal_id": None, "approved_by": "ops"})),
    ("signal_id list", body({"signal_id": [UUID_TEXT], "approved_by": "ops"})),
    ("signal_id not a uuid", body({"signal_id": "not-a-uuid", "approved_by": "ops"})),
    ("signal_id injection", body({"signal_id": "'; DROP TABLE x;--", "approved_by": "ops"})),
    ("signal_id NaN", b'{"signal_id": NaN, "approved_by": "ops"}'),
    ("approved_by number", body({"signal_id": UUID_TEXT, "approved_by": 5})),
    ("approved_by empty", body({"signal_id": UUID_TEXT, "approved_by": ""})),
    ("approved_by blank", body({"signal_id": UUID_TEXT, "approved_by": "   "})),
    ("approved_by object", body({"signal_id": UUID_TEXT, "approved_by": {"name": "x"}})),
    ("approved_by 10k", body({"signal_id": UUID_TEXT, "approved_by": "a" * 10_000})),
    ("approved_by control", body({"signal_id": UUID_TEXT, "approved_by": "a\x00\x1b[2J"})),
]
TOO_LARGE = body({"signal_id": UUID_TEXT, "approved_by": "ops", "pad": "x" * 20_000})


def check_400(response: httpx.Response, what: object) -> None:
    assert response.status_code == 400, (what, response.status_code, response.text[:300])
    data = response.json()
    assert isinstance(data, dict), (what, data)
    assert isinstance(data.get("error"), str), (what, data)
    assert data["error"], (what, data)


def well_formed(value: Any) -> bool:
    """True for a body the API must accept as a request (then 404: no such signal)."""
    if not isinstance(value, dict):
        return False
    signal_id, approved_by = value.get("signal_id"), value.get("approved_by")
    if not isinstance(signal_id, str) or not isinstance(approved_by, str):
        return False
    try:
        uuid.UUID(signal_id)
    except ValueError:
        return False
    return bool(approved_by.strip()) and len(approved_by) <= 200 and approved_by.isprintable()


SIGNAL_IDS = st.one_of(
    JSON_LEAVES, st.uuids().map(str), st.text(alphabet="ghijklmnop-{}", max_size=40)
)
APPROVERS = st.one_of(JSON_LEAVES, st.sampled_from(["ops", "", "  "]))
REQUEST_BODIES = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({}, optional={"signal_id": SIGNAL_IDS, "approved_by": APPROVERS}),
)


def bodies_barrage(url: str) -> int:
    """Runs in a worker thread: every generated body is answered 400 (or 404 when it is a
    well-formed request for a signal that does not exist), never 5xx."""
    sent = 0
    with httpx.Client(timeout=10, headers=AUTH, limits=FRESH) as client:

        @settings(max_examples=80, database=None, deadline=None)
        @given(REQUEST_BODIES)
        def json_bodies(value: Any) -> None:
            nonlocal sent
            sent += 1
            response = client.post(url, content=json.dumps(value).encode())
            if well_formed(value):
                assert response.status_code == 404, (value, response.text[:300])
                assert "error" in response.json()
            else:
                check_400(response, value)

        @settings(max_examples=40, database=None, deadline=None)
        @given(st.binary(max_size=300))
        def raw_bodies(raw: bytes) -> None:
            nonlocal sent
            sent += 1
            response = client.post(url, content=raw)
            try:
                json.loads(raw)
            except ValueError:
                check_400(response, raw)
                return
            assert response.status_code in (400, 404), (raw, response.text[:300])

        json_bodies()
        raw_bodies()
    return sent


async def early_answer(port: int, framing: str, start: bytes) -> tuple[int, dict[str, Any]]:
    """Send the head of a request whose body is too large and only the start of that body: the
    server must answer 400 without waiting for the rest. (A client that pushes a whole megabyte
    sees the connection closed under it once the answer is sent, as HTTP servers do.)"""
    head = (
        "POST /api/v1/execute HTTP/1.1\r\nHost: chaos\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n\r\n"
    )
    received = b""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head.encode() + start)
        with anyio.fail_after(10):
            while True:
                head_end = received.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = re.search(rb"(?i)content-length: *(\d+)", received[:head_end])
                    if length and len(received) >= head_end + 4 + int(length[1]):
                        break
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def test_malformed_http_bodies(
    live: ExecutorProcess, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    url = api_url(live)
    async with httpx.AsyncClient(timeout=10, limits=FRESH) as client:
        for name, raw in FIXED_BODIES:
            check_400(await client.post(url, content=raw, headers=AUTH), name)
        response = await client.post(url, content=TOO_LARGE, headers=AUTH)
        assert response.status_code == 413, response.text
        assert "too large" in response.json()["error"]
        # The token is checked before the body is read.
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = await client.post(url, content=b"not json", headers=headers)
            assert response.status_code == 401, (headers, response.text)
            assert "error" in response.json()
    sent = await anyio.to_thread.run_sync(bodies_barrage, url)
    assert sent >= 60
    assert live.returncode() is None

    # A well-formed request for an invalid signal is rejected with the reason: 422.
    hold = await insert_raw(conn, buy("HOLD via API", side="HOLD"))
    async with httpx.AsyncClient(timeout=40, limits=FRESH) as client:
        response = await client.post(
            url, json={"signal_id": str(hold), "approved_by": "api"}, headers=AUTH
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith("invalid_signal: ")
    await still_alive(live, conn, bridge)
    assert await conn.fetchval("SELECT count(*) FROM executions") == 2
    assert await live.stop() == 0
    assert not [r for r in live.records() if r.get("level") in ("error", "critical")]


# ---- 5. deeply nested JSON -----------------------------------------------------------------

DEEP = "[" * 5000  # 5 KB: within both size limits, deeper than Python's recursion limit


async def test_deeply_nested_notification_is_a_bad_payload(
    live: ExecutorProcess, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    await conn.execute("SELECT pg_notify('trade_approvals', $1)", DEEP)
    await conn.execute("SELECT pg_notify('trade_approvals', $1)", '{"approval_id": ' + DEEP)
    with anyio.fail_after(15):
        while len(live.events("listener.bad_payload")) < 2:
            if live.events("listener.disconnected"):
                break
            await anyio.sleep(0.1)
    await still_alive(live, conn, bridge)
    assert not live.events("listener.disconnected"), live.events("listener.disconnected")
    assert len(live.events("listener.bad_payload")) == 2


async def test_deeply_nested_http_body_is_a_400(
    live: ExecutorProcess, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    url = api_url(live)
    async with httpx.AsyncClient(timeout=10, limits=FRESH) as client:
        for raw in (DEEP, '{"signal_id": ' + DEEP, "{" + '"a":{' * 3000):
            response = await client.post(url, content=raw.encode(), headers=AUTH)
            assert live.returncode() is None
            check_400(response, raw[:40])
    await still_alive(live, conn, bridge)


# ---- 6. orphan approvals crowding out the catch-up -----------------------------------------

SWEEP_LIMIT = 5000  # listener.SWEEP_LIMIT: approvals forwarded per catch-up


async def test_orphan_approvals_do_not_starve_the_catch_up(
    harness: Harness, conn: asyncpg.Connection, bridge: ThreadedBridge
) -> None:
    for name in await conn.fetch(FK_OF_APPROVALS):
        await conn.execute(f'ALTER TABLE trade_approvals DROP CONSTRAINT "{name["conname"]}"')
    await conn.execute(
        "INSERT INTO trade_approvals (signal_id, approved, approved_at, approved_by) "
        "SELECT gen_random_uuid(), true, now() - interval '1 day', 'legacy' "
        "FROM generate_series(1, $1)",
        SWEEP_LIMIT,
    )
    # Approved while the service was down: only the start-up catch-up and the sweeps see it.
    signal_id = await insert_signal(conn, symbol("C"), "BUY", ENTRY, STOP, TARGET)
    await approve(conn, signal_id)
    process = harness.start(SWEEP_INTERVAL="1")
    await process.wait_ready()
    [execution] = await wait_settled(conn, [signal_id], timeout=8, process=process)
    assert execution["state"] in AT_BROKER_OK
