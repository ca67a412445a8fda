"""`MemoryStore`'s side of the original service's tables: the test inputs (`original`,
`original_orders`, `original_trades`, `guardrails`), and our `trades` rows as `PgStore` writes
them. Our writes to the original's `order_intents`, `fills` and `audit_events` are PostgreSQL's
alone (tests/integration/test_dropin_original_tables.py and test_dropin.py): here they are not
kept, whatever `original` says exists."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from uuid import UUID

from trade_executor.domain.execution import Changes, TradeRecord
from trade_executor.domain.guardrails import GuardrailFacts
from trade_executor.domain.ledger import OriginalTrade
from trade_executor.store.protocol import AuditEntry, OriginalTables
from trade_executor_dev.testing.memory_base import MemoryBase, keep


class MemoryOriginal(MemoryBase):
    """The original's tables, read and written (a mixin of `MemoryStore`)."""

    async def original_order(self, signal_id: UUID) -> str | None:
        await self._enter("original_order")
        return self.original_orders.get(signal_id)

    async def original_trades_since(self, since: datetime) -> list[OriginalTrade]:
        await self._enter("original_trades_since")
        return [trade for trade in self.original_trades if trade.created_at >= since]

    async def original_tables(self) -> OriginalTables:
        await self._enter("original_tables")
        return self.original

    async def guardrail_facts(
        self,
        signal_id: UUID,
        *,
        instances: bool,
        artifacts: bool,
        day_start: datetime,
        trading_day: date,
    ) -> GuardrailFacts:
        await self._enter("guardrail_facts")
        facts = self.guardrails.get(signal_id, GuardrailFacts())
        return replace(
            facts,
            instance_checked=instances and facts.instance_checked,
            artifact_checked=artifacts and facts.artifact_checked,
        )

    async def record_audit(self, entry: AuditEntry) -> None:
        await self._enter("record_audit")  # not kept (see the module docstring)

    def _write_trade(self, trade: TradeRecord, now: datetime) -> None:
        order_id = str(trade.order_id) if trade.order_id is not None else None
        risk = {
            "amount": trade.risk_amount,
            "percent": trade.risk_percent,
            "position_value": trade.position_value,
            "quantity": trade.quantity,
            "order_id": order_id,
            "status": trade.order_status,
        }
        existing = self._t.trades.get(trade.trade_id)
        if existing is not None:
            existing.update(order_status=trade.order_status, risk=risk, updated_at=now)
        else:
            self._t.trades[trade.trade_id] = {
                "id": trade.trade_id,
                "signal_id": trade.signal_id,
                "symbol": trade.symbol,
                "direction": trade.direction,
                "entry": trade.entry,
                "stop": trade.stop,
                "targets": [trade.take_profit],
                "strategy_id": trade.strategy_id,
                "notes": trade.notes,
                "risk": risk,
                "order_status": trade.order_status,
                "filled_qty": 0,
                "avg_fill_price": None,
                "created_at": now,
                "updated_at": now,
            }
        if order_id is not None:
            for row in self._t.approvals.values():
                if row.approval.signal_id == trade.signal_id and row.approval.approved:
                    row.approval = replace(row.approval, order_id=order_id)

    def _update_trade_status(self, trade_id: str, changes: Changes, now: datetime) -> None:
        row = self._t.trades.get(trade_id)
        if row is None:
            return
        row["order_status"] = keep(changes.broker_status, row["order_status"])
        row["filled_qty"] = keep(changes.filled_qty, row["filled_qty"])
        row["avg_fill_price"] = keep(changes.avg_fill_price, row["avg_fill_price"])
        if row["risk"] is not None:
            risk = dict(row["risk"])
            risk["status"] = keep(changes.broker_status, risk.get("status"))
            row["risk"] = risk
        row["updated_at"] = now
