"""`check-config --connect` (CONTRACT section 2): reach the database (schema version) and the
bridge (connected, paper or live, which endpoints it has), as `run` would at start.

Exit codes: 0 both answered and the bridge can serve the configuration (warnings are printed on
stderr); 78 the bridge cannot serve it (`ORDER_PROTECTION=bracket` against a bridge without
`POST /orders/bracket`: `run` refuses to start the same way); 1 the database or the bridge could
not be reached, each said in one sentence on stderr.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

import anyio

from trade_executor.broker.capabilities import BridgeCapabilities
from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError, EndpointMissing
from trade_executor.config.redact import redact_dsn
from trade_executor.config.sources import EX_CONFIG, Settings
from trade_executor.store.errors import StoreError
from trade_executor.store.schema_version import SchemaVersion, schema_version


@dataclass
class ConnectReport:
    """What the checks found: `lines` for stdout, `problems` (one sentence each) for stderr."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    refused: str | None = None
    schema: SchemaVersion | None = None
    capabilities: BridgeCapabilities | None = None

    @property
    def exit_code(self) -> int:
        if self.refused is not None:
            return EX_CONFIG
        return 1 if self.problems else 0


async def _database(settings: Settings, report: ConnectReport) -> None:
    dsn = settings.dsn()
    where = redact_dsn(dsn)
    try:
        schema = await schema_version(dsn)
    except (StoreError, OSError) as error:
        report.problems.append(f"cannot reach the database {where}: {error}")
        report.lines.append("database: UNREACHABLE")
        return
    report.schema = schema
    if schema.applied is None:
        state = "not migrated yet (run trade-executor migrate)"
    elif schema.pending:
        versions = ", ".join(f"{v:04d}" for v in schema.pending)
        state = f"schema version {schema.applied:04d}, migrations pending: {versions}"
    else:
        state = f"schema version {schema.applied:04d} (up to date)"
    report.lines.append(f"database: reachable, {state}")


async def _bridge(settings: Settings, report: ConnectReport) -> None:
    url = settings.ib_bridge_url
    caps: BridgeCapabilities | None = None
    async with BrokerClient(url, settings.ib_bridge_timeout, read_retries=1) as client:
        with anyio.move_on_after(settings.ib_bridge_timeout * 2):
            try:
                caps = await client.capabilities()
            except BrokerError as error:
                report.problems.append(f"cannot reach the IB bridge at {url}: {error}")
                report.lines.append("bridge: UNREACHABLE")
                return
    if caps is None:
        report.problems.append(f"the IB bridge at {url} did not answer in time")
        report.lines.append("bridge: UNREACHABLE")
        return
    report.capabilities = caps
    report.lines.append(f"bridge: {caps.describe()}")
    report.lines.append(f"bridge_account={caps.account_mode}")
    report.lines.append(f"bridge_missing={','.join(caps.missing)}")
    report.warnings.extend(caps.warnings())
    if not caps.connected:
        report.warnings.append("the bridge is not connected to IB: orders would fail now")
    if caps.paper_trading is False and not settings.allow_live_trading:
        report.warnings.append(
            "the bridge's account is live and ALLOW_LIVE_TRADING is false: "
            "approvals will be rejected live_trading_not_allowed"
        )
    try:
        caps.require(order_protection=settings.order_protection)
    except EndpointMissing as missing:
        report.refused = missing.reason


async def connect_checks(settings: Settings) -> ConnectReport:
    report = ConnectReport()
    await _database(settings, report)
    await _bridge(settings, report)
    return report


def print_report(
    report: ConnectReport, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Print `report` (stdout and stderr unless told) and return the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    for line in report.lines:
        print(line, file=out)
    for warning in report.warnings:
        print(f"trade-executor: warning: {warning}", file=err)
    for problem in report.problems:
        print(f"trade-executor: {problem}", file=err)
    if report.refused is not None:
        print(f"trade-executor: {report.refused}", file=err)
    return report.exit_code
