"""The command line (CONTRACT section 2).

Exit codes: 0 success; 2 bad usage; 78 invalid configuration (the message names the setting);
1 anything else, with one sentence on stderr and no traceback for what an operator meets first
(a database that does not exist, a refused login, a schema not migrated, a missing API_TOKEN, a
port in use: `failures.explain`). `execute` adds codes of its own (`ops.execute.EXIT_CODES`).
Output cut short by a closed pipe (`check-config | head -3`) ends quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from trade_executor import __version__
from trade_executor.cli import extensions
from trade_executor.config.sources import EX_CONFIG, ConfigError, Settings, load_settings
from trade_executor.observability.logging import CurrentStream, configure_logging
from trade_executor.ops.exit_codes import EX_USAGE, CommandError

__all__ = ["EX_USAGE", "CommandError", "build_parser", "main"]

# 128 + SIGPIPE, what a shell reports for a program whose reader went away.
EX_BROKEN_PIPE = 141

EXIT_CODES_HELP = """exit codes:
  0   success
  1   anything else, with one sentence on stderr (a missing database, a refused login,
      a schema not migrated: run trade-executor migrate, ...)
  2   bad usage
  78  invalid configuration (the message names the setting, its value and where it came from)
  execute has codes of its own: trade-executor execute --help"""

TOP_EXAMPLES = """examples:
  trade-executor --env-file /etc/trade-executor/trade-executor.env status
  trade-executor halt --reason "IB maintenance" --wait
  trade-executor completion bash > /etc/bash_completion.d/trade-executor"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples."""


def _add_env_file(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before and after the command; after it, it must not reset a value given before.
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        default=None if top else argparse.SUPPRESS,
        help="read settings from this file, as systemd's EnvironmentFile= does "
        "(default: TRADE_EXECUTOR_ENV_FILE, else the environment only)",
    )


def _command(
    commands: Any, name: str, summary: str, description: str, examples: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n{description}".rstrip(),
        epilog=f"example{'s' if examples.count(chr(10)) else ''}:\n{examples}",
        formatter_class=_Formatter,
    )
    _add_env_file(parser, top=False)
    return parser


def _id_text(text: str) -> str:
    """An execution id or prefix, checked for its syntax (exit 2 for a non-id), kept as typed."""
    from trade_executor.cli.commands import id_argument

    id_argument(text)
    return text


def build_parser() -> argparse.ArgumentParser:
    from trade_executor.cli.commands import id_argument
    from trade_executor.ops.execute import EXIT_CODES_HELP as EXECUTE_CODES

    parser = argparse.ArgumentParser(
        prog="trade-executor",
        description="Turns approved trading signals into broker orders, exactly once.",
        epilog=f"{TOP_EXAMPLES}\n\n{EXIT_CODES_HELP}",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"trade-executor {__version__}")
    _add_env_file(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _command(
        commands,
        "run",
        "the long-running supervisor (what systemd starts)",
        "Migrates the schema, takes the leader lock (or waits as a standby), then listens for\n"
        "approvals and executes them. Stops cleanly on SIGTERM, SIGINT or SIGHUP.",
        "  trade-executor --env-file /etc/trade-executor/trade-executor.env run",
    )
    _command(
        commands,
        "migrate",
        "create or upgrade the database schema (idempotent)",
        "Applies the missing numbered migrations, each once, under an advisory lock; safe on an\n"
        "existing jax-trading-assistant database. Prints what it applied as JSON.",
        "  trade-executor migrate",
    )
    check = _command(
        commands,
        "check-config",
        "validate the configuration and print it, secrets redacted",
        "Accepts exactly what `run` accepts; an invalid value exits 78 naming the setting,\n"
        "the value and the file and line it came from. With --connect, also reaches the\n"
        "database (schema version) and the IB bridge (connected, paper or live, endpoints).",
        "  trade-executor --env-file /etc/trade-executor/trade-executor.env check-config\n"
        "  trade-executor check-config --connect",
    )
    check.add_argument(
        "--connect",
        action="store_true",
        help="also reach the database and the bridge; exit 78 if the bridge cannot serve the "
        "configuration, 1 if either cannot be reached",
    )
    demo = _command(
        commands,
        "demo",
        "the whole pipeline on embedded defaults",
        "A throwaway PostgreSQL (unless DATABASE_URL is set), the paper bridge and sample\n"
        "signals approved one by one, with live progress and a closing summary; prints the\n"
        "address of the service's console (/console).",
        "  trade-executor demo\n  trade-executor demo --keep",
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="keep the embedded database directory, and the service with its console "
        "(/console) running after the story until Ctrl-C",
    )

    _command(
        commands,
        "paper-bridge",
        "run the simulated IB bridge (see paper-bridge --help)",
        "Serves the IB bridge's HTTP API from memory, for the demo and tests.",
        "  trade-executor paper-bridge --port 8092 --profile jax",
    )

    execute = commands.add_parser(
        "execute",
        help="approve and execute one signal through the running service",
        description="Approve and execute one signal through the running service's HTTP API.\n\n"
        "Prints the service's JSON answer (prices as exact JSON numbers). Needs API_TOKEN.",
        epilog="example:\n  trade-executor execute 3f2a91c0-5b1e-4c1a-9d7e-0a1b2c3d4e5f "
        f"--approved-by alice\n\n{EXECUTE_CODES}",
        formatter_class=_Formatter,
    )
    _add_env_file(execute, top=False)
    execute.add_argument("signal_id", metavar="SIGNAL_ID")
    execute.add_argument("--approved-by", required=True, metavar="WHO")
    execute.add_argument(
        "--url", help="the service's HTTP API (default http://HTTP_HOST:HTTP_PORT)"
    )

    status = _command(
        commands,
        "status",
        "what the running service sees, read from the database",
        "The active instance and its heartbeat, standbys, halted or not, the service's own\n"
        "limits (not this shell's), today's risk used and left, open positions, executions in\n"
        "flight and those that need an operator, as of the database's clock.",
        "  trade-executor status\n  trade-executor status --json | jq .needing_operator",
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")

    show = _command(
        commands,
        "show",
        "one execution and its whole event trail",
        "ID is an execution id, a signal id, or an unambiguous prefix of either\n"
        "(at least 4 hex digits).",
        "  trade-executor show 3f2a\n  trade-executor show 3f2a91c0 --json",
    )
    show.add_argument("id", metavar="ID", type=id_argument)
    show.add_argument("--json", action="store_true", help="print one JSON object")

    halt = _command(
        commands,
        "halt",
        "the kill switch: reject new approvals",
        "Written in the database (the service need not run) and applied by the running\n"
        "service within a second; says whether the running service acknowledged it. A second\n"
        "halt with another reason is refused unless --force (then the service logs both).",
        '  trade-executor halt --reason "IB maintenance" --wait',
    )
    halt.add_argument("--reason", required=True, help="why (shown by status and in the log)")
    halt.add_argument(
        "--by", default=None, help="who halts (default: SUDO_USER under sudo, else the OS user)"
    )
    halt.add_argument(
        "--force", action="store_true", help="replace the reason of a halt already in force"
    )
    _wait_options(halt)
    resume = _command(
        commands,
        "resume",
        "clear the kill switch",
        "New approvals are taken again; says whether the running service acknowledged it.",
        "  trade-executor resume --wait",
    )
    resume.add_argument(
        "--by", default=None, help="who resumes (default: SUDO_USER under sudo, else the OS user)"
    )
    _wait_options(resume)

    resolve = _command(
        commands,
        "resolve",
        "settle an execution the service cannot settle itself",
        "An `unknown` execution, or one left in submitting, submitted or partially_filled\n"
        "past its bound (the refusal names the bound). ID is an execution id, a signal id, or\n"
        "an unambiguous prefix of either. With --order-id the order is looked up at the bridge\n"
        "and must match the execution's symbol, side and quantity. The running service\n"
        "applies the change within a second (risk released or kept, symbol freed).",
        "  trade-executor resolve 3f2a --as failed\n"
        "  trade-executor resolve 3f2a --as cancelled --order-id 4242\n"
        "  trade-executor resolve 3f2a --as filled --fill-price 150.02\n"
        "  trade-executor resolve 3f2a --exit-price 144.87",
    )
    resolve.add_argument("execution_id", metavar="ID", type=_id_text)
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--as",
        dest="outcome",
        default=None,
        choices=["failed", "submitted", "filled", "cancelled"],
        help="the outcome (or --exit-price)",
    )
    resolve.add_argument(
        "--order-id",
        type=int,
        help="the broker's order id (checked at the bridge; needed by submitted)",
    )
    resolve.add_argument(
        "--fill-price",
        default=None,
        metavar="P",
        help="the entry's fill price (needed by --as filled unless the bridge's order has one)",
    )
    how.add_argument(
        "--exit-price",
        default=None,
        metavar="P",
        help="the exit price of a position the broker closed at a price not known",
    )
    resolve.add_argument(
        "--by", default=None, help="who resolves (default: SUDO_USER under sudo, else the OS user)"
    )

    resolve_position = _command(
        commands,
        "resolve-position",
        "give the exit price of a position the broker closed at an unknown price",
        "The reconciler closed it from the broker's positions with the stop's P&L counted\n"
        "against MAX_DAILY_REALIZED_LOSS; with the real price its P&L and R are recomputed and\n"
        "the running service books them within a second.",
        "  trade-executor resolve-position COIN --exit-price 212.40",
    )
    resolve_position.add_argument("symbol", metavar="SYMBOL", help="the position's symbol")
    resolve_position.add_argument("--exit-price", required=True, metavar="P", help="the price")
    resolve_position.add_argument(
        "--by", default=None, help="who resolves (default: SUDO_USER under sudo, else the OS user)"
    )

    report = _command(
        commands,
        "report",
        "closed trades with P&L and R, per-strategy totals, open positions",
        "Every position closed on the trading day(s) (symbol, side, quantity, entry, exit,\n"
        "reason, P&L, R, strategy, instance, opened, closed), totals per strategy (trades,\n"
        "win rate, average R, expectancy, realized P&L, largest loss) and the bridge's open\n"
        "positions with their unrealized P&L. Default: today, in the service's time zone.",
        "  trade-executor report\n"
        "  trade-executor report --from 2026-12-01 --to 2026-12-04 --format csv > week.csv",
    )
    from trade_executor.cli.commands import parse_day

    report.add_argument("--day", type=parse_day, metavar="YYYY-MM-DD", help="one trading day")
    report.add_argument("--from", dest="from_day", type=parse_day, metavar="YYYY-MM-DD")
    report.add_argument("--to", dest="to_day", type=parse_day, metavar="YYYY-MM-DD")
    report.add_argument("--strategy", metavar="S", help="only this strategy id")
    report.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _command(
        commands,
        "notify-test",
        "send a test message to every NOTIFY_URLS target",
        "Says which target answered; exit 1 if any did not.",
        "  trade-executor notify-test",
    )

    completion = _command(
        commands,
        "completion",
        "print a shell completion script",
        "Completes commands, options and their choices. For zsh, load it after\n"
        "`autoload -U bashcompinit && bashcompinit`.",
        "  trade-executor completion bash > /etc/bash_completion.d/trade-executor\n"
        "  source <(trade-executor completion bash)",
    )
    completion.add_argument("shell", choices=["bash"], help="the shell")

    close = _command(
        commands,
        "close",
        "close open positions through the running service",
        "The running service cancels every working order of ours for the symbol, closes the\n"
        "broker's quantity at market through the bridge and records exit_reason=close with the\n"
        "realized P&L. Refused (exit 1) when the broker's quantity or protective orders differ\n"
        "from the ledger's, unless --force.",
        "  trade-executor close AAPL --reason 'news halt'\n"
        "  trade-executor close --all --reason 'end of day'",
    )
    close.add_argument("symbol", nargs="?", metavar="SYMBOL", help="the position to close")
    close.add_argument("--all", action="store_true", help="close every open position")
    close.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    close.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the fills (default 60)"
    )
    close.add_argument("--json", action="store_true", help="print the positions as JSON")
    close.add_argument(
        "--force",
        action="store_true",
        help="close the broker's quantity even when the ledger and the broker disagree",
    )
    close.add_argument(
        "--by", default=None, help="who closes (default: SUDO_USER under sudo, else the OS user)"
    )
    protect = _command(
        commands,
        "protect",
        "protect an open position again through the bridge",
        "Places a stop-loss (and take-profit) for the broker's quantity through the bridge's\n"
        "/positions/{symbol}/protect, replacing the position's protective orders. Defaults:\n"
        "the signal's stop and target. Refused (exit 1) when the broker's quantity or\n"
        "protective orders differ from the ledger's, unless --force.",
        "  trade-executor protect AAPL\n  trade-executor protect AAPL --stop 144.50",
    )
    protect.add_argument("symbol", metavar="SYMBOL", help="the position to protect")
    protect.add_argument("--stop", default=None, metavar="P", help="the stop price")
    protect.add_argument("--take-profit", default=None, metavar="P", help="the target price")
    protect.add_argument(
        "--force", action="store_true", help="protect even when ledger and broker disagree"
    )
    protect.add_argument(
        "--by", default=None, help="who protects (default: SUDO_USER under sudo, else the OS user)"
    )
    return parser


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="return once the running service applied it (exit 1 if none did in time)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long --wait waits (default 30)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        return _broken_pipe()
    return code


def _broken_pipe() -> int:
    # The reader went away (`| head`): nothing more can be said; point stdout at /dev/null so
    # the interpreter's final flush does not fail again with a traceback.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EX_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "paper-bridge" in args_list and "completion" not in args_list:
        # The paper bridge has its own parser (and --help); it needs no settings.
        try:
            paper_main = extensions.load("paper_bridge")
        except extensions.MissingExtension as error:
            print(f"trade-executor: {error}", file=sys.stderr)
            return EX_CONFIG
        return int(paper_main(args_list[args_list.index("paper-bridge") + 1 :]))
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command == "completion":
        return _completion(parser)
    try:
        settings = load_settings(args.env_file)
    except ConfigError as error:
        print(f"trade-executor: {error}", file=sys.stderr)
        return EX_CONFIG
    if args.command == "run":
        configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values())
    elif args.command == "migrate":
        # Its answer (the JSON of what it applied) is stdout; its log lines go to stderr.
        configure_logging(
            settings.log_format,
            settings.log_level,
            stream=CurrentStream("stderr"),
            secrets=settings.secret_values(),
        )
    else:
        # One-shot commands print their answer on stdout: keep log lines apart, on stderr.
        level = "warning" if settings.log_level in ("debug", "info") else settings.log_level
        configure_logging(
            "console", level, stream=CurrentStream("stderr"), secrets=settings.secret_values()
        )
    handler = COMMANDS[args.command]
    try:
        return handler(settings, args)
    except ConfigError as error:
        print(f"trade-executor: {error}", file=sys.stderr)
        return EX_CONFIG
    except CommandError as error:
        print(f"trade-executor: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130


def _completion(parser: argparse.ArgumentParser) -> int:
    from trade_executor.cli.completion import bash_script

    try:
        extra = {"paper-bridge": extensions.load("paper_bridge_parser")()}
    except extensions.MissingExtension:
        extra = {}
    print(bash_script(parser, extra), end="")
    return 0


def _run(settings: Settings, _: argparse.Namespace) -> int:
    import asyncio

    from trade_executor.config.session_calendar import preload

    # The calendar's table is built in a child process while this one imports the service
    # (session_calendar's docstring); validate_for_run collects it (OUTSIDE_SESSION=reject),
    # else the exits' re-protection at the open does when the actors are built.
    preload(settings.trading_session, settings.trading_day_timezone)
    from trade_executor.service.run import Service

    settings.validate_for_run()  # DATABASE_URL is required: fail with 78 before anything starts
    service = Service(settings)
    code = asyncio.run(service.run())
    if service.refusal is not None:
        print(f"trade-executor: {service.refusal}", file=sys.stderr)
    elif service.failure is not None:
        # The log has the details; the person (or systemd's journal) gets one sentence.
        print(f"trade-executor: {service.failure}", file=sys.stderr)
    return code


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    import asyncio

    from trade_executor.store.errors import StoreError
    from trade_executor.store.failures import explain
    from trade_executor.store.migrate import migrate
    from trade_executor.store.pgerrors import translated

    dsn = settings.dsn()

    async def apply() -> list[Any]:
        with translated():
            return list(await migrate(dsn))

    try:
        applied = asyncio.run(apply())
    except StoreError as error:
        raise CommandError(explain(error, dsn=dsn) or f"migrate failed: {error}") from None
    print(json.dumps({"applied": applied}))
    return 0


def _check_config(settings: Settings, args: argparse.Namespace) -> int:
    settings.validate_for_run()  # accept exactly what `run` accepts
    for warning in settings.warnings():
        print(f"trade-executor: warning: {warning}", file=sys.stderr)
    if settings.notify_target_urls():
        from trade_executor.notify.sender import BadTarget, targets_from

        try:
            targets_from(settings.notify_target_urls())
        except BadTarget as error:
            raise ConfigError(str(error)) from None
    for name, value in settings.redacted().items():
        print(f"{name}={value}")
    if not getattr(args, "connect", False):
        return 0
    import asyncio

    from trade_executor.cli.connectcheck import connect_checks, print_report

    sys.stdout.flush()
    return print_report(asyncio.run(connect_checks(settings)))


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    try:
        run_demo = extensions.load("demo")
    except extensions.MissingExtension as error:
        raise CommandError(str(error), code=EX_CONFIG) from None
    return int(run_demo(settings, keep=args.keep))


def _ops(name: str) -> Callable[[Settings, argparse.Namespace], int]:
    """The adapter of `commands` that runs operation `name`, its OperationError one sentence."""

    def handler(settings: Settings, args: argparse.Namespace) -> int:
        from trade_executor.cli.commands import COMMANDS as ADAPTERS
        from trade_executor.ops.common import OperationError

        try:
            return ADAPTERS[name](settings, args)
        except OperationError as error:
            raise CommandError(str(error)) from None

    return handler


COMMANDS: dict[str, Callable[[Settings, Any], int]] = {
    "run": _run,
    "migrate": _migrate,
    "check-config": _check_config,
    "demo": _demo,
    "execute": _ops("execute"),
    "status": _ops("status"),
    "show": _ops("show"),
    "halt": _ops("halt"),
    "resume": _ops("resume"),
    "resolve": _ops("resolve"),
    "resolve-position": _ops("resolve-position"),
    "close": _ops("close"),
    "protect": _ops("protect"),
    "report": _ops("report"),
    "notify-test": _ops("notify-test"),
    "completion": lambda settings, args: 0,  # handled before settings are read
}
