"""The pure core: models, validation, sizing, order building and the risk book. No I/O here."""
