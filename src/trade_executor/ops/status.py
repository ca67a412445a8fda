"""`status [--json]`: what the *running* service sees, read from the database.

Never this shell's settings where the service's are known: the limits, the trading-day time zone
and the switches come from what the active instance published in `executor_control` (`limits`),
the instance from its leader columns and heartbeat, standbys from the sessions connected to the
database (`pg_stat_activity`, application name `trade-executor host:pid`). Today's risk is
computed with `domain.ledger.rebuild_riskbook`, the rule the executor rebuilds its RiskBook with.
Times are the database's clock, so a heartbeat's age does not depend on this host's.

Where something cannot be known it is said so, never guessed: no leader recorded yet, no
heartbeat for a while (no running service), a role that may not see other sessions, a bridge
that does not answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.config.limits import risk_limits
from trade_executor.config.session_calendar import trading_session
from trade_executor.config.sources import Settings
from trade_executor.domain.attention import Bounds, needing_operator
from trade_executor.domain.breaks import RecordedBreak
from trade_executor.domain.execution import Execution
from trade_executor.domain.ledger import OriginalTrade, rebuild_riskbook
from trade_executor.domain.session import SessionSpecError
from trade_executor.domain.settlement import price_unknown
from trade_executor.domain.sizing import RiskLimits
from trade_executor.domain.states import NOT_FINAL_STATES
from trade_executor.ops.common import Context
from trade_executor.ops.ids import short
from trade_executor.store import operator
from trade_executor.store.lookup import plain
from trade_executor.store.operator import ControlRow, Instance
from trade_executor.store.postgres import PgStore
from trade_executor.store.server import database_server

# A leader that has not written its heartbeat for this long is taken as not running.
STALE_HEARTBEAT = timedelta(seconds=30)
BRIDGE_TIMEOUT = 5.0
# The limits `status` shows and off-checks, by setting name (CONTRACT section 3).
RISK_LIMIT_NAMES = (
    "max_risk_per_trade",
    "min_position_size",
    "max_position_size",
    "max_position_value_pct",
    "max_open_positions",
    "max_daily_loss",
    "max_daily_realized_loss",
    "max_consecutive_failures",
)
OFF_WHEN_ZERO = (
    "max_position_size",
    "max_open_positions",
    "max_daily_loss",
    "max_daily_realized_loss",
    "max_consecutive_failures",
)


def published_limits(control: ControlRow) -> dict[str, Any]:
    """The service's published limits and switches, keys lower-cased (a writer may use the
    variables' names)."""
    return {str(key).lower(): value for key, value in control.limits.items()}


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def limits_published(values: dict[str, Any]) -> RiskLimits | None:
    """RiskLimits from the published values, or None if any risk limit is missing."""
    numbers = {name: _decimal(values.get(name)) for name in RISK_LIMIT_NAMES[:7]}
    if any(number is None for number in numbers.values()):
        return None
    n = {name: number for name, number in numbers.items() if number is not None}
    return RiskLimits(
        max_risk_per_trade=n["max_risk_per_trade"],
        min_position_size=int(n["min_position_size"]),
        max_position_size=int(n["max_position_size"]),
        max_position_value_pct=n["max_position_value_pct"],
        max_open_positions=int(n["max_open_positions"]),
        max_daily_loss=n["max_daily_loss"],
        max_daily_realized_loss=n["max_daily_realized_loss"],
    )


def _timezone(values: dict[str, Any]) -> ZoneInfo | None:
    name = values.get("trading_day_timezone")
    if not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _number(value: Any) -> Any:
    """A published decimal string (the service writes money exactly, as text) as a number."""
    if isinstance(value, str):
        number = _decimal(value)
        if number is not None:
            return number
    return value


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


@dataclass(frozen=True, slots=True)
class Gathered:
    now: datetime
    control: ControlRow
    instances: list[Instance] | None
    today: list[Execution]
    in_flight: list[Execution]
    originals: list[OriginalTrade]
    positions: list[Execution]  # open (any day) or closed today
    breaks: list[RecordedBreak]


async def _gather(store: PgStore, zone: ZoneInfo) -> Gathered:
    now = await operator.database_now(store.pool)
    control = await operator.read_control(store.pool)
    instances = await operator.connected_instances(store.pool)
    day = now.astimezone(zone).date()
    today = await store.executions_on(day)
    in_flight = await store.executions_in(sorted(NOT_FINAL_STATES))
    # The original service's trades of today count too (the executor's rule at start-up).
    day_start = datetime.combine(day, time(0), tzinfo=zone)
    originals = await store.original_trades_since(day_start)
    positions = await store.positions_to_follow(day_start)
    breaks = await store.open_breaks()
    return Gathered(now, control, instances, today, in_flight, originals, positions, breaks)


async def _bridge_positions(url: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    try:
        async with BrokerClient(url, BRIDGE_TIMEOUT, read_retries=0) as broker:
            positions = await broker.positions()
    except BrokerError as error:
        return None, str(error)
    return _held(positions), None


async def _bridge_account(url: str) -> bool | None:
    """The account's `paper_trading` as the bridge's /health says it (None: not said or no
    answer)."""
    try:
        async with BrokerClient(url, BRIDGE_TIMEOUT, read_retries=0) as broker:
            health = await broker.health()
    except BrokerError:
        return None
    return health.paper_trading if health.connected else None


def account_view(
    paper_trading: bool | None, allow_live_trading: bool, execution_enabled: bool | None
) -> dict[str, Any]:
    """Paper or live, and whether approvals are refused for it (CONTRACT section 5)."""
    account = None if paper_trading is None else "paper" if paper_trading else "live"
    refused = account == "live" and not allow_live_trading and execution_enabled is not False
    return {
        "account": account,
        "allow_live_trading": allow_live_trading,
        "live_trading_refused": refused,
    }


def _held(positions: list[Any]) -> list[dict[str, Any]]:
    held = []
    for p in positions:
        if p.quantity == 0:
            continue
        unrealized = p.unrealized_pnl
        if unrealized is None and p.market_price is not None:
            unrealized = ((p.market_price - p.avg_cost) * p.quantity).quantize(Decimal("0.01"))
        held.append(
            {
                "symbol": p.symbol,
                "quantity": p.quantity,
                "avg_cost": p.avg_cost,
                "market_price": p.market_price,
                "unrealized_pnl": unrealized,
            }
        )
    return held


def _closed_line(e: Execution) -> dict[str, Any]:
    """A position closed today, with the ledger's exact P&L and R."""
    return {
        "execution_id": str(e.id),
        "symbol": e.symbol,
        "side": e.action,
        "quantity": e.exit_qty if e.exit_qty is not None else e.filled_qty,
        "entry": e.avg_fill_price,
        "exit": e.exit_avg_price,
        "reason": e.exit_reason,
        "realized_pnl": e.realized_pnl,
        "r_multiple": e.r_multiple,
        "closed_at": e.closed_at,
    }


def _unrealized(positions: list[dict[str, Any]] | None) -> Decimal | None:
    """The bridge's unrealized P&L in total; None unless every position has one."""
    if positions is None:
        return None
    known = [p["unrealized_pnl"] for p in positions if p.get("unrealized_pnl") is not None]
    return sum(known, Decimal(0)) if len(known) == len(positions) else None


def _service_view(g: Gathered, values: dict[str, Any]) -> dict[str, Any]:
    control = g.control
    leader = control.leader_id
    heartbeat = control.leader_heartbeat_at
    age = (g.now - heartbeat).total_seconds() if heartbeat is not None else None
    running = age is not None and age <= STALE_HEARTBEAT.total_seconds()
    active: dict[str, Any] | None = None
    if leader:
        active = {
            "instance": leader,
            "epoch": control.leader_epoch,
            "since": control.leader_since,
            "heartbeat_at": heartbeat,
            "heartbeat_age_seconds": round(age, 1) if age is not None else None,
        }
    if not leader:
        note = "no leader recorded yet: no instance has published itself in executor_control"
    elif not running:
        ago = f"{int(age)} s ago" if age is not None else "never"
        note = f"no running service: the last leader ({leader}) wrote its heartbeat {ago}"
    else:
        note = f"active instance {leader}"
    standbys: list[dict[str, Any]] | None
    if g.instances is None:
        standbys = None
        standby_note = (
            "cannot be known: this database role may not see other sessions (pg_stat_activity)"
        )
    else:
        standbys = [
            {"instance": i.instance, "connected_since": i.since, "client_addr": i.client_addr}
            for i in g.instances
            if i.instance != leader
        ]
        standby_note = (
            f"{len(standbys)} connected" if standbys else "none connected to this database"
        )
    return {
        "running": running,
        "active": active if running else None,
        "last_leader": active if not running else None,
        "note": note,
        "standbys": standbys,
        "standby_note": standby_note,
        "connected_instances": None if g.instances is None else [i.instance for i in g.instances],
    }


def _execution_line(e: Execution) -> dict[str, Any]:
    return {
        "execution_id": str(e.id),
        "signal_id": str(e.signal_id),
        "symbol": e.symbol,
        "side": e.action,
        "state": e.state.value,
        "reason": e.reason,
        "quantity": e.quantity,
        "filled_qty": e.filled_qty,
        "order_id": e.order_id,
        "risk_amount": e.risk_amount,
        "trading_day": plain(e.trading_day),
        "updated_at": e.updated_at,
    }


def _position_line(e: Execution) -> dict[str, Any]:
    """An open position as the ledger has it: what is still held, its planned risk, and whether
    a stop protects it (`none`: entered without protection, ORDER_PROTECTION=none)."""
    held = e.filled_qty - (e.exit_qty or 0)
    if e.position_state == "unprotected":
        protection = "unprotected"
    else:
        protection = "protected" if e.child_order_ids else "none"
    return {
        "execution_id": str(e.id),
        "symbol": e.symbol,
        "side": e.action,
        "quantity": held,
        "avg_fill_price": e.avg_fill_price,
        "stop_loss": e.stop_loss,
        "take_profit": e.take_profit,
        "planned_risk": e.risk_amount,
        "state": e.position_state,
        "protection": protection,
        "realized_pnl": e.realized_pnl,
    }


async def collect_view(
    store: PgStore, settings: Settings, *, read_bridge: bool = True
) -> dict[str, Any]:
    """`gather_view` on an open store: the typed operation behind `status` (the console's
    state, positions, risk and breaks read through it too). `read_bridge` False leaves the
    bridge's positions out (None, with no error): a caller that reads them itself."""
    shell_zone = settings.timezone
    # A first read tells the service's trading-day zone; the executions of its day follow.
    control = await operator.read_control(store.pool)
    g = await _gather(store, _timezone(published_limits(control)) or shell_zone)
    values = published_limits(g.control)
    zone = _timezone(values)
    limits = limits_published(values)
    service = _service_view(g, values)
    book = rebuild_riskbook(
        limits or risk_limits(settings),
        zone or shell_zone,
        [*g.today, *g.in_flight, *g.positions],
        g.now,
        original_trades=g.originals,
    )
    used = book.daily_risk_used(g.now)
    left = book.daily_risk_left(g.now) if limits is not None else None
    budget = limits.daily_loss_cap if limits is not None else None
    bounds = Bounds.from_values(values)
    attention = needing_operator([*g.in_flight, *g.today], bounds, g.now)
    # Positions the broker closed at a price no one has established (the stop's P&L counts).
    attention += [
        (e, f"closed at the broker at an unknown price: resolve-position {e.symbol} --exit-price P")
        for e in g.positions
        if price_unknown(e)
    ]
    bridge_url = values.get("ib_bridge_url")
    url = bridge_url if isinstance(bridge_url, str) else settings.ib_bridge_url
    positions, bridge_error = await _bridge_positions(url) if read_bridge else (None, None)
    paper_trading = await _bridge_account(url) if read_bridge else None
    published_allow = _bool(values.get("allow_live_trading"))
    allow_live = settings.allow_live_trading if published_allow is None else published_allow
    ledger_positions = [_position_line(e) for e in g.positions if e.position_state != "closed"]
    day_start = datetime.combine(book.trading_day(g.now), time(0), tzinfo=zone or shell_zone)
    closed_today = sorted(
        (
            e
            for e in g.positions
            if e.position_state == "closed" and e.closed_at is not None and e.closed_at >= day_start
        ),
        key=lambda e: (e.closed_at, str(e.id)),
    )
    control = g.control
    server = await database_server(store.pool)
    return {
        "as_of": g.now,
        "database": {"server": server.endpoint, "role": server.role, "version": server.version},
        "service": service,
        "halted": {
            "halted": control.halted,
            "reason": control.reason,
            "by": control.changed_by,
            "since": control.changed_at,
        },
        "execution_enabled": _bool(values.get("execution_enabled")),
        "market": market_view(settings, g.now),
        "account": account_view(paper_trading, allow_live, _bool(values.get("execution_enabled"))),
        "limits": {name: _number(values[name]) for name in sorted(values)} if values else None,
        "limits_source": "service" if values else "unknown: no service has published its limits",
        "limits_off": [name.upper() for name in OFF_WHEN_ZERO if _decimal(values.get(name)) == 0],
        "trading_day": book.trading_day(g.now).isoformat(),
        "trading_day_timezone": (zone or shell_zone).key,
        "trading_day_timezone_source": "service" if zone else "this shell (not published)",
        "daily_risk": {"used": used, "left": left, "budget": budget},
        "realized_pnl_today": book.realized_pnl(g.now),
        "closed_today": [_closed_line(e) for e in closed_today],
        "unrealized_pnl": _unrealized(positions),
        "reconcile_breaks": [
            {
                "kind": b.kind,
                "symbol": b.symbol,
                "execution_id": str(b.execution_id) if b.execution_id else None,
                "order_id": b.order_id,
                "first_seen": b.first_seen,
            }
            for b in g.breaks
        ],
        "positions": {
            "bridge": positions,
            "bridge_url": url,
            "bridge_error": bridge_error,
            "ledger": ledger_positions,
        },
        "in_flight": [_execution_line(e) for e in g.in_flight],
        "needing_operator": [{**_execution_line(e), "why": why} for e, why in attention],
    }


def market_view(settings: Settings, now: datetime) -> dict[str, Any]:
    """Whether the market is open now, by this shell's TRADING_SESSION (CONTRACT section 5), and
    what an approval outside it gets (OUTSIDE_SESSION)."""
    try:
        session = trading_session(settings.trading_session, settings.trading_day_timezone)
    except SessionSpecError as error:
        return {"open": None, "session": str(error), "outside_session": settings.outside_session}
    return {
        "open": session.is_open(now),
        "session": session.describe(now),
        "outside_session": settings.outside_session,
    }


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _time(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else "-"


def render_text(view: dict[str, Any]) -> str:
    out: list[str] = []

    def line(label: str, text: str) -> None:
        out.append(f"{label:<19}{text}")

    service = view["service"]
    line("as of", _time(view["as_of"]))
    database = view["database"]
    line("database", f"{database['server']} ({database['role']}, PostgreSQL {database['version']})")
    active = service["active"]
    if active is not None:
        line(
            "active",
            f"{active['instance']} (epoch {active['epoch']}) since {_time(active['since'])}, "
            f"heartbeat {active['heartbeat_age_seconds']} s ago",
        )
    else:
        line("active", service["note"])
    standbys = service["standbys"]
    if standbys:
        line("standby", ", ".join(s["instance"] for s in standbys))
    else:
        line("standby", service["standby_note"])
    halted = view["halted"]
    if halted["halted"]:
        line(
            "halted", f"yes: {halted['reason']} (by {halted['by']}) since {_time(halted['since'])}"
        )
    else:
        line("halted", "no")
    account = view["account"]
    if account["live_trading_refused"]:
        line(
            "account",
            "LIVE, ALLOW_LIVE_TRADING=false: every approval is rejected live_trading_not_allowed",
        )
    else:
        line("account", account["account"] or "unknown (the bridge did not say)")
    market = view["market"]
    outside = (
        "approvals rejected market_closed"
        if market["outside_session"] == "reject"
        else "approvals still sent (OUTSIDE_SESSION=send)"
    )
    line("market", market["session"] if market["open"] else f"{market['session']}: {outside}")
    enabled = view["execution_enabled"]
    line(
        "mode",
        "unknown (not published)"
        if enabled is None
        else (
            "orders sent (EXECUTION_ENABLED=true)"
            if enabled
            else "DRY RUN (EXECUTION_ENABLED=false)"
        ),
    )
    line(
        "trading day",
        f"{view['trading_day']} ({view['trading_day_timezone']}"
        + ("" if view["trading_day_timezone_source"] == "service" else ", this shell's setting")
        + ")",
    )
    risk = view["daily_risk"]
    if view["limits"] is None:
        line("daily risk used", f"{_money(risk['used'])} (the service's budget is not known)")
    elif risk["budget"] is None:
        line("daily risk used", f"{_money(risk['used'])} of no limit (MAX_DAILY_LOSS=0)")
    else:
        line("daily risk used", f"{_money(risk['used'])} of {_money(risk['budget'])}")
        line("daily risk left", _money(risk["left"]))
    line("realized P&L today", _money(view["realized_pnl_today"]))
    line("unrealized P&L", _money(view.get("unrealized_pnl")))
    limits = view["limits"]
    if limits is None:
        line("limits", view["limits_source"])
    else:
        shown = [name for name in RISK_LIMIT_NAMES if name in limits]
        line("limits", " ".join(f"{n.upper()}={_plain_text(limits[n])}" for n in shown))
        line("limits off", ", ".join(view["limits_off"]) or "none")
    positions = view["positions"]
    out.append("")
    if positions["bridge"] is None:
        line(
            "open positions",
            f"bridge unavailable at {positions['bridge_url']} ({positions['bridge_error']})",
        )
    else:
        line("open positions", str(len(positions["bridge"])))
        for p in positions["bridge"]:
            out.append(
                f"  {p['symbol']:<10} {p['quantity']:>8}  avg cost {_money(p['avg_cost'])}  "
                f"unrealized {_money(p.get('unrealized_pnl'))}"
            )
    held = positions["ledger"]
    line("positions (ledger)", str(len(held)))
    for p in held:
        out.append(
            f"  {p['symbol'] or '-':<10} {p['side'] or '-':<4} {p['quantity']:>8}  "
            f"risk {_money(p['planned_risk'])}  {p['protection']}"
        )
    closed = view.get("closed_today", [])
    line("closed today", str(len(closed)))
    for c in closed:
        out.append(
            f"  {c['symbol'] or '-':<10} {c['side'] or '-':<4} {c['quantity']:>8}  "
            f"{_plain_text(c['entry'])} -> {_plain_text(c['exit'])}  {c['reason'] or '-':<12} "
            f"P&L {_plain_text(c['realized_pnl'])}  R {_plain_text(c['r_multiple'])}"
        )
    breaks = view["reconcile_breaks"]
    line("reconcile breaks", str(len(breaks)))
    for b in breaks:
        out.append(f"  {b['kind']:<22} {b['symbol'] or '-':<8} since {_time(b['first_seen'])}")
    out.append("")
    out.append(f"executions in flight  {len(view['in_flight'])}")
    for e in view["in_flight"]:
        out.append(
            f"  {e['execution_id']}  {e['symbol'] or '-':<8} {e['state']:<17} "
            f"{e['quantity'] or 0:>6} {e['filled_qty']:>6} {e['order_id'] or '-'}"
        )
    out.append("")
    need = view["needing_operator"]
    line("need an operator", str(len(need)))
    for e in need:
        out.append(f"  {short(e['execution_id'])}  {e['symbol'] or '-':<8} {e['why']}")
    if need:
        out.append(
            "  settle each: trade-executor show ID, then trade-executor resolve ID --as ... "
            "(or --exit-price P for a position closed at an unknown price)"
        )
    return "\n".join(out)


def _plain_text(value: Any) -> str:
    if value is None:
        return "-"
    return format(value, "f") if isinstance(value, Decimal) else str(value)


async def status(ctx: Context) -> dict[str, Any]:
    """Everything `status` prints, as a JSON-ready mapping (Decimals kept)."""
    if not isinstance(ctx.store, PgStore):
        raise TypeError("status reads the PostgreSQL store")
    return await collect_view(ctx.store, ctx.settings)
