"""Exit codes of the command line and the error that carries one (CONTRACT section 2)."""

from __future__ import annotations

EX_USAGE = 2


class CommandError(Exception):
    """A command failed for a reason the user can act on; the message is one sentence."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
