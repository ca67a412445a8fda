"""Observability: the structured log (and its tap), the Prometheus metrics."""
