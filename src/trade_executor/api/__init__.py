"""The HTTP API of the service (CONTRACT section 6)."""
