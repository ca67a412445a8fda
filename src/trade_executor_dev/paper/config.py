"""The paper bridge's settings, and its fault knobs (changeable at run time: /admin/faults).

Profiles (`PaperConfig.profile`):
- `ideal`: the polite bridge of CONTRACT section 7's API, exact Decimal answers, no latency of its
  own, `order_ref` honoured, orders good till cancelled.
- `jax`: the real jax-trading-assistant bridge as of March 2026 (`services/ib-bridge`), every
  quirk of CONTRACT section 7 (see `jax.py`), its sleeps scaled by `Faults.latency_scale`.
- `legacy`: that bridge before March 2026: no bracket endpoint, no order list, no DELETE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    """Injected misbehaviour. Rates are probabilities per request, drawn from the seeded RNG.

    - `latency`: seconds added before every IB API answer.
    - `error_rate`: answer 500 `{"detail"}` without doing anything.
    - `unavailable_rate`: answer 503 `{"detail": "Not connected to IB Gateway"}` without doing
      anything (`/health` instead answers 200 with `connected: false`, like the real bridge).
    - `drop_after_accept`: an order POST records the order, then the connection is closed with
      no answer body.
    - `html`: the request is processed, then answered 200 with an HTML page instead of JSON.
    - `fill_mode`: "never" leaves every order working (nothing fills, not even MKT).
    - `partial_fill_qty`: > 0 fills an order at most this many shares per price event (placement,
      tick, price move); the rest fills on later events (status stays working meanwhile).
    - `cancelled_before_fill`: probability that a newly placed order is reported `Cancelled`
      (zero fills) by its first `cancelled_reads` status reads, while it in fact goes on to work
      and fill (IB's error 10349 after which ib_insync marks the order Cancelled).
    - `latency_scale` (jax, legacy): multiplies the real bridge's own sleeps and the time to
      identify a new symbol; 0 removes them.
    - `qualify_seconds` (jax, legacy): how long identifying a symbol seen for the first time takes
      before scaling (the jax bridge gives up at 5 s and goes on with a fallback contract).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency: float = Field(default=0.0, ge=0, le=60)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    unavailable_rate: float = Field(default=0.0, ge=0, le=1)
    drop_after_accept: float = Field(default=0.0, ge=0, le=1)
    html: float = Field(default=0.0, ge=0, le=1)
    fill_mode: Literal["normal", "never"] = "normal"
    partial_fill_qty: int = Field(default=0, ge=0)
    cancelled_before_fill: float = Field(default=0.0, ge=0, le=1)
    cancelled_reads: int = Field(default=1, ge=1, le=1000)
    latency_scale: float = Field(default=1.0, ge=0, le=100)
    qualify_seconds: float = Field(default=5.0, ge=0, le=60)


Profile = Literal["ideal", "jax", "legacy"]
PROFILES: tuple[Profile, ...] = ("ideal", "jax", "legacy")


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Start-up state. `tick_interval` <= 0 turns the background price ticker off (tests).

    `unknown_symbols`: symbols the simulated IB cannot identify (besides malformed ones, see
    `jax.py`); `paper_trading`: what `/health` reports (switchable at /admin/account);
    `request_log`: how many IB API requests `/admin/requests` keeps (0: none, no logging cost).
    """

    seed: int = 0
    net_liquidation: Decimal = Decimal(100000)
    buying_power: Decimal = Decimal(100000)
    tick_interval: float = 0.05
    volatility: Decimal = Decimal("0.001")  # standard deviation of one tick's relative move
    default_price: Decimal = Decimal(100)  # reference price of a symbol first seen on a MKT order
    account_id: str = "DU0000000"
    currency: str = "USD"
    faults: Faults = field(default_factory=Faults)
    profile: Profile = "ideal"
    unknown_symbols: frozenset[str] = frozenset()
    paper_trading: bool = True
    request_log: int = 20_000

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}: expected one of {PROFILES}")
        if self.request_log < 0:
            raise ValueError("request_log must be >= 0")
