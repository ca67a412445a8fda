"""What the operator commands share: a store for one command, who is acting, one-sentence
errors."""

from __future__ import annotations

import argparse
import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import TypeVar

from trade_executor.config import Settings
from trade_executor.exits import CommandError
from trade_executor.store.errors import StoreError
from trade_executor.store.postgres import PgStore, create_pool

T = TypeVar("T")


class OperationError(Exception):
    """One clear sentence for the operator; exit code 1."""


def with_store(settings: Settings, work: Callable[[PgStore], Awaitable[T]]) -> T:
    """Run `work` against the database, turning the store's errors into one sentence."""

    async def main() -> T:
        try:
            pool = await create_pool(settings.dsn(), min_size=1, max_size=2)
        except StoreError as error:
            raise OperationError(f"cannot reach the database: {error}") from None
        try:
            return await work(PgStore(pool))
        except StoreError as error:
            raise OperationError(f"the database refused the command: {error}") from None
        finally:
            await pool.close()

    return asyncio.run(main())


def who(args: argparse.Namespace) -> str:
    return str(getattr(args, "by", None) or getpass.getuser())


def fail(message: str) -> int:
    raise CommandError(message)
