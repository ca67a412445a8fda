"""SQL of claims: a `trade_approvals` row or a status approval becomes an execution, fenced
by the leadership epoch; and the approvals still waiting for one.

The text is in store/sql/claims.sql."""

from trade_executor.store.sqlfiles import load

_SQL = load("claims.sql")

CLAIM = _SQL.text("claim")
PENDING_APPROVALS = _SQL.text("pending_approvals")
CLAIM_STATUS = _SQL.text("claim_status")
READ_STATUS_APPROVAL = _SQL.text("read_status_approval")
PENDING_STATUS_APPROVALS = _SQL.text("pending_status_approvals")
