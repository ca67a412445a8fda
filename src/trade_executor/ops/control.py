"""`halt` and `resume`: the kill switch (CONTRACT section 5)."""

from __future__ import annotations

import argparse

from trade_executor.config import Settings
from trade_executor.ops.common import who, with_store


def halt(settings: Settings, args: argparse.Namespace) -> int:
    with_store(settings, lambda store: store.set_control(True, args.reason, who(args)))
    print(f"halted: {args.reason}")
    return 0


def resume(settings: Settings, args: argparse.Namespace) -> int:
    with_store(settings, lambda store: store.set_control(False, None, who(args)))
    print("resumed")
    return 0
