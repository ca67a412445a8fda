"""IB's "no value": how the bridge writes a price IB left unset, and how we read it.

IB fills every price field of an order it was not given (a market order's limit price, a limit
order's stop price) with the largest double, 1.7976931348623157e+308, and the real bridge passes it
on as a JSON number. It is not a price: rounding it to the cent raises `decimal.InvalidOperation`,
and taking it for an amount would make any cap meaningless. Anything this large, and anything
non-finite, is read as "no value" where a field may be absent, and refused where it may not.
"""

from __future__ import annotations

from decimal import Decimal

# What ib_insync's UNSET_DOUBLE (sys.float_info.max) looks like once parsed to Decimal.
IB_UNSET_DOUBLE = Decimal("1.7976931348623157e+308")

# No real price or amount comes near this; IB's sentinel is far above it.
UNSET_THRESHOLD = Decimal("1e300")


def is_unset(value: Decimal) -> bool:
    """True for IB's unset sentinel, for any magnitude >= 1e300 and for NaN and infinities."""
    return not value.is_finite() or abs(value) >= UNSET_THRESHOLD


def value_or_none(value: Decimal | None) -> Decimal | None:
    """`value`, or None when it is absent or unset (see `is_unset`). Never rounds."""
    if value is None or is_unset(value):
        return None
    return value
