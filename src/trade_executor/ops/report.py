"""`report`: closed trades with P&L and R, per-strategy totals, open positions (CONTRACT section 2).

One typed operation (`build_report`) serves the command line, `GET /api/v1/report`, the web
console's per-strategy table and the notifier's daily summary. Every figure is the ledger's own
Decimal (`executions.realized_pnl`, `r_multiple`, ...), never recomputed through a float; the
totals are sums of those figures:

- `win_rate`: winning trades (P&L above 0) over trades, a fraction (4 places);
- `average_r`: the mean R of the trades that have one (a trade sized with no risk has none);
- `expectancy`: the mean P&L per trade in the account's currency, i.e. win rate x average win
  minus loss rate x average loss (to the cent, half up);
- `largest_loss`: the most negative P&L (None: no losing trade).

Days are trading days in the service's TRADING_DAY_TIMEZONE: a trade belongs to the day its
position closed. Open positions are the bridge's (the broker's truth), with its unrealized P&L,
or (market price - average cost) x quantity when the bridge gives only a price.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.broker.jsonnum import dumps
from trade_executor.config.sources import Settings
from trade_executor.domain.execution import Execution
from trade_executor.domain.models import Position
from trade_executor.ops.common import Context, OperationError, Refusal
from trade_executor.store import operator
from trade_executor.store.pgreport import closed_between
from trade_executor.store.postgres import PgStore

CENT = Decimal("0.01")
FRACTION = Decimal("0.0001")
BRIDGE_TIMEOUT = 5.0
# A report spans at most this many days: a typo in --from must not read years of ledger.
MAX_DAYS = 366
Format = Literal["table", "csv", "json"]
TRADE_COLUMNS = (
    "symbol",
    "side",
    "quantity",
    "entry",
    "exit",
    "reason",
    "pnl",
    "r",
    "strategy",
    "instance",
    "opened",
    "closed",
    "execution_id",
)


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    symbol: str
    side: str
    quantity: int
    entry: Decimal | None
    exit: Decimal | None
    reason: str | None
    pnl: Decimal
    r: Decimal | None
    strategy: str | None
    instance: str | None
    opened: datetime | None
    closed: datetime | None
    execution_id: str


@dataclass(frozen=True, slots=True)
class StrategyTotals:
    strategy: str
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None
    average_r: Decimal | None
    total_r: Decimal | None
    expectancy: Decimal | None
    realized_pnl: Decimal
    largest_loss: Decimal | None


@dataclass(frozen=True, slots=True)
class OpenPosition:
    symbol: str
    quantity: int
    avg_cost: Decimal
    market_price: Decimal | None
    unrealized_pnl: Decimal | None


@dataclass(frozen=True, slots=True)
class Span:
    """Trading days `first`..`last` (both included) in `zone`."""

    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=self.zone)


@dataclass(frozen=True, slots=True)
class Report:
    first_day: date
    last_day: date
    timezone: str
    strategy: str | None
    trades: list[ClosedTrade]
    strategies: list[StrategyTotals]
    total: StrategyTotals
    open_positions: list[OpenPosition] | None  # None: the bridge could not say
    unrealized_pnl: Decimal | None
    bridge_error: str | None = None
    as_of: datetime | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (Decimals kept: `jsonnum.dumps` writes them exactly)."""
        return {
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
            "timezone": self.timezone,
            "strategy": self.strategy,
            "as_of": self.as_of,
            "trades": [asdict(t) for t in self.trades],
            "strategies": [asdict(s) for s in self.strategies],
            "total": asdict(self.total),
            "open_positions": None
            if self.open_positions is None
            else [asdict(p) for p in self.open_positions],
            "unrealized_pnl": self.unrealized_pnl,
            "bridge_error": self.bridge_error,
        }


# -- the pure part --------------------------------------------------------------------------


def closed_trade(e: Execution, strategy: str | None, instance: str | None) -> ClosedTrade:
    return ClosedTrade(
        symbol=e.symbol or "",
        side=e.action or "",
        quantity=e.exit_qty if e.exit_qty is not None else e.filled_qty,
        entry=e.avg_fill_price,
        exit=e.exit_avg_price,
        reason=e.exit_reason,
        pnl=e.realized_pnl if e.realized_pnl is not None else Decimal(0),
        r=e.r_multiple,
        strategy=strategy,
        instance=instance,
        opened=e.submitted_at or e.created_at,
        closed=e.closed_at,
        execution_id=str(e.id),
    )


def totals(name: str, trades: Sequence[ClosedTrade]) -> StrategyTotals:
    """The totals of `trades` (see the module's docstring for each figure)."""
    pnl = [t.pnl for t in trades]
    rs = [t.r for t in trades if t.r is not None]
    count = len(trades)
    realized = sum(pnl, Decimal(0))
    wins = sum(1 for p in pnl if p > 0)
    losses = [p for p in pnl if p < 0]
    return StrategyTotals(
        strategy=name,
        trades=count,
        wins=wins,
        losses=len(losses),
        win_rate=(Decimal(wins) / count).quantize(FRACTION, ROUND_HALF_UP) if count else None,
        average_r=(sum(rs, Decimal(0)) / len(rs)).quantize(FRACTION, ROUND_HALF_UP) if rs else None,
        total_r=sum(rs, Decimal(0)) if rs else None,
        expectancy=(realized / count).quantize(CENT, ROUND_HALF_UP) if count else None,
        realized_pnl=realized,
        largest_loss=min(losses) if losses else None,
    )


def by_strategy(trades: Iterable[ClosedTrade]) -> list[StrategyTotals]:
    """Totals per strategy, by name; a signal with no strategy is `(none)`."""
    groups: dict[str, list[ClosedTrade]] = {}
    for t in trades:
        groups.setdefault(t.strategy or "(none)", []).append(t)
    return [totals(name, groups[name]) for name in sorted(groups)]


def open_position(p: Position) -> OpenPosition:
    unrealized = p.unrealized_pnl
    if unrealized is None and p.market_price is not None:
        unrealized = ((p.market_price - p.avg_cost) * p.quantity).quantize(CENT, ROUND_HALF_UP)
    return OpenPosition(p.symbol, p.quantity, p.avg_cost, p.market_price, unrealized)


def assemble(
    span: Span,
    strategy: str | None,
    rows: Iterable[tuple[Execution, str | None, str | None]],
    positions: list[Position] | None,
    *,
    bridge_error: str | None = None,
    as_of: datetime | None = None,
) -> Report:
    """The report from the ledger's closed positions and the bridge's positions."""
    trades = [closed_trade(e, s, i) for e, s, i in rows]
    held = None if positions is None else [open_position(p) for p in positions if p.quantity]
    unrealized = None
    if held is not None:
        known = [p.unrealized_pnl for p in held if p.unrealized_pnl is not None]
        unrealized = sum(known, Decimal(0)) if len(known) == len(held) else None
    return Report(
        first_day=span.first,
        last_day=span.last,
        timezone=span.zone.key,
        strategy=strategy,
        trades=trades,
        strategies=by_strategy(trades),
        total=totals("(all)", trades),
        open_positions=held,
        unrealized_pnl=unrealized,
        bridge_error=bridge_error,
        as_of=as_of,
    )


# -- reading ----------------------------------------------------------------------------------


async def bridge_positions(url: str) -> tuple[list[Position] | None, str | None]:
    """The bridge's positions, or None and why it could not say."""
    try:
        async with BrokerClient(url, BRIDGE_TIMEOUT, read_retries=0) as broker:
            return await broker.positions(), None
    except BrokerError as error:
        return None, str(error)


def service_zone(control: operator.ControlRow, fallback: ZoneInfo) -> ZoneInfo:
    """The running service's trading-day zone as it published it, else `fallback`."""
    name = {str(k).lower(): v for k, v in control.limits.items()}.get("trading_day_timezone")
    try:
        return ZoneInfo(name) if isinstance(name, str) else fallback
    except (ValueError, KeyError):
        return fallback


async def build_report(
    store: PgStore,
    settings: Settings,
    *,
    first: date | None = None,
    last: date | None = None,
    strategy: str | None = None,
    read_bridge: bool = True,
    positions: list[Position] | None = None,
) -> Report:
    """The report for trading days `first`..`last` (default: today, in the service's zone).
    `read_bridge` False leaves the open positions to `positions` (None: not known)."""
    control = await operator.read_control(store.pool)
    zone = service_zone(control, settings.timezone)
    now = await operator.database_now(store.pool)
    today = now.astimezone(zone).date()
    span = Span(first or today, last or first or today, zone)
    if span.last < span.first:
        raise OperationError(f"--from {span.first} is after --to {span.last}")
    if (span.last - span.first).days >= MAX_DAYS:
        raise OperationError(f"a report spans at most {MAX_DAYS} days")
    rows = await closed_between(store.pool, span.start, span.end, strategy)
    error = None
    if read_bridge:
        limits = {str(k).lower(): v for k, v in control.limits.items()}
        url = limits.get("ib_bridge_url")
        positions, error = await bridge_positions(
            url if isinstance(url, str) else settings.ib_bridge_url
        )
    return assemble(span, strategy, rows, positions, bridge_error=error, as_of=now)


# -- rendering --------------------------------------------------------------------------------


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def render_csv(report: Report) -> str:
    """One row per closed trade, with a header; numbers exact, times in ISO 8601."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TRADE_COLUMNS)
    for t in report.trades:
        writer.writerow([_plain(getattr(t, column)) for column in TRADE_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _percent(value: Decimal | None) -> str:
    return "-" if value is None else f"{(value * 100).quantize(CENT)}%"


def render_table(report: Report, zone: ZoneInfo | None = None) -> str:
    tz = zone or ZoneInfo(report.timezone)
    span = (
        report.first_day.isoformat()
        if report.first_day == report.last_day
        else f"{report.first_day} to {report.last_day}"
    )
    title = f"report {span} ({report.timezone})"
    if report.strategy is not None:
        title += f", strategy {report.strategy}"
    lines = [title, ""]
    lines.append(f"closed trades  {len(report.trades)}")
    if report.trades:
        lines.append(
            f"  {'closed':<19} {'symbol':<8} {'side':<4} {'qty':>6} {'entry':>10} {'exit':>10} "
            f"{'reason':<12} {'P&L':>10} {'R':>8}  strategy"
        )
    for t in report.trades:
        closed = t.closed.astimezone(tz) if t.closed else None
        lines.append(
            f"  {_cell(closed):<19} {t.symbol:<8} {t.side:<4} {t.quantity:>6} "
            f"{_cell(t.entry):>10} {_cell(t.exit):>10} {_cell(t.reason):<12} "
            f"{_cell(t.pnl):>10} {_cell(t.r):>8}  {t.strategy or '(none)'}"
        )
    lines.append("")
    lines.append("by strategy")
    lines.append(
        f"  {'strategy':<20} {'trades':>6} {'win rate':>9} {'avg R':>8} {'expectancy':>11} "
        f"{'realized P&L':>13} {'largest loss':>13}"
    )
    for s in [*report.strategies, report.total]:
        lines.append(
            f"  {s.strategy:<20} {s.trades:>6} {_percent(s.win_rate):>9} {_cell(s.average_r):>8} "
            f"{_cell(s.expectancy):>11} {_cell(s.realized_pnl):>13} {_cell(s.largest_loss):>13}"
        )
    lines.append("")
    if report.open_positions is None:
        lines.append(f"open positions  bridge unavailable ({report.bridge_error})")
    else:
        lines.append(
            f"open positions  {len(report.open_positions)}, unrealized P&L "
            f"{_cell(report.unrealized_pnl)}"
        )
        for p in report.open_positions:
            lines.append(
                f"  {p.symbol:<8} {p.quantity:>8}  avg cost {_cell(p.avg_cost)}  "
                f"price {_cell(p.market_price)}  unrealized {_cell(p.unrealized_pnl)}"
            )
    return "\n".join(lines)


def render(report: Report, how: Format) -> str:
    if how == "csv":
        return render_csv(report)
    if how == "json":
        return dumps(report.to_json())
    return render_table(report)


# -- the command ------------------------------------------------------------------------------


def span_arguments(
    day: date | None, first: date | None, last: date | None
) -> tuple[date | None, date | None]:
    """`--day D` or `--from D [--to D]` (`--to` alone: from that day back to itself)."""
    if day is not None and (first is not None or last is not None):
        raise OperationError("give either --day or --from/--to, not both")
    if day is not None:
        return day, day
    if first is None and last is not None:
        return last, last
    return first, last


async def report(
    ctx: Context,
    *,
    first: date | None = None,
    last: date | None = None,
    strategy: str | None = None,
) -> Report | Refusal:
    """The report of trading days `first`..`last` (default today); a Refusal for a span it
    refuses (one sentence)."""
    if not isinstance(ctx.store, PgStore):
        raise TypeError("the report reads the PostgreSQL store")
    try:
        return await build_report(
            ctx.store, ctx.settings, first=first, last=last, strategy=strategy
        )
    except OperationError as error:
        return Refusal(str(error))


__all__ = [
    "ClosedTrade",
    "OpenPosition",
    "Report",
    "Span",
    "StrategyTotals",
    "assemble",
    "build_report",
    "by_strategy",
    "render",
    "render_csv",
    "render_table",
    "report",
    "totals",
]
