"""The console's actions, each through the typed operation the command line uses, each with
the operator's reason, each answered with one sentence saying what the service did:

halt, resume  `ops.control.halt` / `resume` (the running service's acknowledgement awaited up
              to ACK_WAIT s)
close         `ops.close.close` (the running service closes through the bridge)
resolve       `ops.resolve.resolve` (its fill price for `filled`, or an exit price:
              `resolve ID --exit-price P`)
protect       `ops.protect.protect`

Who acted is the name given at login; where the operation has no field for a reason (resume,
resolve), the reason travels in that name ("alice (console: ...)"), so it is in the database
with the change. Every action is also logged (`console.action`), reason and answer included.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from trade_executor.api.console.adapters import ActionResult
from trade_executor.config.sources import Settings
from trade_executor.observability.logging import get_logger
from trade_executor.ops.close import close, describe
from trade_executor.ops.common import Context, Refusal
from trade_executor.ops.control import halt, resume
from trade_executor.ops.exit_price import parse_price
from trade_executor.ops.protect import protect
from trade_executor.ops.resolve import OUTCOMES, Resolved, resolve
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
    ctx: Context, pattern: IdPattern, text: str, noted: str, operator: str, reason: str
) -> ActionResult:
    """`resolve ID --exit-price P` from the console: the same parsing and operation."""
    try:
        price = parse_price(text)
    except ValueError as error:
        raise BadForm(f"exit price: {error}") from None
    done = await resolve(ctx, pattern, by=noted, exit_price=price)
    result = ActionResult(not isinstance(done, Refusal), done.message)
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
    ctx = Context(store, settings)
    match action:
        case "halt":
            force = form.get("force") == "yes"
            said = await halt(ctx, reason, by=operator, force=force, wait=ACK_WAIT)
            message = said.message.replace("use --force", 'tick "replace the reason"')
            result = ActionResult(said.ok, message)
        case "resume":
            said = await resume(ctx, by=noted, wait=ACK_WAIT)
            result = ActionResult(said.ok, said.message)
        case "close":
            every = form.get("all") == "yes"
            symbol = None if every else _symbol(form)
            force = form.get("force") == "yes"
            closed = await close(ctx, symbol, reason, by=operator, wait=CLOSE_WAIT, force=force)
            if isinstance(closed, Refusal):  # none open, or the broker and the ledger disagree
                result = ActionResult(False, closed.message)
            else:
                still = closed.still_open
                lines = "; ".join(" ".join(describe(e).split()) for e in closed.latest)
                if still:
                    lines += (
                        f"; still open after {CLOSE_WAIT:g} s: {', '.join(still)} "
                        "(the close may still be under way)"
                    )
                result = ActionResult(not still, lines)
        case "protect":
            protected = await protect(
                ctx,
                _symbol(form),
                by=operator,
                stop=_price(form, "stop_loss"),
                take_profit=_price(form, "take_profit"),
                force=form.get("force") == "yes",
                reason=reason,
            )
            result = ActionResult(not isinstance(protected, Refusal), protected.message)
        case "resolve":
            try:
                pattern = parse_id(form.get("execution_id", ""))
            except IdSyntaxError as error:
                raise BadForm(str(error)) from None
            exit_text = form.get("exit_price", "").strip()
            if exit_text:
                return await _exit_price(ctx, pattern, exit_text, noted, operator, reason)
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
            done = await resolve(
                ctx, pattern, outcome, by=noted, order_id=order_id, fill_price=fill_price
            )
            answer = [*(done.said if isinstance(done, Resolved | Refusal) else ()), done.message]
            result = ActionResult(not isinstance(done, Refusal), "; ".join(answer))
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
