"""Reading the paper bridge's requests and writing its order rows (the `ideal` profile's
shapes), shared by the IB routes and the admin routes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from trade_executor.broker import jsonnum

from .exchange import PaperOrder
from .requests import describe
from .state import Refusal

M = TypeVar("M", bound=BaseModel)
ZERO = Decimal("0.0")  # the real bridge's avg_fill_price when nothing has filled


def rfc3339(moment: datetime) -> str:
    return jsonnum.rfc3339(moment)


def order_json(order: PaperOrder, *, restored: bool = False) -> dict[str, object]:
    return {
        "order_id": 0 if restored else order.order_id,
        "symbol": order.symbol,
        "action": order.action.value,
        "order_type": order.order_type.value,
        "quantity": order.quantity,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "status": order.status.value,
        "filled_qty": order.filled_qty,
        "remaining_qty": order.remaining_qty,
        "avg_fill_price": order.avg_fill_price or ZERO,
        "parent_id": None if restored else order.parent_id,
        "order_ref": order.order_ref,
        "created_at": rfc3339(order.created_at),
        "updated_at": rfc3339(order.updated_at),
    }


async def read_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return jsonnum.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Refusal(400, f"Malformed JSON body: {exc}") from None


def validated(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refusal(422, describe(exc)) from None


def path_order_id(request: Request) -> int:
    raw = request.path_params["order_id"]
    if not raw.isdigit():
        raise Refusal(422, f"order_id: expected an integer, got {raw!r}")
    return int(raw)
