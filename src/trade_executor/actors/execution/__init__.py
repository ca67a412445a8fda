"""The executor's parts, one concern each: `decide` (serial, against the RiskBook), `submit`
(intent, one POST, reconciliation of a lost answer), `outcomes` (final decisions recorded and
reflected in the RiskBook), `recovery` (the RiskBook rebuilt and leftovers settled at start).
They share `shared.Shared`, which sits below all of them; `actors.executor` wires them."""
