"""What the real jax-trading-assistant bridge sends and accepts, field for field.

The bridge (services/ib-bridge: FastAPI 0.109, pydantic 2.5, ib_insync 0.9.86) answers with its
pydantic models serialised by FastAPI: prices and amounts are Python floats, so they go out as
`repr(float)` (`150.0`, `1.7976931348623157e+308`); the paper bridge keeps Decimals inside and
converts only here, at the wire, to send the same text. Requests are validated as its models do,
and refused with FastAPI's 422 shape: `{"detail": [{type, loc, msg, input, ctx?}, ...]}`.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from trade_executor.clock import utcnow
from trade_executor.domain.models import BrokerStatus, OrderType

from .exchange import OPEN, PaperOrder, Report

# ib_insync's UNSET_DOUBLE: what IB leaves in a price it was not given (a market order's limit
# price, a limit order's stop price). The bridge's _optional_price keeps it (it is > 0).
UNSET_DOUBLE = sys.float_info.max
VERSION = "1.0.0"  # main.py: HealthResponse(version="1.0.0")
MARKET_DATA_MODE = "delayed"  # ib_client.py: IB_MARKET_DATA_TYPE defaults to delayed

# orderRef stamps (ib_client.py: place_order, place_bracket_order, close_position, protect)
REF_ENTRY = "manual-entry"
REF_CHILD = "manual-bracket-child"
REF_CLOSE = "manual-close"
REF_PROTECT = "manual-protect"


class RequestInvalid(Exception):
    """A request FastAPI refuses with 422 before the endpoint runs; `errors` is its detail."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("request validation failed")
        self.errors = errors


# ---- requests (models.py) --------------------------------------------------------------------


class _Model(BaseModel):
    # pydantic's default: unknown fields (our client's order_ref) are ignored.
    model_config = ConfigDict(extra="ignore")


class OrderRequest(_Model):
    symbol: str
    action: str
    quantity: int = Field(gt=0)
    order_type: str = "MKT"
    limit_price: Decimal | None = None  # no bound: IB itself refuses a price <= 0
    stop_price: Decimal | None = None


class BracketOrderRequest(_Model):
    symbol: str
    action: str
    quantity: int = Field(gt=0)
    entry_order_type: str = "MKT"
    entry_limit_price: Decimal | None = Field(default=None, gt=0)
    stop_loss: Decimal | None = Field(default=None, gt=0)
    take_profit: Decimal | None = Field(default=None, gt=0)


class ClosePositionRequest(_Model):
    quantity: int | None = Field(default=None, gt=0)
    order_type: str = "MKT"
    limit_price: Decimal | None = Field(default=None, gt=0)


# The bridge's protect body, for `paper-bridge --help` and the RUNBOOK (main.py
# ProtectPositionRequest): the stop and take-profit go out in one OCA group.
PROTECT_BODY_HELP = """\
POST /positions/{symbol}/protect {stop_loss, take_profit?, quantity?, replace_existing?}
  stop_loss (required, > 0): the stop's price; take_profit (> 0): a limit exit in the same OCA
  group; quantity (> 0): shares to protect, default the whole position; replace_existing
  (default true): cancel the symbol's earlier LMT/STP exits first. The exit side is the
  position's opposite; no position: 400 "No open position found for SYMBOL".
"""


class ProtectPositionRequest(_Model):
    quantity: int | None = Field(default=None, gt=0)
    stop_loss: Decimal = Field(gt=0)
    take_profit: Decimal | None = Field(default=None, gt=0)
    replace_existing: bool = True


M = TypeVar("M", bound=BaseModel)


def _errors(exc: ValidationError, prefix: tuple[str | int, ...]) -> list[dict[str, Any]]:
    found = []
    for error in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "type": error["type"],
            "loc": [*prefix, *error["loc"]],
            "msg": error["msg"],
            "input": error.get("input"),
        }
        if "ctx" in error:
            item["ctx"] = {
                k: v if isinstance(v, int | str | Decimal) else str(v)
                for k, v in error["ctx"].items()
            }
        found.append(item)
    return found


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not supported", name, 0)


def parse_body(model: type[M], raw: bytes) -> M:
    """The request body as FastAPI reads a required body model: invalid JSON, an empty body and
    invalid fields are each refused with its 422 shape."""
    if not raw:
        missing = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
        raise RequestInvalid([missing])
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ["body", exc.pos],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestInvalid([error]) from None
    except ValueError as exc:  # undecodable bytes
        error = {
            "type": "json_invalid",
            "loc": ["body", 0],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": str(exc)},
        }
        raise RequestInvalid([error]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid(_errors(exc, ("body",))) from None


_INT = TypeAdapter(int)


def path_int(name: str, raw: str) -> int:
    """A path parameter declared `int`, parsed as FastAPI does (lax: "007" is 7, "-1" is -1)."""
    try:
        return _INT.validate_python(raw)
    except ValidationError as exc:
        raise RequestInvalid(_errors(exc, ("path", name))) from None


# ---- answers -----------------------------------------------------------------------------


def ib_float(value: Decimal | None) -> float:
    """A Decimal as the float the real bridge holds (0.0 for none). Rendering only: no
    arithmetic happens on the float."""
    return 0.0 if value is None else float(value)


def optional_price(value: Decimal | None, *, is_set: bool) -> float | None:
    """ib_client.py _optional_price: an unset IB price is UNSET_DOUBLE (kept, it is > 0); a set
    price <= 0 becomes null."""
    if not is_set:
        return UNSET_DOUBLE
    if value is None or value <= 0:
        return None
    return float(value)


def aware_iso(moment: datetime) -> str:
    """A trade log time (ib_insync stamps them `datetime.now(timezone.utc)`): `+00:00`."""
    return moment.astimezone(UTC).isoformat()


def naive_utc_now() -> str:
    """`datetime.utcnow().isoformat()`: what the bridge stamps `last_update` and rows without a
    trade log with: no time zone."""
    return utcnow().replace(tzinfo=None).isoformat()


def is_open(status: str) -> bool:
    return status in {s.value for s in OPEN} or status == "ApiPending"


def broker_order(order: PaperOrder, report: Report, *, restored: bool) -> dict[str, object]:
    """One row of GET /orders (models.py BrokerOrder, ib_client.py _serialize_trade).

    A restored row is a finished order of an earlier session as IB re-sends it at connection
    (ib_insync completedOrder): orderId and parentId 0, no order status (zero fills and
    remaining), no trade log (both timestamps "now", naive).
    """
    status, filled_qty = report.status, report.filled_qty
    is_lmt = order.order_type is OrderType.LMT
    is_stp = order.order_type is OrderType.STP
    if restored:
        remaining = 0
        created = updated = naive_utc_now()
    else:
        # Until IB's first order status (PendingSubmit), ib_insync's OrderStatus says remaining 0.
        # A phantom Cancelled (an error before IB's first status) shows the same zeros.
        fresh = status is BrokerStatus.PENDING_SUBMIT or report.phantom
        remaining = 0 if fresh or status is BrokerStatus.FILLED else order.quantity - filled_qty
        since = order.listed_since
        created = aware_iso(since if since is not None else order.created_at)
        last = order.updated_at if since is None or order.updated_at > since else since
        updated = aware_iso(last)
    return {
        "order_id": 0 if restored else order.order_id,
        "symbol": order.symbol,
        "action": order.action_text or order.action.value,
        "order_type": order.order_type.value,
        "quantity": order.quantity,
        "limit_price": optional_price(order.limit_price, is_set=is_lmt),
        "stop_price": optional_price(order.stop_price, is_set=is_stp),
        "status": status.value,
        "filled_qty": 0 if restored else filled_qty,
        "remaining_qty": remaining,
        "avg_fill_price": 0.0 if restored else ib_float(report.avg_fill_price),
        "source": "broker",
        "can_cancel": is_open(status.value),
        "parent_id": None if restored else order.parent_id,
        "order_ref": order.order_ref,
        "created_at": created,
        "updated_at": updated,
    }


def newest_first(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """ib_client.py list_orders: sorted on the updated_at text, newest first (stable)."""
    return sorted(rows, key=lambda row: str(row["updated_at"]), reverse=True)
