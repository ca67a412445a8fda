"""Ids as operators type them on the command line: `trade_executor.store.lookup` parses them (the
HTTP API shares it); here only its argparse form, where a non-id is bad usage (exit 2)."""

from __future__ import annotations

import argparse

from trade_executor.store.lookup import MIN_PREFIX, IdPattern, IdSyntaxError, parse_id, short

__all__ = ["MIN_PREFIX", "IdPattern", "IdSyntaxError", "id_argument", "parse_id", "short"]


def id_argument(text: str) -> IdPattern:
    """`parse_id` as an argparse `type=`: a bad id is a usage error (exit 2) naming the value."""
    try:
        return parse_id(text)
    except IdSyntaxError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
