"""The console's actions, each through the typed operation the command line uses, each with
the operator's reason, each answered with one sentence saying what the service did:

halt, resume  `ops.control.change_switch` + `halt_outcome` / `resume_outcome` (the running
              service's acknowledgement awaited up to ACK_WAIT s)
close         `ops.close.request_close` (the running service closes through the bridge)
resolve       `ops.resolve.resolve_execution` (its fill price for `filled`), or with an exit
              price `ops.exit_price.resolve_exit_price` (`resolve ID --exit-price P`)
protect       `adapters.protect` (ops/protect.py when it lands)

Who acted is the name given at login; where the operation has no field for a reason (resume,
resolve), the reason travels in that name ("alice (console: ...)"), so it is in the database
with the change. Every action is also logged (`console.action`), reason and answer included.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from trade_executor.api.console import adapters
from trade_executor.api.console.adapters import ActionResult
from trade_executor.config.sources import Settings
from trade_executor.observability.logging import get_logger
from trade_executor.ops.close import describe, is_open, request_close
from trade_executor.ops.common import OperationError
from trade_executor.ops.control import change_switch, halt_outcome, resume_outcome
from trade_executor.ops.exit_price import describe as describe_exit
from trade_executor.ops.exit_price import parse_price, resolve_exit_price
from trade_executor.ops.resolve import OUTCOMES, resolve_execution
from trade_executor.store.lookup import IdPattern, IdSyntaxError, parse_id
from trade_executor.store.postgres import PgStore

log = get_logger("trade_executor.console")

ACK_WAIT = 5.0  # the running service applies a switch within a second (CONTRACT section 5)
CLOSE_WAIT = 15.0  # then the page answers what is still open
MAX_REASON = 500
ACTIONS = ("halt", "resume", "close", "protect", "resolve")


class BadForm(ValueError):
    """A form the operator must correct; one sentence, nothing done."""


def reason_of(form: dict[str, str]) -> str:
    reason = form.get("reason", "").strip()
    if not reason:
        raise BadForm("give a reason: it is recorded with what you do")
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise BadForm(f"the reason must be printable and at most {MAX_REASON} characters")
    return reason


def _symbol(form: dict[str, str]) -> str:
    symbol = form.get("symbol", "").strip().upper()
    if not symbol or len(symbol) > 20 or not symbol.isprintable():
        raise BadForm("give the symbol")
    return symbol


def _price(form: dict[str, str], name: str) -> Decimal | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadForm(f"{name.replace('_', ' ')} {text!r} is not a price") from None
    if not value.is_finite() or value <= 0:
        raise BadForm(f"{name.replace('_', ' ')} must be a positive price")
    return value


async def _exit_price(
    store: PgStore, pattern: IdPattern, text: str, noted: str, operator: str, reason: str
) -> ActionResult:
    """`resolve ID --exit-price P` from the console: the same parsing and operation."""
    try:
        price = parse_price(text)
    except ValueError as error:
        raise BadForm(f"exit price: {error}") from None
    done = await resolve_exit_price(store, pattern, None, price, noted)
    if done.problem or done.execution is None:
        result = ActionResult(False, done.problem or "not settled")
    else:
        result = ActionResult(True, describe_exit(done.execution))
    log.info(
        "console.action",
        action="resolve",
        operator=operator,
        reason=reason,
        ok=result.ok,
        answer=result.message,
    )
    return result


async def perform(
    action: str, form: dict[str, str], store: PgStore, settings: Settings, operator: str
) -> ActionResult:
    """Do `action` as `operator` with the form's fields; BadForm for a form to correct."""
    reason = reason_of(form)
    noted = f"{operator} (console: {reason})"
    match action:
        case "halt":
            force = form.get("force") == "yes"
            change, ack = await change_switch(
                store, settings.dsn(), True, reason, operator, force, ACK_WAIT
            )
            said = halt_outcome(change, ack, reason, operator, ACK_WAIT, True)
            message = said.message.replace("use --force", 'tick "replace the reason"')
            result = ActionResult(said.ok, message)
        case "resume":
            change, ack = await change_switch(
                store, settings.dsn(), False, None, noted, False, ACK_WAIT
            )
            said = resume_outcome(change, ack, noted, ACK_WAIT, True)
            result = ActionResult(said.ok, said.message)
        case "close":
            every = form.get("all") == "yes"
            symbol = None if every else _symbol(form)
            try:
                wanted, latest = await request_close(
                    store,
                    symbol,
                    reason,
                    operator,
                    CLOSE_WAIT,
                    bridge_url=settings.ib_bridge_url,
                    force=form.get("force") == "yes",
                )
            except OperationError as refused:  # the broker and the ledger disagree
                return ActionResult(False, str(refused))
            if not wanted:
                result = ActionResult(
                    False, f"no open position for {symbol}" if symbol else "no open positions"
                )
            else:
                still = [e.symbol or "?" for e in latest if is_open(e)]
                lines = "; ".join(" ".join(describe(e).split()) for e in latest)
                if still:
                    lines += (
                        f"; still open after {CLOSE_WAIT:g} s: {', '.join(still)} "
                        "(the close may still be under way)"
                    )
                result = ActionResult(not still, lines)
        case "protect":
            result = await adapters.protect(
                store,
                settings,
                _symbol(form),
                _price(form, "stop_loss"),
                _price(form, "take_profit"),
                form.get("force") == "yes",
                reason,
                operator,
            )
        case "resolve":
            try:
                pattern = parse_id(form.get("execution_id", ""))
            except IdSyntaxError as error:
                raise BadForm(str(error)) from None
            exit_text = form.get("exit_price", "").strip()
            if exit_text:
                return await _exit_price(store, pattern, exit_text, noted, operator, reason)
            outcome = form.get("outcome", "")
            if outcome not in OUTCOMES:
                raise BadForm(f"choose how it ended: {', '.join(OUTCOMES)}")
            order_text = form.get("order_id", "").strip()
            if order_text and not order_text.isdigit():
                raise BadForm(f"order id {order_text!r} is not a number")
            order_id = int(order_text) if order_text else None
            if outcome == "submitted" and order_id is None:
                raise BadForm("resolving as submitted needs the broker's order id")
            fill_text = form.get("fill_price", "").strip()
            try:
                fill_price = parse_price(fill_text) if fill_text else None
            except ValueError as error:
                raise BadForm(f"fill price: {error}") from None
            done = await resolve_execution(
                store, settings, pattern, outcome, order_id, noted, fill_price
            )
            said_lines = [*done.said]
            if done.problem:
                result = ActionResult(False, "; ".join([*said_lines, done.problem]))
            else:
                said_lines.append(f"execution {done.resolved} resolved as {outcome}")
                result = ActionResult(True, "; ".join(said_lines))
        case _:
            raise BadForm(f"no such action: {action}")
    log.info(
        "console.action",
        action=action,
        operator=operator,
        reason=reason,
        ok=result.ok,
        answer=result.message,
    )
    return result
