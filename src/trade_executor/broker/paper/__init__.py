"""The paper bridge: the IB bridge API served from memory, with a simulated market and faults."""

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
