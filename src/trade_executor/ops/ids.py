"""Ids as operators type them: `trade_executor.store.lookup` does the parsing (the HTTP API shares
it); the command line's argparse form is `commands.id_argument`."""

from __future__ import annotations

from trade_executor.store.lookup import MIN_PREFIX, IdPattern, IdSyntaxError, parse_id, short

__all__ = ["MIN_PREFIX", "IdPattern", "IdSyntaxError", "parse_id", "short"]
