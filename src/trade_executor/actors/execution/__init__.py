"""The executor's parts: one synchronous `core` that owns the state (the RiskBook, the working
orders, the tallies), fed events and answering what to do, and the shells around it, one concern
each, doing the I/O: `decide` (account reads, the core's verdicts carried out), `submit` (intent,
one POST, reconciliation of a lost answer), `outcomes` (final decisions recorded, the breaker's
halts), `recovery` (the ledger read at start, leftovers settled), `deadlines` (the bounds
scan), `corrections` (fills reconciliation found), `vetting` (the checks before a decision) and
`wall` (the kill switch in front of the bridge). They share `shared.Shared` (the I/O handles and
the core); `actors.executor` wires them."""
