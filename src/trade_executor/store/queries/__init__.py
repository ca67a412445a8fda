"""SQL of the store, as named constants, one module per concern, each a query of the concern's
`.sql` file in `store/sql/` (loaded by `store.sqlfiles`). Every value is a bind parameter;
every price is cast through `numeric` so that a legacy `DOUBLE PRECISION` column still receives an
exact Decimal. Every name is importable from here:
`from trade_executor.store import queries as q`."""

from trade_executor.store.queries.breaks import *  # noqa: F403
from trade_executor.store.queries.claims import *  # noqa: F403
from trade_executor.store.queries.exits import *  # noqa: F403
from trade_executor.store.queries.ledger import *  # noqa: F403
from trade_executor.store.queries.operator import *  # noqa: F403
from trade_executor.store.queries.original import *  # noqa: F403
