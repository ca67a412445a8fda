"""`trade-executor paper-bridge`: the command line of the paper bridge."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from functools import partial

import anyio
from pydantic import ValidationError

from .config import PROFILES, Faults, PaperConfig

DEFAULT_PROFILE = "jax"  # what runs against the service by default: the real bridge's behaviour

EX_USAGE = 2  # CONTRACT section 2: bad usage


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _rate_flag(parser: argparse.ArgumentParser, flag: str, help_text: str) -> None:
    # Given alone the flag means "always" (1.0); given a value, that probability.
    parser.add_argument(flag, type=float, nargs="?", const=1.0, default=0.0, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    from .admin import ENDPOINTS_HELP
    from .jaxwire import PROTECT_BODY_HELP

    p = argparse.ArgumentParser(
        prog="trade-executor paper-bridge",
        description="Serve the IB bridge API from memory with a simulated market.",
        epilog=f"{ENDPOINTS_HELP}\nthe bridge's protect body (jax profile):\n{PROTECT_BODY_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default=DEFAULT_PROFILE,
        help="jax: the real jax-trading-assistant bridge, quirks and latencies (default); "
        "ideal: the polite one; legacy: a bridge from before March 2026 (no bracket, list, "
        "DELETE)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8092, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=0, help="seed of the price paths and faults")
    p.add_argument("--net-liquidation", type=_amount, default=Decimal(100000))
    p.add_argument("--buying-power", type=_amount, default=Decimal(100000))
    p.add_argument("--tick-interval", type=float, default=0.05, help="seconds; 0 = no ticker")
    p.add_argument("--volatility", type=_amount, default=Decimal("0.001"), help="per tick")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument("--error-rate", type=float, default=0.0, help="probability of a 500")
    p.add_argument("--unavailable-rate", type=float, default=0.0, help="probability of a 503")
    _rate_flag(p, "--drop-after-accept", "probability that an order is kept but not answered")
    _rate_flag(p, "--html", "probability of an HTML answer after processing")
    p.add_argument("--fill-mode", choices=["normal", "never"], default="normal")
    p.add_argument(
        "--latency-scale",
        type=float,
        default=1.0,
        help="jax/legacy: multiplies the real bridge's own waits (0 = none)",
    )
    p.add_argument(
        "--qualify-seconds",
        type=float,
        default=5.0,
        help="jax/legacy: seconds to identify a symbol seen for the first time (before scaling)",
    )
    p.add_argument(
        "--partial-fill-qty", type=int, default=0, help="fill at most this many shares at a time"
    )
    _rate_flag(p, "--cancelled-before-fill", "probability that an order first reads Cancelled")
    p.add_argument("--cancelled-reads", type=int, default=1, help="reads that see that Cancelled")
    p.add_argument(
        "--unknown-symbol",
        action="append",
        default=[],
        metavar="SYMBOL",
        help="a symbol IB cannot identify (repeatable)",
    )
    p.add_argument("--live", action="store_true", help="report paper_trading false in /health")
    p.add_argument(
        "--request-log", type=int, default=20_000, help="requests kept for /admin/requests"
    )
    return p


def config_from_args(args: argparse.Namespace) -> PaperConfig:
    faults = Faults(
        latency=args.latency,
        error_rate=args.error_rate,
        unavailable_rate=args.unavailable_rate,
        drop_after_accept=args.drop_after_accept,
        html=args.html,
        fill_mode=args.fill_mode,
        latency_scale=args.latency_scale,
        qualify_seconds=args.qualify_seconds,
        partial_fill_qty=args.partial_fill_qty,
        cancelled_before_fill=args.cancelled_before_fill,
        cancelled_reads=args.cancelled_reads,
    )
    return PaperConfig(
        seed=args.seed,
        net_liquidation=args.net_liquidation,
        buying_power=args.buying_power,
        tick_interval=args.tick_interval,
        volatility=args.volatility,
        faults=faults,
        profile=args.profile,
        unknown_symbols=frozenset(s.upper() for s in args.unknown_symbol),
        paper_trading=not args.live,
        request_log=args.request_log,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse flags, serve until SIGINT/SIGTERM; 0 on a clean stop, 2 on bad flags."""
    from .server import serve

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        print(f"paper-bridge: invalid fault setting: {exc}", file=sys.stderr)
        return EX_USAGE
    except ValueError as exc:
        print(f"paper-bridge: {exc}", file=sys.stderr)
        return EX_USAGE

    def announce(port: int) -> None:
        # The address stays the line's last word: scripts and tests read it from there.
        print(
            f"paper bridge (profile {config.profile}) listening on http://{args.host}:{port}",
            file=sys.stderr,
            flush=True,
        )

    try:
        anyio.run(partial(serve, config, args.host, args.port, ready=announce))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"paper-bridge: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
