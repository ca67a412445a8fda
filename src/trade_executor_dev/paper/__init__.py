"""The paper bridge: the IB bridge API (CONTRACT section 7) served from memory.

`trade-executor paper-bridge --help` lists the flags; `--profile` chooses the behaviour (see
`config.py`): `jax` (the real jax-trading-assistant bridge, quirks and latencies; the command's
default), `ideal` (the polite one; `PaperConfig`'s default), `legacy` (before March 2026).
Besides the IB API it serves, for tests and demos only (never subject to the fault knobs):

- `GET /admin/faults`, `POST /admin/faults` `{latency?, error_rate?, unavailable_rate?,
  drop_after_accept?, html?, fill_mode?, partial_fill_qty?, cancelled_before_fill?,
  cancelled_reads?, latency_scale?, qualify_seconds?}` (a partial update; answers the settings)
- `POST /admin/reset`: orders, positions, account, prices, faults and the request log back to
  start-up
- `POST /admin/restart` `{client_id_changed?}`: the bridge restarts and reconnects: working
  orders keep their ids (as ib_insync re-reads them), finished ones are listed with order_id 0,
  positions kept; `client_id_changed: true` hides the working orders (`Unknown`, DELETE 400)
- `POST /admin/disconnect` `{seconds?}`, `POST /admin/reconnect`, `GET /admin/connection`: IB
  connectivity lost (1100: /health connected false, IB calls 503) and restored (1102)
- `POST /admin/fill` `{order_id, price?}`: IB fills a working order now, even while down
- `POST /admin/session-close`: open DAY orders (every jax/legacy order) expire `Cancelled`
- `GET /admin/requests` (method, path, status, received_at / answered_at monotonic,
  received_wall, body of every IB API request), `DELETE /admin/requests` to clear it
- `GET /admin/orders`: every order with `order_ref`, `created_at` (RFC 3339 UTC, microseconds,
  stamped when the bridge processed it), `received_at` (`time.monotonic()`), `child_ids`, `tif`,
  `oca_group`, `session`, `visible`, `phantom_reads`
- `POST /admin/price` `{symbol, price}`: move a price now (and fill what it crosses)
- `GET /admin/prices`; `POST /admin/step` `{ticks}`: advance the simulated market
- `POST /admin/account` `{net_liquidation?, buying_power?, account_id?, paper_trading?}`
- `POST /admin/symbols` `{unknown: [...]}`: symbols IB cannot identify (jax, legacy)
"""

from .app import PaperBridge, create_app
from .cli import main
from .config import PROFILES, Faults, PaperConfig, Profile
from .exchange import OrderError, PaperBroker
from .server import serve

__all__ = [
    "PROFILES",
    "Faults",
    "OrderError",
    "PaperBridge",
    "PaperBroker",
    "PaperConfig",
    "Profile",
    "create_app",
    "main",
    "serve",
]
