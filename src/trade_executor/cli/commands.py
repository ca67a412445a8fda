"""The command line's adapters to the operations (`trade_executor.ops`): each takes the parsed
arguments, runs its operation in an event loop of its own over a store for this one command,
prints what the operation answered and maps it to the exit code (CONTRACT section 2):
0 done, 1 a Refusal (its sentence on stderr, after what the bridge said on stdout), 2 bad usage.

The operations print nothing and know nothing of argparse; the text printed here is the outside
behaviour of each command.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import NoReturn, TypeVar

from trade_executor.broker import jsonnum
from trade_executor.config.sources import Settings
from trade_executor.notify.check import notify_test
from trade_executor.ops.close import close, describe, summary
from trade_executor.ops.common import Context, OperationError, Refusal
from trade_executor.ops.control import DEFAULT_WAIT, SwitchOutcome, halt, resume
from trade_executor.ops.execute import execute
from trade_executor.ops.exit_codes import EX_USAGE, CommandError
from trade_executor.ops.exit_price import parse_price, resolve_position
from trade_executor.ops.protect import protect
from trade_executor.ops.report import render, report, span_arguments
from trade_executor.ops.resolve import Resolved, resolve
from trade_executor.ops.show import show
from trade_executor.ops.status import render_text, status
from trade_executor.store.errors import StoreError
from trade_executor.store.failures import explain
from trade_executor.store.lookup import IdPattern, IdSyntaxError, parse_id
from trade_executor.store.postgres import PgStore, create_pool

T = TypeVar("T")


def with_context(settings: Settings, work: Callable[[Context], Awaitable[T]]) -> T:
    """Run `work` against the database in an event loop of its own, turning the store's errors
    into one sentence (a missing database, a refused login, a schema not migrated: see
    `failures.explain`)."""
    dsn = settings.dsn()

    async def main() -> T:
        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            return await work(Context(PgStore(pool), settings))
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


def refused(refusal: Refusal) -> NoReturn:
    """What the bridge said (stdout), then the refusal's sentence: exit 1."""
    for line in refusal.said:
        print(line)
    raise CommandError(refusal.message)


def _price(text: object, name: str) -> Decimal | None:
    if text is None:
        return None
    try:
        return parse_price(str(text))
    except ValueError as error:
        raise CommandError(f"{name}: {error}", EX_USAGE) from None


def id_argument(text: str) -> IdPattern:
    """`parse_id` as an argparse `type=`: a bad id is a usage error (exit 2) naming the value."""
    try:
        return parse_id(text)
    except IdSyntaxError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _pattern(text: object) -> IdPattern:
    if isinstance(text, IdPattern):
        return text
    try:
        return parse_id(str(text))
    except IdSyntaxError as error:  # the parser checks it already; a direct call lands here
        raise CommandError(str(error), EX_USAGE) from None


# -- resolve, resolve-position ---------------------------------------------------------------------


def resolve_command(settings: Settings, args: argparse.Namespace) -> int:
    if getattr(args, "exit_price", None) is not None:
        if args.outcome is not None:
            raise CommandError("give either --as or --exit-price, not both", EX_USAGE)
        return _exit_price(settings, args)
    pattern = _pattern(args.execution_id)
    if args.outcome is None:
        raise CommandError("give --as OUTCOME (or --exit-price P for a closed position)", EX_USAGE)
    outcome = str(args.outcome)
    if outcome == "submitted" and args.order_id is None:
        raise CommandError("--as submitted needs the broker's --order-id", EX_USAGE)
    fill_price = _price(getattr(args, "fill_price", None), "--fill-price")
    by = who(args)
    result = with_context(
        settings,
        lambda ctx: resolve(
            ctx, pattern, outcome, by=by, order_id=args.order_id, fill_price=fill_price
        ),
    )
    if isinstance(result, Refusal):
        refused(result)
    for line in result.said if isinstance(result, Resolved) else ():
        print(line)  # what the bridge says of the order
    print(result.message)
    return 0


def _exit_price(settings: Settings, args: argparse.Namespace) -> int:
    """`resolve-position SYMBOL --exit-price P` (and `resolve ID --exit-price P`)."""
    price = _price(args.exit_price, "--exit-price")
    assert price is not None
    by = who(args)
    if getattr(args, "execution_id", None):
        pattern = _pattern(args.execution_id)
        result = with_context(settings, lambda ctx: resolve(ctx, pattern, by=by, exit_price=price))
    else:
        symbol = str(args.symbol)
        result = with_context(settings, lambda ctx: resolve_position(ctx, symbol, price, by=by))
    if isinstance(result, Refusal):
        refused(result)
    print(result.message)
    return 0


def resolve_position_command(settings: Settings, args: argparse.Namespace) -> int:
    return _exit_price(settings, args)


# -- halt, resume ------------------------------------------------------------------------------


def _wait(args: argparse.Namespace) -> float | None:
    if not getattr(args, "wait", False):
        return None
    return float(getattr(args, "timeout", None) or DEFAULT_WAIT)


def _switched(outcome: SwitchOutcome) -> int:
    if not outcome.ok:
        raise CommandError(outcome.message)
    print(outcome.message)
    return 0


def halt_command(settings: Settings, args: argparse.Namespace) -> int:
    by, wait, force = who(args), _wait(args), bool(getattr(args, "force", False))
    reason = str(args.reason)
    return _switched(
        with_context(settings, lambda ctx: halt(ctx, reason, by=by, force=force, wait=wait))
    )


def resume_command(settings: Settings, args: argparse.Namespace) -> int:
    by, wait = who(args), _wait(args)
    return _switched(with_context(settings, lambda ctx: resume(ctx, by=by, wait=wait)))


# -- close, protect --------------------------------------------------------------------------------


def close_command(settings: Settings, args: argparse.Namespace) -> int:
    symbol: str | None = args.symbol.strip().upper() if args.symbol else None
    if (symbol is None) == (not args.all):
        raise CommandError("give either a SYMBOL or --all", EX_USAGE)
    reason = str(args.reason).strip()
    if not reason:
        raise CommandError("--reason must not be empty", EX_USAGE)
    by = who(args)
    force = bool(getattr(args, "force", False))
    wait = float(args.wait)
    result = with_context(
        settings, lambda ctx: close(ctx, symbol, reason, by=by, wait=wait, force=force)
    )
    if isinstance(result, Refusal):
        refused(result)
    if args.json:
        print(json.dumps([summary(e) for e in result.latest], default=str))
    else:
        for e in result.latest:
            print(describe(e))
    still_open = result.still_open
    if still_open:
        raise CommandError(
            f"still open after {args.wait:g} s: {', '.join(still_open)} (the close may still be "
            "under way; `status` shows whether a service is running and what it sees)"
        )
    return 0


def protect_command(settings: Settings, args: argparse.Namespace) -> int:
    symbol = str(args.symbol).strip().upper()
    if not symbol:
        raise CommandError("give a SYMBOL", EX_USAGE)
    stop = _price(args.stop, "--stop")
    target = _price(args.take_profit, "--take-profit")
    by, force = who(args), bool(args.force)
    result = with_context(
        settings,
        lambda ctx: protect(ctx, symbol, by=by, stop=stop, take_profit=target, force=force),
    )
    if isinstance(result, Refusal):
        refused(result)
    print(result.message)
    return 0


# -- execute, notify-test ------------------------------------------------------------------------


def execute_command(settings: Settings, args: argparse.Namespace) -> int:
    result = asyncio.run(
        execute(settings, str(args.signal_id), str(args.approved_by), url=args.url)
    )
    if isinstance(result, Refusal):
        refused(result)
    print(jsonnum.dumps(result.body))
    return result.exit_code


def notify_test_command(settings: Settings, args: argparse.Namespace) -> int:
    del args
    results = asyncio.run(notify_test(settings))
    if isinstance(results, Refusal):
        refused(results)
    for answer in results:
        print(f"{answer.name}: {answer.sentence}")
    return 0 if all(answer.answered for answer in results) else 1


# -- show, status, report ----------------------------------------------------------------------


def show_command(settings: Settings, args: argparse.Namespace) -> int:
    pattern = _pattern(args.id)
    result = with_context(settings, lambda ctx: show(ctx, pattern))
    if isinstance(result, Refusal):
        refused(result)
    print(jsonnum.dumps(result.to_json()) if getattr(args, "json", False) else result.text())
    return 0


def status_command(settings: Settings, args: argparse.Namespace) -> int:
    view = with_context(settings, status)
    if getattr(args, "json", False):
        print(jsonnum.dumps(view))
    else:
        print(render_text(view))
    return 0


def parse_day(text: str) -> date:
    """YYYY-MM-DD, for argparse (exit 2 with one sentence otherwise)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day as YYYY-MM-DD: {text!r}") from None


def report_command(settings: Settings, args: argparse.Namespace) -> int:
    first, last = span_arguments(
        getattr(args, "day", None), getattr(args, "from_day", None), getattr(args, "to_day", None)
    )
    strategy = getattr(args, "strategy", None)
    built = with_context(
        settings,
        lambda ctx: report(ctx, first=first, last=last, strategy=strategy),
    )
    if isinstance(built, Refusal):
        refused(built)
    text = render(built, getattr(args, "format", "table") or "table")
    print(text, end="" if text.endswith("\n") else "\n")
    return 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "execute": execute_command,
    "status": status_command,
    "show": show_command,
    "halt": halt_command,
    "resume": resume_command,
    "resolve": resolve_command,
    "resolve-position": resolve_position_command,
    "close": close_command,
    "protect": protect_command,
    "report": report_command,
    "notify-test": notify_test_command,
}
