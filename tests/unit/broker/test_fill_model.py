"""The paper bridge's fill model and accounting, driven tick by tick (no clocks, no sockets)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.support import paper_config
from trade_executor.domain.models import Action, BrokerStatus, OrderType
from trade_executor_dev.paper import OrderError, PaperBroker, PaperConfig

D = Decimal


def broker(**overrides: object) -> PaperBroker:
    return PaperBroker(paper_config(**overrides))


def status_of(b: PaperBroker, order_id: int) -> BrokerStatus:
    return b.orders[order_id].status


def test_the_price_path_is_deterministic_per_seed() -> None:
    def path(seed: int) -> list[Decimal | None]:
        b = broker(seed=seed, volatility=D("0.01"))
        b.set_price("AAPL", D(100))
        prices = []
        for _ in range(50):
            b.step()
            prices.append(b.market.price("AAPL"))
        return prices

    assert path(1) == path(1)
    assert path(1) != path(2)
    assert len(set(path(1))) > 10  # it moves


def test_a_symbol_path_does_not_depend_on_other_symbols() -> None:
    alone, crowded = broker(), broker()
    alone.set_price("AAPL", D(100))
    crowded.set_price("ZZZ", D(5))
    crowded.set_price("AAPL", D(100))
    alone.step(20)
    crowded.step(20)
    assert alone.market.price("AAPL") == crowded.market.price("AAPL")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), offset=st.integers(1, 300))
def test_a_limit_buy_fills_only_once_the_path_trades_at_or_below_it(seed: int, offset: int) -> None:
    b = broker(seed=seed, volatility=D("0.002"))
    b.set_price("AAPL", D(100))
    limit = D(100) - D(offset) / 100
    order = b.place("AAPL", Action.BUY, 10, OrderType.LMT, limit_price=limit)
    for _ in range(400):
        assert status_of(b, order.order_id) is BrokerStatus.SUBMITTED
        b.step()
        price = b.market.price("AAPL")
        assert price is not None
        if price <= limit:
            event("the path crossed the limit")
            assert status_of(b, order.order_id) is BrokerStatus.FILLED
            assert order.avg_fill_price == price <= limit
            assert b.holdings["AAPL"].quantity == 10
            return
        assert order.status is BrokerStatus.SUBMITTED and order.filled_qty == 0
    # The path never came down to the limit (the test once passed here without checking any
    # fill): the order still fills as soon as the price trades at it.
    event("the price was set to the limit")
    assert b.set_price("AAPL", limit) == [order.order_id]
    assert status_of(b, order.order_id) is BrokerStatus.FILLED
    assert order.avg_fill_price == limit
    assert b.holdings["AAPL"].quantity == 10


def test_a_limit_sell_and_stops_fill_on_their_side_of_the_price() -> None:
    b = broker()
    b.set_price("X", D(100))
    sell = b.place("X", Action.SELL, 1, OrderType.LMT, limit_price=D(105))
    buy_stop = b.place("X", Action.BUY, 1, OrderType.STP, stop_price=D(103))
    sell_stop = b.place("X", Action.SELL, 1, OrderType.STP, stop_price=D(95))
    assert b.set_price("X", D("102.99")) == []
    assert b.set_price("X", D("103.50")) == [buy_stop.order_id]
    assert buy_stop.avg_fill_price == D("103.50")  # a stop fills at the market
    assert b.set_price("X", D(106)) == [sell.order_id]
    assert b.set_price("X", D(95)) == [sell_stop.order_id]


def test_a_new_symbol_starts_at_the_order_price_and_waits_for_a_move() -> None:
    b = broker(volatility=D("0.01"))
    order = b.place("NEW", Action.BUY, 1, OrderType.LMT, limit_price=D(50))
    assert b.market.price("NEW") == D(50)
    assert status_of(b, order.order_id) is BrokerStatus.SUBMITTED
    b.step(200)
    assert status_of(b, order.order_id) is BrokerStatus.FILLED


def test_market_orders_fill_at_once_at_the_reference_price() -> None:
    b = broker()
    b.set_price("X", D("12.34"))
    order = b.place("X", Action.SELL, 5, OrderType.MKT)
    assert (order.status, order.filled_qty, order.avg_fill_price) == (
        BrokerStatus.FILLED,
        5,
        D("12.34"),
    )
    assert order.remaining_qty == 0
    unknown = b.place("NEVER_SEEN", Action.BUY, 1, OrderType.MKT)
    assert unknown.avg_fill_price == PaperConfig().default_price


def bracket(b: PaperBroker) -> tuple[int, int, int]:
    parent, (take_profit, stop_loss) = b.place_bracket(
        "X",
        Action.BUY,
        10,
        OrderType.LMT,
        entry_limit_price=D(100),
        stop_loss=D(95),
        take_profit=D(110),
        order_ref="exec-b",
    )
    return parent.order_id, take_profit.order_id, stop_loss.order_id


def statuses(b: PaperBroker, *ids: int) -> list[BrokerStatus]:
    return [b.orders[i].status for i in ids]


def test_bracket_children_stay_presubmitted_until_the_entry_fills() -> None:
    b = broker()
    b.set_price("X", D(101))
    parent, tp, sl = bracket(b)
    assert b.orders[tp].parent_id == parent and b.orders[tp].order_ref == "exec-b"
    assert b.orders[tp].action is Action.SELL and b.orders[sl].order_type is OrderType.STP
    # Above the take-profit: a working child would fill, but the entry has not.
    assert b.set_price("X", D(111)) == []
    assert (
        statuses(b, parent, tp, sl) == [BrokerStatus.SUBMITTED] + [BrokerStatus.PRE_SUBMITTED] * 2
    )
    assert b.set_price("X", D(96)) == [parent]
    assert statuses(b, tp, sl) == [BrokerStatus.SUBMITTED] * 2


def test_a_gap_through_entry_and_stop_fills_both_at_the_same_price() -> None:
    b = broker()
    b.set_price("X", D(101))
    parent, tp, sl = bracket(b)
    assert b.set_price("X", D(94)) == [parent, sl]
    assert statuses(b, parent, tp, sl) == [
        BrokerStatus.FILLED,
        BrokerStatus.CANCELLED,
        BrokerStatus.FILLED,
    ]
    assert b.holdings["X"].quantity == 0


@pytest.mark.parametrize(
    ("exit_price", "winner"),
    [(D(111), "take_profit"), (D(94), "stop_loss")],
)
def test_a_bracket_exit_fills_and_cancels_its_sibling(exit_price: Decimal, winner: str) -> None:
    b = broker()
    b.set_price("X", D(101))
    parent, tp, sl = bracket(b)
    assert b.set_price("X", D(100)) == [parent]
    assert statuses(b, tp, sl) == [BrokerStatus.SUBMITTED] * 2
    filled = b.set_price("X", exit_price)
    won, lost = (tp, sl) if winner == "take_profit" else (sl, tp)
    assert filled == [won]
    assert b.orders[won].status is BrokerStatus.FILLED
    assert b.orders[lost].status is BrokerStatus.CANCELLED
    assert b.holdings["X"].quantity == 0
    b.set_price("X", D(100) if winner == "take_profit" else D(120))
    assert b.orders[lost].status is BrokerStatus.CANCELLED  # stays cancelled


def test_cancelling_the_entry_cancels_its_children() -> None:
    b = broker()
    b.set_price("X", D(105))
    parent, tp, sl = bracket(b)
    b.cancel(parent)
    assert statuses(b, parent, tp, sl) == [BrokerStatus.CANCELLED] * 3
    with pytest.raises(OrderError, match="not cancellable"):
        b.cancel(parent)
    with pytest.raises(OrderError, match="not found"):
        b.cancel(999)


def test_fill_mode_never_leaves_everything_working() -> None:
    b = broker()
    b.fill_mode = "never"
    b.set_price("X", D(100))
    order = b.place("X", Action.BUY, 1, OrderType.MKT)
    b.set_price("X", D(1))
    assert order.status is BrokerStatus.SUBMITTED


def test_set_account_reports_the_new_amounts() -> None:
    b = broker()
    b.set_price("X", D(10))
    b.place("X", Action.BUY, 100, OrderType.MKT)
    b.set_account(net_liquidation=D(50000), buying_power=D(20000))
    account = b.account()
    assert (account.net_liquidation, account.buying_power) == (D(50000), D(20000))


fills = st.lists(
    st.tuples(
        st.sampled_from(["AAA", "BBB", "CCC"]),
        st.sampled_from([Action.BUY, Action.SELL]),
        st.integers(1, 500),
        st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(fills=fills, marks=st.lists(st.decimals(D("0.01"), D(1000), places=2), min_size=3))
def test_cash_and_positions_add_up_after_any_fills(
    fills: list[tuple[str, Action, int, Decimal]], marks: list[Decimal]
) -> None:
    b = broker()
    cash = b.cash
    quantities: dict[str, int] = {}
    for symbol, action, quantity, price in fills:
        b.set_price(symbol, price)
        order = b.place(symbol, action, quantity, OrderType.MKT)
        assert order.avg_fill_price == price
        signed = quantity if action is Action.BUY else -quantity
        cash -= signed * price
        quantities[symbol] = quantities.get(symbol, 0) + signed
    for symbol, mark in zip(["AAA", "BBB", "CCC"], marks, strict=False):
        if symbol in quantities:
            b.set_price(symbol, mark)

    assert b.cash == cash
    held = {p.symbol: p.quantity for p in b.positions()}
    assert held == {s: q for s, q in quantities.items() if q}

    account = b.account()
    value = sum((q * (b.market.price(s) or 0) for s, q in quantities.items()), D(0))
    assert account.net_liquidation == (cash + value).quantize(D("0.01"))
    assert account.total_cash == cash.quantize(D("0.01"))
    shorts = sum((-q * (b.market.price(s) or 0) for s, q in quantities.items() if q < 0), D(0))
    assert b.buying_power() == D(100000) + (cash - D(100000)) - 2 * shorts

    # Profit is realized plus unrealized: nothing is created or lost by the bookkeeping.
    pnl = sum((h.realized for h in b.holdings.values()), D(0))
    pnl += sum(
        (q * (b.market.price(s) or 0) - b.holdings[s].cost for s, q in quantities.items()), D(0)
    )
    assert abs((account.net_liquidation - D(100000)) - pnl) <= D("0.01")
