"""The command line (CONTRACT section 2).

Exit codes: 0 success; 2 bad usage; 78 invalid configuration (the message names the setting);
1 anything unexpected. Errors are one clear sentence on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from trade_executor import __version__
from trade_executor.config import EX_CONFIG, ConfigError, Settings, load_settings
from trade_executor.exits import EX_USAGE, CommandError
from trade_executor.logging import configure_logging

__all__ = ["EX_USAGE", "CommandError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trade-executor",
        description="Turns approved trading signals into broker orders, exactly once.",
    )
    parser.add_argument("--version", action="version", version=f"trade-executor {__version__}")
    parser.add_argument(
        "--env-file", metavar="PATH", help="read settings from this file (else the environment)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("run", help="the long-running supervisor (what systemd starts)")
    commands.add_parser("migrate", help="create or upgrade the database schema (idempotent)")
    commands.add_parser(
        "check-config", help="validate the configuration and print it, secrets redacted"
    )
    demo = commands.add_parser("demo", help="the whole pipeline on embedded defaults")
    demo.add_argument("--keep", action="store_true", help="keep the embedded database directory")

    commands.add_parser(
        "paper-bridge", help="run the simulated IB bridge (see paper-bridge --help)"
    )

    execute = commands.add_parser(
        "execute", help="approve and execute one signal through the running service"
    )
    execute.add_argument("signal_id", metavar="SIGNAL_ID")
    execute.add_argument("--approved-by", required=True, metavar="WHO")
    execute.add_argument(
        "--url", help="the service's HTTP API (default http://HTTP_HOST:HTTP_PORT)"
    )

    commands.add_parser(
        "status", help="today's risk budget, open positions, executions in flight, halted or not"
    )
    halt = commands.add_parser("halt", help="the kill switch: reject new approvals")
    halt.add_argument("--reason", required=True)
    halt.add_argument("--by", default=None, help="who halts (default: the OS user)")
    resume = commands.add_parser("resume", help="clear the kill switch")
    resume.add_argument("--by", default=None, help="who resumes (default: the OS user)")

    resolve = commands.add_parser(
        "resolve",
        help="settle an execution the service cannot settle itself",
        description=(
            "Settle an `unknown` execution, or one left in submitting, submitted or "
            "partially_filled past its bound. With --order-id the order is looked up at the "
            "bridge and must match the execution's symbol, side and quantity. The running "
            "service applies the change within a second."
        ),
        epilog="example: trade-executor resolve 3f1e0c1a --as cancelled --order-id 1042",
    )
    resolve.add_argument(
        "execution_id", metavar="ID", help="execution id, signal id, or a unique prefix of either"
    )
    resolve.add_argument(
        "--as",
        dest="outcome",
        required=True,
        choices=["failed", "submitted", "filled", "cancelled"],
    )
    resolve.add_argument(
        "--order-id",
        type=int,
        help="the broker's order id (checked at the bridge; needed by submitted)",
    )
    resolve.add_argument("--by", default=None, help="who resolves (default: the OS user)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if "paper-bridge" in args_list:
        # The paper bridge has its own parser (and --help); it needs no settings.
        from trade_executor.broker.paper import main as paper_main

        return paper_main(args_list[args_list.index("paper-bridge") + 1 :])
    parser = build_parser()
    args = parser.parse_args(args_list)
    try:
        settings = load_settings(args.env_file)
    except ConfigError as error:
        print(f"trade-executor: {error}", file=sys.stderr)
        return EX_CONFIG
    if args.command in ("run", "migrate"):
        configure_logging(settings.log_format, settings.log_level, secrets=settings.secret_values())
    else:
        # One-shot commands print their answer on stdout: keep log lines apart, on stderr.
        level = "warning" if settings.log_level in ("debug", "info") else settings.log_level
        configure_logging("console", level, stream=sys.stderr, secrets=settings.secret_values())
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


def _run(settings: Settings, _: argparse.Namespace) -> int:
    import asyncio

    from trade_executor.service import Service

    settings.validate_for_run()  # DATABASE_URL is required: fail with 78 before anything starts
    return asyncio.run(Service(settings).run())


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    import asyncio

    from trade_executor.store.migrate import migrate

    try:
        applied = asyncio.run(migrate(settings.dsn()))
    except OSError as error:
        raise CommandError(f"cannot reach the database: {error}") from None
    print(json.dumps({"applied": applied}))
    return 0


def _check_config(settings: Settings, _: argparse.Namespace) -> int:
    settings.validate_for_run()  # accept exactly what `run` accepts
    warning = settings.limits_off_warning()
    if warning is not None:
        print(f"trade-executor: warning: {warning}", file=sys.stderr)
    for name, value in settings.redacted().items():
        print(f"{name}={value}")
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from trade_executor.demo import run_demo

    return run_demo(settings, keep=args.keep)


def _ops(name: str) -> Callable[[Settings, argparse.Namespace], int]:
    def handler(settings: Settings, args: argparse.Namespace) -> int:
        from trade_executor import ops as operations

        command: Callable[[Settings, argparse.Namespace], int] = getattr(operations, name)
        try:
            return command(settings, args)
        except operations.OperationError as error:
            raise CommandError(str(error)) from None

    return handler


COMMANDS: dict[str, Callable[[Settings, Any], int]] = {
    "run": _run,
    "migrate": _migrate,
    "check-config": _check_config,
    "demo": _demo,
    "execute": _ops("execute"),
    "status": _ops("status"),
    "halt": _ops("halt"),
    "resume": _ops("resume"),
    "resolve": _ops("resolve"),
}
