"""The operator commands of CONTRACT section 2 that act on a running service's database or API:
one module per command, sharing `common`."""

from trade_executor.ops.close import close
from trade_executor.ops.common import OperationError
from trade_executor.ops.control import halt, resume
from trade_executor.ops.execute import execute
from trade_executor.ops.exit_price import resolve_position
from trade_executor.ops.protect import protect
from trade_executor.ops.report import report
from trade_executor.ops.resolve import resolve
from trade_executor.ops.show import show
from trade_executor.ops.status import status

__all__ = [
    "OperationError",
    "close",
    "execute",
    "halt",
    "protect",
    "report",
    "resolve",
    "resolve_position",
    "resume",
    "show",
    "status",
]
