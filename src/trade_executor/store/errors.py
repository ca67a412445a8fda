"""The store's own errors: callers never see asyncpg's.

`PgStore` (and the other PostgreSQL adapters of this package) translate the driver's exceptions
at their edge, as httpx maps transport errors at its own: a caller decides on these types only.
A transition the current state does not allow is `domain.states.IllegalTransition`.
"""

from __future__ import annotations


class StoreError(Exception):
    """The database refused a statement for a reason that retrying would only repeat (a bug, a
    value out of a column's range): the same call will fail the same way."""


class StoreUnavailable(StoreError):
    """The database could not be reached or dropped the connection: the statement may succeed
    if tried again later (it changed nothing, or its transaction was rolled back)."""


class StoreConflict(StoreError):
    """A write broke a uniqueness or reference rule (a duplicate id, a missing parent row)."""


class SchemaMissing(StoreError):
    """The schema is not there yet (`trade-executor migrate` has not run)."""


class Fenced(StoreError):
    """This instance's leadership epoch is no longer the database's (another instance took
    over): the claim or intent write was refused and changed nothing. The caller must stop
    acting (send nothing, mark nothing failed) and leave the row to the new leader."""

    def __init__(self, epoch: int | None, current: int | None) -> None:
        super().__init__(f"fenced: this instance leads epoch {epoch}, the database says {current}")
        self.epoch = epoch
        self.current = current


class LockBlocked(StoreError):
    """A schema change could not get its lock within the lock timeout, attempt after attempt:
    another session holds the table (an open transaction). The message is one sentence naming
    that session (pid, application, since when) and what to do."""
