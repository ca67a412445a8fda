"""trade-executor: turns approved trading signals into broker orders, exactly once.

The public names are few, and loaded on first use (so that `python -m trade_executor --help`
imports only what it needs): the settings and how they are read, the service, and the command
line's entry point. Everything else is internal to its component (see the README's layout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from trade_executor.cli.main import main
    from trade_executor.config.settings import Settings
    from trade_executor.config.sources import ConfigError, load_settings
    from trade_executor.service.run import Service

__all__ = ["ConfigError", "Service", "Settings", "__version__", "load_settings", "main"]

_WHERE = {
    "ConfigError": "trade_executor.config.sources",
    "Service": "trade_executor.service.run",
    "Settings": "trade_executor.config.settings",
    "load_settings": "trade_executor.config.sources",
    "main": "trade_executor.cli.main",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'trade_executor' has no attribute {name!r}")
