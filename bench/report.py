"""docs/BENCHMARKS.md from the raw results of bench/run.py."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from common import median

BENCH = Path(__file__).resolve().parent
ANALYSIS = BENCH / "ANALYSIS.md"


def _ms(value: float) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _s(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"


def _row(name: str, summary: dict[str, float], note: str = "") -> str:
    cells = [_ms(summary[k]) for k in ("p50", "p95", "p99", "max")]
    return f"| {name} | {' | '.join(cells)} | {int(summary['n'])} | {note} |"


def _postgres_version() -> str:
    try:
        out = subprocess.run(["psql", "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    # "psql (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)" -> "15.20"
    words = out.stdout.split()
    return words[2] if len(words) > 2 else "?"


def targets(results: dict[str, Any]) -> list[tuple[str, str, str, float, bool]]:
    """(target, measured, ratio text, ratio, met) for each target of issue 7."""
    floor = results["floor_notify"]["p50"] + results["floor_post"]["arrival"]["p50"]
    order = results["latency"]["order"]
    claim = results["latency"]["claim"]
    peer = results["peer_summary"]
    bursts = [b["per_second"] for b in results["bursts"]]
    burst_rate = median(bursts)
    big = results["growth"][-1]
    pollers = big["pollers"]
    recover = results["sizes"]["recover"]
    startup = median(results["startup"][str(recover)])
    rows = []
    ratio = order["p50"] / floor
    rows.append(
        (
            "approval → order p50 within 3× the floor",
            f"{_ms(order['p50'])} ms vs floor {_ms(floor)} ms",
            f"{ratio:.1f}× the floor (limit 3×)",
            ratio,
            ratio <= 3,
        )
    )
    ratio = order["p99"] / 30
    rows.append(
        (
            "approval → order p99 under 30 ms",
            f"{_ms(order['p99'])} ms",
            f"{ratio:.2f}× the limit",
            ratio,
            order["p99"] < 30,
        )
    )
    ratio = claim["p50"] / peer["p50"]
    rows.append(
        (
            "approval → claim p50 faster than Procrastinate's defer → start p50",
            f"{_ms(claim['p50'])} ms vs {_ms(peer['p50'])} ms",
            f"{ratio:.2f}× Procrastinate's",
            ratio,
            ratio < 1,
        )
    )
    ratio = burst_rate / 200
    rows.append(
        (
            f"burst of {results['sizes']['burst']} at ≥ 200 approvals/s",
            f"{burst_rate:.0f} approvals/s (median of {len(bursts)})",
            f"{ratio:.2f}× the target",
            ratio,
            burst_rate >= 200,
        )
    )
    ratio = pollers["rss_mb"] / 150
    rows.append(
        (
            f"{pollers['n']:,} pollers under 150 MB resident",
            f"{pollers['rss_mb']:.0f} MB",
            f"{ratio:.2f}× the limit",
            ratio,
            pollers["rss_mb"] < 150,
        )
    )
    rate = pollers["polls_per_second"] / pollers["polls_per_second_needed"]
    rows.append(
        (
            f"{pollers['n']:,} pollers: every poll on time",
            f"{pollers['polls_per_second']:.0f} of {pollers['polls_per_second_needed']:.0f} "
            f"polls/s; gap p99 {_s(pollers['gap_p99'])} s for a {pollers['interval']:.0f} s "
            "interval",
            f"{rate:.2f}× the needed poll rate",
            rate,
            bool(pollers["on_time"]),
        )
    )
    ratio = startup / 1.5
    rows.append(
        (
            f"start-up to READY=1 under 1.5 s with {recover:,} executions to recover",
            f"{startup:.2f} s (median of {len(results['startup'][str(recover)])})",
            f"{ratio:.2f}× the limit",
            ratio,
            startup < 1.5,
        )
    )
    return rows


def _profile_section(title: str, profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return [f"### {title}", "", "py-spy could not attach; no profile.", ""]
    total = max(int(profile["samples"]), 1)
    lines = [f"### {title}", "", f"{total} samples at 100 Hz (CPU only: idle waits excluded).", ""]
    lines += ["| project function (inclusive) | share |", "|---|---|"]
    lines += [f"| `{name}` | {count / total:.0%} |" for name, count in profile["inclusive"][:12]]
    lines += ["", "| where the CPU was (leaf frame) | share |", "|---|---|"]
    lines += [f"| `{name}` | {count / total:.0%} |" for name, count in profile["leaves"][:10]]
    return [*lines, ""]


def render(results: dict[str, Any]) -> tuple[str, str]:
    """(the whole document, the table printed on the terminal)."""
    sizes = results["sizes"]
    floor_notify = results["floor_notify"]
    floor_post = results["floor_post"]["arrival"]
    floor_sum = {k: floor_notify[k] + floor_post[k] for k in ("p50", "p95", "p99", "max")} | {
        "n": floor_notify["n"]
    }
    latency = results["latency"]
    rows = [
        "| measurement (ms) | p50 | p95 | p99 | max | n | note |",
        "|---|---|---|---|---|---|---|",
        _row("floor: asyncpg NOTIFY → LISTEN", floor_notify, "t0 before COMMIT"),
        _row("floor: httpx POST /orders → at the bridge", floor_post, "bridge `created_at`"),
        _row("floor: POST /orders round trip", results["floor_post"]["round_trip"]),
        _row(
            "same bridge without TCP_NODELAY: POST round trip",
            results["floor_post_nagle"]["round_trip"],
            "Nagle + delayed ACK",
        ),
        _row("floor: NOTIFY + POST (sum of each)", floor_sum, "the least any design takes"),
        _row("**approval → order at the bridge**", latency["order"], "0 open at start"),
        _row("approval → claim committed", latency["claim"], "row seen by a listener"),
        _row("approval → claim transaction began", latency["claim_started"], "`created_at`"),
        *[
            _row(f"&nbsp;&nbsp;stage: {label}", latency["stages"][key], note)
            for key, label, note in (
                ("to_claimed", "COMMIT → `claimed` event", "ledger event times"),
                (
                    "to_submitting",
                    "`claimed` → `submitting` (decide + intent)",
                    "ledger event times",
                ),
                ("to_bridge", "`submitting` → order at the bridge (POST)", "ledger, bridge"),
                (
                    "to_snapshot",
                    "COMMIT → account snapshot answered",
                    "bridge: last of `GET /account`, `/positions` sent",
                ),
                (
                    "snapshot_to_submitting",
                    "snapshot answered → `submitting` (parse, decide, intent)",
                    "bridge, ledger",
                ),
            )
            if latency.get("stages", {}).get(key, {}).get("n")
        ],
        _row("Procrastinate: defer → job start", results["peer_summary"], "t0 before defer"),
    ]
    for entry in results["growth"]:
        rows.append(
            _row(
                f"approval → order, {entry['open']:,} open (polling)",
                entry["latency"]["order"],
                "growth",
            )
        )
        rows.append(
            _row(
                f"approval → claim, {entry['open']:,} open (polling)",
                entry["latency"]["claim"],
                "growth",
            )
        )
    latency_table = "\n".join(rows)

    peer_burst = results["peer"].get("burst") or {}
    burst_rows = [
        "| burst | approvals (jobs) / s | all at the bridge (started) | first | p50 | n |",
        "|---|---|---|---|---|---|",
    ]
    for i, b in enumerate(results["bursts"]):
        burst_rows.append(
            f"| trade-executor, run {i + 1} (≥ {latency['order']['n']} open, asleep) | "
            f"{b['per_second']:.0f} | {b['all_at_bridge_seconds']:.3f} s | "
            f"{_ms(b['first_ms'])} ms | {_ms(b['p50_ms'])} ms | {b['orders']}/{b['n']} |"
        )
    for entry in results["growth"]:
        b = entry["burst"]
        burst_rows.append(
            f"| trade-executor, {entry['open']:,} open (polling) | {b['per_second']:.0f} | "
            f"{b['all_at_bridge_seconds']:.3f} s | {_ms(b['first_ms'])} ms | "
            f"{_ms(b['p50_ms'])} ms | {b['orders']}/{b['n']} |"
        )
    if peer_burst:
        burst_rows.append(
            f"| Procrastinate (worker concurrency {results['peer']['worker_concurrency']}, "
            f"batch_defer) | {peer_burst['per_second']:.0f} | "
            f"{peer_burst['all_started_seconds']:.3f} s | - | - | {peer_burst['n']} |"
        )
    burst_table = "\n".join(burst_rows)

    poller_rows = [
        "| open executions | RSS (max) | CPU executor | CPU bridge | polls/s done / needed "
        "| gap p50 / p99 / max (- : no order polled twice) | late (> 1.2× interval) | on time "
        "| READY=1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in results["growth"]:
        p = entry["pollers"]
        poller_rows.append(
            f"| {entry['open']:,} | {p['rss_mb']:.0f} MB | {p['cpu_share']:.0%} | "
            f"{p['bridge_cpu_share']:.0%} | {p['polls_per_second']:.0f} / "
            f"{p['polls_per_second_needed']:.0f} | {_s(p['gap_p50'])} / {_s(p['gap_p99'])} / "
            f"{_s(p['gap_max'])} s | {p['late_fraction']:.1%} | "
            f"{'yes' if p['on_time'] else 'no'} | {entry['ready']:.2f} s |"
        )
    poller_table = "\n".join(poller_rows)

    startup_rows = ["| executions to recover | READY=1 (median) | runs |", "|---|---|---|"]
    for count, times in results["startup"].items():
        shown = ", ".join(f"{t:.2f}" for t in times)
        startup_rows.append(f"| {int(count):,} | {median(times):.2f} s | {shown} |")
    for entry in results["growth"]:
        startup_rows.append(f"| {entry['open']:,} (growth run) | {entry['ready']:.2f} s | 1 |")
    startup_table = "\n".join(startup_rows)

    small, big = results["growth"][0], results["growth"][-1]

    def grow(a: float, b: float) -> str:
        return f"{b / a:.1f}×" if a else "-"

    growth_table = "\n".join(
        [
            f"| {small['open']:,} → {big['open']:,} open | {small['open']:,} | {big['open']:,} "
            "| change |",
            "|---|---|---|---|",
            f"| approval → order p50 | {_ms(small['latency']['order']['p50'])} ms | "
            f"{_ms(big['latency']['order']['p50'])} ms | "
            f"{grow(small['latency']['order']['p50'], big['latency']['order']['p50'])} |",
            f"| approval → order p99 | {_ms(small['latency']['order']['p99'])} ms | "
            f"{_ms(big['latency']['order']['p99'])} ms | "
            f"{grow(small['latency']['order']['p99'], big['latency']['order']['p99'])} |",
            f"| burst approvals/s | {small['burst']['per_second']:.0f} | "
            f"{big['burst']['per_second']:.0f} | "
            f"{grow(small['burst']['per_second'], big['burst']['per_second'])} |",
            f"| RSS | {small['pollers']['rss_mb']:.0f} MB | {big['pollers']['rss_mb']:.0f} MB | "
            f"{grow(small['pollers']['rss_mb'], big['pollers']['rss_mb'])} |",
            f"| executor CPU | {small['pollers']['cpu_share']:.0%} | "
            f"{big['pollers']['cpu_share']:.0%} | "
            f"{grow(small['pollers']['cpu_share'], big['pollers']['cpu_share'])} |",
            f"| polls done / needed | {small['pollers']['polls_per_second']:.0f} / "
            f"{small['pollers']['polls_per_second_needed']:.0f} | "
            f"{big['pollers']['polls_per_second']:.0f} / "
            f"{big['pollers']['polls_per_second_needed']:.0f} | |",
            f"| READY=1 | {small['ready']:.2f} s | {big['ready']:.2f} s | "
            f"{grow(small['ready'], big['ready'])} |",
        ]
    )

    target_rows = ["| target | measured | ratio | met |", "|---|---|---|---|"]
    for name, measured, ratio_text, _ratio, met in targets(results):
        target_rows.append(
            f"| {name} | {measured} | {ratio_text} | {'met' if met else 'NOT met'} |"
        )
    target_table = "\n".join(target_rows)

    log_lines = []
    for entry in results["growth"]:
        events = {k: v for k, v in entry["log"].items() if k not in ("supervisor.signal",)}
        if events:
            shown = ", ".join(f"`{k}` ×{v}" for k, v in sorted(events.items()))
            log_lines.append(f"- {entry['open']:,} open: {shown}")
    baseline = results.get("executor_log_baseline") or {}
    if baseline:
        shown = ", ".join(f"`{k}` ×{v}" for k, v in sorted(baseline.items()))
        log_lines.append(f"- latency and burst run (0 open at start): {shown}")

    header = [
        "# Benchmarks",
        "",
        "Written by `bench/run.py` (`make bench`); do not edit by hand: the interpretation lives "
        "in `bench/ANALYSIS.md` and is copied in below.",
        "",
        f"- When: {results.get('when') or time.strftime('%Y-%m-%d %H:%M %Z')} (end of the run); "
        "the whole run took "
        f"{results['duration_seconds'] / 60:.1f} min.",
        f"- Machine: {results['cores']} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, PostgreSQL {_postgres_version()} on 127.0.0.1 "
        "(the same machine), the paper bridge in its own process.",
        f"- Code measured: {results.get('source', '?')}.",
        f"- Command: `{results['command']}`"
        + (" (QUICK: small N, not the reference numbers)" if results["quick"] else ""),
        f"- Other work on the machine: before the run {results['load_before']}; after: "
        f"{results['load_after']}. Other engineers' test suites share these 2 cores, so tails "
        "(p99, max) carry their noise.",
        f"- Sizes: {sizes['latency']} approvals one at a time; bursts of {sizes['burst']} "
        f"({sizes['runs']} runs); floors over {sizes['floor']} samples; start-up "
        f"{sizes['runs']} runs each; growth at {sizes['growth'][0]:,} and "
        f"{sizes['growth'][1]:,} open executions (poll interval {sizes['poll_interval']:.0f} s, "
        f"{sizes['poll_windows']} intervals measured, {sizes['growth_latency']} approvals one "
        "at a time, one burst).",
        "",
    ]
    method = [
        "## How it is measured",
        "",
        "- The executor is the real process: `.venv/bin/python -m trade_executor run` with "
        "`EXECUTION_ENABLED=true`, `HTTP_PORT=0`, `LOG_LEVEL=warning`, limits raised "
        "(`MAX_OPEN_POSITIONS`, `MAX_DAILY_LOSS`, `MAX_POSITION_VALUE_PCT=1`, bridge net "
        "liquidation and buying power 10^12), default order type LMT with a bracket.",
        "- The paper bridge runs in its own process (`bench/bridge.py`): the project's "
        "Starlette app, unchanged, on a listening socket with TCP_NODELAY (as uvicorn and "
        "Hypercorn set it; without it every answer waits ~40 ms for the client's delayed ACK, "
        "see the 'without TCP_NODELAY' row: the paper bridge had that defect until commit "
        "eb3bd9a), behind a small ASGI middleware that counts requests "
        "(`GET /orders/{id}` per order: the gaps between polls) and answers long polls for "
        "order arrivals. `fill_mode` never: orders stay `Submitted`, so every order keeps "
        "its poller.",
        "- Approval → order: the driver inserts the approval inside a transaction, takes "
        "`time.time()` just before `COMMIT`, and compares it with the bridge's `created_at` "
        "(stamped when the bridge processed the order; the same machine's wall clock). Each "
        "approval waits for its order before the next one is committed.",
        "- Approval → claim committed: a trigger the benchmark adds to its own scratch database "
        "sends a NOTIFY when an `executions` row is inserted, heard by the driver at the "
        "claim's COMMIT. `created_at` (the claim transaction's `now()`) is shown too.",
        "- The floor: bare asyncpg, `pg_notify` on one connection and a listener on another "
        "(t0 before COMMIT, as above); bare httpx `POST /orders` to the same bridge process "
        "(t0 before the request, to the bridge's `created_at`). The floor for the target is "
        "the sum of the two p50s.",
        "- The peer: Procrastinate (bench-only, in `bench/.venv`) on the same server, its worker "
        "in its own process, concurrency "
        f"{results['peer'].get('worker_concurrency', '?')}, LISTEN/NOTIFY on; t0 before "
        "`defer_async` (one INSERT + COMMIT), start = first line of the task. Burst: one "
        "`batch_defer_async` of the same size as ours, until the last job started.",
        "- Burst: the approvals are inserted in one transaction (one COMMIT, one NOTIFY each); "
        "the clock stops when the last order reaches the bridge.",
        "- Pollers at scale: `submitted` executions seeded in SQL with matching working orders "
        "at the bridge; the service's start-up recovery resumes one poller each. After one "
        "interval of warm-up, RSS (/proc, max of samples) and CPU share (utime+stime over "
        "wall time; 100% = one core) are read while the bridge counts the polls.",
        "- Start-up: process spawn to the `READY=1` datagram on an AF_UNIX socket passed as "
        "`NOTIFY_SOCKET` (includes the interpreter start and imports).",
        "",
    ]
    doc = [
        *header,
        "## Targets",
        "",
        target_table,
        "",
        "## Latency",
        "",
        latency_table,
        "",
        "## Burst throughput",
        "",
        burst_table,
        "",
        "## Pollers at scale",
        "",
        poller_table,
        "",
        "## Start-up",
        "",
        startup_table,
        "",
        "## Growth",
        "",
        growth_table,
        "",
        "Executor log events at warning level and above during the runs:",
        "",
        *(log_lines or ["- none"]),
        "",
        *method,
        "## Profiles (py-spy, attached to the running executor)",
        "",
        *_profile_section(
            f"{big['open']:,} pollers, nothing else happening", results.get("profile_pollers")
        ),
        *_profile_section("approvals one at a time", results.get("profile_latency")),
        *_profile_section(f"a burst of {sizes['burst'] * 2}", results.get("profile_burst")),
    ]
    if ANALYSIS.exists():
        doc += ["## Analysis", "", ANALYSIS.read_text().strip(), ""]
    terminal = "\n\n".join([target_table, latency_table, burst_table, poller_table, startup_table])
    return "\n".join(doc) + "\n", terminal
