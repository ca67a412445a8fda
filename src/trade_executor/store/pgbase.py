"""What every part of `PgStore` shares: the pool, the fence and which of the original's tables
exist. The parts (`pgoriginal`, `pgoperator`, `pgexits`, `pgbreaks`) are mixins of this base."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import asyncpg

from trade_executor.store import queries as q
from trade_executor.store.errors import Fenced
from trade_executor.store.jsonb import to_json
from trade_executor.store.pgerrors import translating
from trade_executor.store.protocol import AuditEntry, OriginalTables


class PgBase:
    """`PgStore`'s state. Fencing: see `PgStore`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._original: OriginalTables | None = None  # read once (see `original_tables`)
        self._epoch: int | None = None
        self._on_fenced: Callable[[Fenced], None] | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def epoch(self) -> int | None:
        """The leadership epoch claims and intents are fenced with (None: not fenced)."""
        return self._epoch

    def fence(self, epoch: int | None, on_fenced: Callable[[Fenced], None] | None = None) -> None:
        """Fence claims and intent writes with `epoch` (the service calls this after each
        takeover). `on_fenced` is called (synchronously) each time a write is refused, so the
        service can stop acting at once rather than at its next lock check."""
        self._epoch = epoch
        self._on_fenced = on_fenced

    def _fenced(self, current: int | None) -> Fenced:
        error = Fenced(self._epoch, current)
        if self._on_fenced is not None:
            self._on_fenced(error)
        return error

    @translating
    async def original_tables(self) -> OriginalTables:
        if self._original is None:
            row = await self._pool.fetchrow(q.ORIGINAL_TABLES)
            assert row is not None
            self._original = OriginalTables(**dict(row.items()))
        return self._original

    @staticmethod
    async def _insert_audit(conn: Any, entry: AuditEntry) -> None:
        await conn.execute(
            q.INSERT_AUDIT,
            str(uuid4()),
            entry.correlation_id,
            entry.category,
            entry.action,
            entry.outcome,
            entry.message,
            to_json(entry.metadata),
        )
