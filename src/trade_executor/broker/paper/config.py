"""The paper bridge's settings, and its fault knobs (changeable at run time: /admin/faults)."""

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
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency: float = Field(default=0.0, ge=0, le=60)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    unavailable_rate: float = Field(default=0.0, ge=0, le=1)
    drop_after_accept: float = Field(default=0.0, ge=0, le=1)
    html: float = Field(default=0.0, ge=0, le=1)
    fill_mode: Literal["normal", "never"] = "normal"


@dataclass(frozen=True, slots=True)
class PaperConfig:
    """Start-up state. `tick_interval` <= 0 turns the background price ticker off (tests)."""

    seed: int = 0
    net_liquidation: Decimal = Decimal(100000)
    buying_power: Decimal = Decimal(100000)
    tick_interval: float = 0.05
    volatility: Decimal = Decimal("0.001")  # standard deviation of one tick's relative move
    default_price: Decimal = Decimal(100)  # reference price of a symbol first seen on a MKT order
    account_id: str = "DU0000000"
    currency: str = "USD"
    faults: Faults = field(default_factory=Faults)
