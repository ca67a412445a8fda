"""The operations an operator performs on a running service's database, broker and API
(CONTRACT section 2), one module each, as typed async functions over a `Context` that return
a result or a `Refusal` (see `common`). The command line (`trade_executor.cli.commands`), the
HTTP API, the console and the tests call them alike."""

from trade_executor.ops.close import Closed, close
from trade_executor.ops.common import Context, OperationError, Refusal
from trade_executor.ops.control import SwitchOutcome, halt, resume
from trade_executor.ops.execute import Answered, execute
from trade_executor.ops.exit_price import ExitPriceGiven, resolve_position
from trade_executor.ops.protect import Protected, protect
from trade_executor.ops.report import Report, report
from trade_executor.ops.resolve import Resolved, resolve
from trade_executor.ops.show import Shown, show
from trade_executor.ops.status import status

__all__ = [
    "Answered",
    "Closed",
    "Context",
    "ExitPriceGiven",
    "OperationError",
    "Protected",
    "Refusal",
    "Report",
    "Resolved",
    "Shown",
    "SwitchOutcome",
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
