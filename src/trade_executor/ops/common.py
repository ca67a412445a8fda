"""What the operator commands share: a store for one command, who is acting, one-sentence
errors."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

from trade_executor.config.sources import Settings
from trade_executor.ops.exit_codes import CommandError
from trade_executor.ops.failures import explain
from trade_executor.store.errors import StoreError
from trade_executor.store.postgres import PgStore, create_pool

T = TypeVar("T")


class OperationError(Exception):
    """One clear sentence for the operator; exit code 1."""


def with_store(settings: Settings, work: Callable[[PgStore], Awaitable[T]]) -> T:
    """Run `work` against the database, turning the store's errors into one sentence (a
    missing database, a refused login, a schema not migrated: see `failures.explain`)."""
    dsn = settings.dsn()

    async def main() -> T:
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            return await work(PgStore(pool))
        finally:
            await pool.close()

    try:
        return asyncio.run(main())
    except StoreError as error:
        sentence = explain(error, dsn=dsn) or f"the database refused the command: {error}"
        raise OperationError(sentence) from None


def who(args: argparse.Namespace) -> str:
    """Who acts: `--by`, else the person behind sudo (SUDO_USER), else the OS user."""
    given = getattr(args, "by", None)
    if given:
        return str(given)
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        return sudo_user
    return getpass.getuser()


def fail(message: str) -> int:
    raise CommandError(message)
