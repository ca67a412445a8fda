"""`run_demo`: what the demo starts (PostgreSQL, the paper bridge, the real service), the story
told against them, and everything stopped again before it returns.

Guarantees:
- The service's JSON logs go to a file; the terminal keeps the narrative. The file (and its
  directory) is removed after a successful run unless `keep`, and named otherwise.
- A DATABASE_URL database that holds signals or executions is refused before anything starts
  or is written: the demo inserts its own signals (they would count in that database's daily
  risk and `status`), and its executor would take up approvals waiting there against the paper
  bridge.
- A service that stops on its own ends the story; the exit code says so.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import anyio
import asyncpg
from anyio.abc import TaskStatus
from pydantic import SecretStr

from trade_executor.clock import utcnow
from trade_executor.config.redact import redact_dsn
from trade_executor.config.sources import Settings
from trade_executor.observability.logging import configure_logging
from trade_executor.service.run import Service
from trade_executor.service.systemd import SystemdNotifier
from trade_executor.store.failures import where
from trade_executor.store.leadership import LEADER_LOCK_KEY
from trade_executor.store.migrate import migrate
from trade_executor_dev.devdb.server import EmbeddedPostgresError, embedded_postgres
from trade_executor_dev.paper import PaperConfig, serve

from .narration import Terminal, exits_table, summary_table
from .samples import Outcome
from .story import POLL, approve_samples, run_to_exits

EX_FAILURE = 1
START_TIMEOUT = 60.0

WAITING_APPROVALS = """
SELECT count(*) FROM trade_approvals a
WHERE a.approved AND NOT EXISTS (SELECT 1 FROM executions e WHERE e.signal_id = a.signal_id)
"""


# The session holding a running service's leader lock (a bigint advisory lock: the key's high
# and low halves are pg_locks' classid and objid).
LEADER_SESSION = """
SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND (l.classid::bigint << 32 | l.objid::bigint) = $1
LIMIT 1
"""


class DemoError(Exception):
    """The demo could not run; the message is one sentence for the terminal."""


def run_demo(settings: Settings, *, keep: bool = False, out: TextIO | None = None) -> int:
    """Run the demo; 0 when every sample signal was followed to its outcome. With `keep`, the
    service and its console stay up after the story until Ctrl-C."""
    terminal = Terminal(out or sys.stdout)
    workdir = Path(tempfile.mkdtemp(prefix="trade-executor-demo-"))
    log_path = workdir / "trade-executor.log"
    succeeded = False

    def clean_up() -> None:
        configure_logging(settings.log_format, settings.log_level)  # back off the closed file
        if keep or not succeeded:
            terminal.line(f"service logs (JSON lines): {log_path}", stamp=False)
        else:
            log_path.unlink(missing_ok=True)
            workdir.rmdir()

    with ExitStack() as stack:
        stack.callback(clean_up)
        log_file = stack.enter_context(log_path.open("a", encoding="utf-8"))
        configure_logging("json", "info", stream=log_file, secrets=settings.secret_values())
        terminal.line("trade-executor demo: signals -> approvals -> orders at a paper broker")
        try:
            if settings.database_url is None:
                try:
                    server = stack.enter_context(embedded_postgres(keep=keep))
                except EmbeddedPostgresError as error:
                    raise DemoError(str(error)) from None
                dsn, fresh = server.url, True
                terminal.line(
                    f"PostgreSQL {server.version}: a throwaway server in {server.directory} "
                    f"(binaries: {server.bindir})"
                )
            else:
                dsn, fresh = settings.dsn(), False
                terminal.line(f"PostgreSQL: DATABASE_URL {redact_dsn(dsn)}")
            code = asyncio.run(_demo(settings, dsn, fresh, terminal, keep))
        except DemoError as error:
            terminal.line(f"demo failed: {error}", stamp=False)
            return EX_FAILURE
        succeeded = code == 0
        return code


def _market(settings: Settings) -> str:
    """What TRADING_SESSION says of now (the demo runs at any hour)."""
    from trade_executor.ops.status import market_view

    return str(market_view(settings, utcnow())["session"])


def demo_settings(settings: Settings, dsn: str, bridge_url: str) -> Settings:
    """The user's settings with what the demo needs: its database and bridge, execution on,
    quick polling, the HTTP API on an ephemeral loopback port, and entries sent at any hour
    (OUTSIDE_SESSION=send: the demo trades a paper bridge, and says whether the market is open)."""
    return settings.model_copy(
        update={
            "outside_session": "send",
            "database_url": SecretStr(dsn),
            "database_password": None,  # already merged into `dsn`
            "ib_bridge_url": bridge_url,
            "execution_enabled": True,
            "http_host": "127.0.0.1",
            "http_port": 0,
            "order_poll_interval": 0.2,
            "order_poll_timeout": 30.0,
            "sweep_interval": 1.0,
            "listener_health_interval": 1.0,
            "cancelled_recheck_delay": 0.2,
            "shutdown_grace": 5.0,
        }
    )


async def _serve_bridge(
    stop: anyio.Event, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED
) -> None:
    def ready(port: int) -> None:
        task_status.started(f"http://127.0.0.1:{port}")

    # A new symbol's price starts at its first order's price; the ticker then moves it every
    # 50 ms, so a LMT entry fills at the first tick that crosses it.
    config = PaperConfig(seed=1, tick_interval=0.05)
    # The paper bridge's Hypercorn logs "Running on ..." to stderr; the service's own HTTP API
    # turns that log off (httpserve.py), and the demo keeps the terminal for its narrative.
    logging.getLogger("hypercorn.error").disabled = True
    await serve(config, "127.0.0.1", 0, ready=ready, shutdown_trigger=stop.wait)


async def _refuse_a_database_in_use(dsn: str) -> None:
    """DemoError unless the database is empty of signals and executions (tables may not exist
    yet: a new database is migrated after this check)."""
    conn = await asyncpg.connect(dsn)
    try:
        counts: dict[str, int] = {}
        for table in ("strategy_signals", "executions"):
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                counts[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
        waiting = 0
        if (
            counts.get("strategy_signals")
            and "executions" in counts
            and await conn.fetchval("SELECT to_regclass('trade_approvals') IS NOT NULL")
        ):
            waiting = await conn.fetchval(WAITING_APPROVALS)
        leader = await conn.fetchrow(LEADER_SESSION, LEADER_LOCK_KEY)
    finally:
        await conn.close()
    signals, executions = counts.get("strategy_signals", 0), counts.get("executions", 0)
    if leader is not None:
        raise DemoError(
            f"the database at {where(dsn)} is in use: a trade-executor service leads on it "
            f"(session pid {leader['pid']}, application_name {leader['application_name']!r}); "
            "the demo would only wait as its standby: give an empty database, or leave "
            "DATABASE_URL unset for a throwaway one"
        )
    if not signals and not executions:
        return
    held = f"{signals} signal(s) and {executions} execution(s)"
    if waiting:
        held += f", {waiting} approved signal(s) not yet executed among them"
    raise DemoError(
        f"the database at {where(dsn)} is in use ({held}): the demo would add its signals to "
        "its day and trade what waits there against the paper bridge; give an empty database, "
        "or leave DATABASE_URL unset for a throwaway one"
    )


async def _demo(
    settings: Settings, dsn: str, fresh: bool, terminal: Terminal, keep: bool = False
) -> int:
    if not fresh:
        await _refuse_a_database_in_use(dsn)
    await migrate(dsn)
    stop_bridge = anyio.Event()
    async with anyio.create_task_group() as tg:
        bridge_url: str = await tg.start(_serve_bridge, stop_bridge)
        terminal.line(f"paper bridge: {bridge_url} (net liquidation 100000, LMT orders fill)")
        market = _market(settings)
        terminal.line(f"market: {market}; the demo sends anyway (OUTSIDE_SESSION=send)")
        config = demo_settings(settings, dsn, bridge_url)
        token = _console_token(config)
        config = config.model_copy(update={"api_token": SecretStr(token)})
        service = Service(config, notifier=SystemdNotifier(None))
        stopped = anyio.Event()
        exit_codes: list[int] = []
        story = anyio.CancelScope()

        async def run_service() -> None:
            try:
                exit_codes.append(await service.run())
            finally:
                stopped.set()
                story.cancel()  # the service stopped on its own (Ctrl-C, or it failed)

        tg.start_soon(run_service)
        outcomes: list[Outcome] = []
        console = "(the service did not start)"
        with story:
            await _wait_active(service, terminal)
            console = f"http://127.0.0.1:{service.http_port}/console"
            _say_console(terminal, console, token, settings)
            outcomes = await approve_samples(config, dsn, terminal)
            await run_to_exits(dsn, bridge_url, outcomes, terminal)
        if keep and not story.cancelled_caught:
            # The service (and its console) run on until Ctrl-C, which stops it as SIGINT does.
            _print_tables(terminal, outcomes)
            terminal.line(stamp=False)
            terminal.line(f"console: {console} (running until Ctrl-C)", stamp=False)
            await stopped.wait()
            stop_bridge.set()
            return 0 if exit_codes == [0] else EX_FAILURE
        service.request_stop()
        await stopped.wait()
        stop_bridge.set()
    if story.cancelled_caught:
        terminal.line(f"the service stopped early (exit code {exit_codes[0]})")
        return exit_codes[0] or 130
    terminal.line("service stopped", stamp=True)
    _print_tables(terminal, outcomes)
    terminal.line(stamp=False)
    terminal.line(
        f"console: {console} (stopped with the demo; `trade-executor demo --keep` keeps the "
        "service and its console running until Ctrl-C)",
        stamp=False,
    )
    return 0 if exit_codes == [0] and all(o.row is not None for o in outcomes) else EX_FAILURE


def _print_tables(terminal: Terminal, outcomes: list[Outcome]) -> None:
    terminal.line(stamp=False)
    for line in summary_table(outcomes):
        terminal.line(line, stamp=False)
    exits = exits_table(outcomes)
    if exits:
        terminal.line(stamp=False)
        for line in exits:
            terminal.line(line, stamp=False)


def _console_token(config: Settings) -> str:
    """The API token the console's actions need: the user's API_TOKEN, else one for this run."""
    token = config.api_token.get_secret_value() if config.api_token is not None else ""
    return token or secrets.token_urlsafe(18)


def _say_console(terminal: Terminal, url: str, token: str, settings: Settings) -> None:
    given = settings.api_token is not None and settings.api_token.get_secret_value()
    # The terminal is the operator's own; the token never goes into the console's URL.
    secret = "your API_TOKEN" if given else f"{token} (made for this run)"
    terminal.line(f"console: {url} (log in with the API token to act: {secret})")


async def _wait_active(service: Service, terminal: Terminal) -> None:
    with anyio.fail_after(START_TIMEOUT):
        while service.role != "active":  # noqa: ASYNC110 - the service has no event
            await anyio.sleep(POLL)
    terminal.line(
        f"service active: listener, executor, pollers; HTTP API on 127.0.0.1:{service.http_port}"
    )
