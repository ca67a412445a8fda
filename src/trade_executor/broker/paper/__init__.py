"""The paper bridge: the IB bridge API (CONTRACT section 7) served from memory.

`trade-executor paper-bridge --help` lists the flags. Besides the IB API it serves, for tests and
demos only (never subject to the fault knobs):

- `GET /admin/faults`, `POST /admin/faults` `{latency?, error_rate?, unavailable_rate?,
  drop_after_accept?, html?, fill_mode?}` (a partial update; answers the new settings)
- `POST /admin/reset`: orders, positions, account, prices and faults back to start-up
- `GET /admin/orders`: every order with `order_ref`, `created_at` (RFC 3339 UTC, microseconds,
  stamped when the bridge processed it), `received_at` (`time.monotonic()`) and `child_ids`
- `POST /admin/price` `{symbol, price}`: move a price now (and fill what it crosses)
- `GET /admin/prices`; `POST /admin/step` `{ticks}`: advance the simulated market
- `POST /admin/account` `{net_liquidation?, buying_power?}`
"""

from .app import PaperBridge, create_app
from .cli import main
from .config import Faults, PaperConfig
from .exchange import OrderError, PaperBroker
from .server import serve

__all__ = [
    "Faults",
    "OrderError",
    "PaperBridge",
    "PaperBroker",
    "PaperConfig",
    "create_app",
    "main",
    "serve",
]
