"""The command line: its parsers, shell completion, `check-config --connect`, and the
development commands reached through entry points (`extensions`)."""
