"""Today's realized P&L through the day as an SVG drawn on the server.

Why server-drawn SVG and not a charting library: the chart is one step line (the running total
of realized P&L after each close), which is a few lines of arithmetic; a library would add a
JavaScript dependency to vendor and keep patched, a second rendering path to test, and a page
that shows nothing until scripts run. The SVG is part of the HTML fragment the page refreshes,
so it is exactly as current as the table beside it, prints and screenshots as it is, and its
coordinates are computed with Decimal from the ledger's Decimal amounts (no float on money).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

WIDTH = Decimal(720)
HEIGHT = Decimal(220)
LEFT, RIGHT, TOP, BOTTOM = Decimal(70), Decimal(16), Decimal(14), Decimal(28)
MIN_SPAN = timedelta(minutes=5)  # a day with one close still gets a readable time axis
PIXEL = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class Close:
    at: datetime
    symbol: str
    pnl: Decimal


def _px(value: Decimal) -> str:
    return str(value.quantize(PIXEL))


def _money(value: Decimal) -> str:
    return f"{value:+,.2f}" if value else "0.00"


def pnl_chart(closes: list[Close], now: datetime, zone: ZoneInfo) -> Markup:
    """The running total of realized P&L after each close of `closes` (any order), from the
    first close to `now`, times shown in `zone`."""
    closes = sorted(closes, key=lambda c: c.at)
    if not closes:
        return Markup(
            '<p class="empty" data-chart="empty">No position closed today: no realized P&amp;L '
            "to draw yet.</p>"
        )
    start = min(closes[0].at, now - MIN_SPAN)
    end = max(now, closes[-1].at)
    span = Decimal(int((end - start).total_seconds() * 1000))
    totals: list[Decimal] = []
    running = Decimal(0)
    for c in closes:
        running += c.pnl
        totals.append(running)
    low, high = min(Decimal(0), *totals), max(Decimal(0), *totals)
    if low == high:
        high = low + 1
    pad = (high - low) / 10
    low, high = low - pad, high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> Decimal:
        elapsed = Decimal(int((moment - start).total_seconds() * 1000))
        return LEFT + plot_w * elapsed / span

    def y(amount: Decimal) -> Decimal:
        return TOP + plot_h * (high - amount) / (high - low)

    # A step line: flat until each close, then up or down by its P&L.
    points = [(x(start), y(Decimal(0)))]
    level = Decimal(0)
    marks = []
    for c, total in zip(closes, totals, strict=True):
        points.append((x(c.at), y(level)))
        points.append((x(c.at), y(total)))
        level = total
        when = f"{c.at.astimezone(zone):%H:%M:%S}"
        label = f"{when} {c.symbol} {_money(c.pnl)} (total {_money(total)})"
        marks.append(
            f'<circle cx="{_px(x(c.at))}" cy="{_px(y(total))}" r="3.5" '
            f'class="{"gain" if c.pnl >= 0 else "loss"}"><title>{escape(label)}</title></circle>'
        )
    points.append((x(end), y(level)))
    path = " ".join(f"{_px(px)},{_px(py)}" for px, py in points)
    zero = _px(y(Decimal(0)))
    final = totals[-1]
    axis = f"{start.astimezone(zone):%H:%M} to {end.astimezone(zone):%H:%M} {zone.key}"
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title" data-points="{len(closes)}" data-total="{final}">'
        f'<title id="chart-title">Realized P&amp;L today: {escape(_money(final))} after '
        f"{len(closes)} close(s), {escape(axis)}</title>"
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}"/>'
        f'<line class="zero" x1="{LEFT}" y1="{zero}" x2="{WIDTH - RIGHT}" y2="{zero}"/>'
        f'<text class="tick" x="{LEFT - 6}" y="{_px(y(high - pad) + 4)}" text-anchor="end">'
        f"{escape(_money(high - pad))}</text>"
        f'<text class="tick" x="{LEFT - 6}" y="{_px(y(low + pad) + 4)}" text-anchor="end">'
        f"{escape(_money(low + pad))}</text>"
        f'<text class="tick" x="{LEFT}" y="{HEIGHT - 8}">'
        f"{start.astimezone(zone):%H:%M:%S}</text>"
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{end.astimezone(zone):%H:%M:%S} {escape(zone.key)}</text>"
        f'<polyline class="{"gain" if final >= 0 else "loss"}" points="{path}"/>'
        + "".join(marks)
        + "</svg>"
    )
    return Markup(svg)  # noqa: S704 - every interpolated text is escaped above
