"""trade-executor: turns approved trading signals into broker orders, exactly once."""

__version__ = "0.1.0"
