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
BRACKET = 3  # IB messages per bracket
MAX_PACING = 50  # BRIDGE_MAX_MESSAGES_PER_SECOND's maximum
DECISION_CEILING_MS = 100.0  # target 5: the slowest decision while a paced burst waits


def _ms(value: float) -> str:
    if value != value:  # NaN
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _s(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"


def _x(value: float) -> str:
    return "-" if value != value else f"{value:.2f}×"


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


Target = tuple[str, str, str, str, bool | None]  # number, target, measured, ratio, met


def targets(results: dict[str, Any]) -> list[Target]:
    """(number, target, measured, ratio text, met) for each target of issue 16; met None means
    not measurable as stated (explained in the row)."""
    rows: list[Target] = []
    idle = results["idle"]
    order, durable, bare = idle["order"], idle["floor_durable"], idle["floor_bare"]
    ratio = order["p50"] / durable["p50"]
    rows.append(
        (
            "1",
            "approval → order p50 ≤ 1.5× the durable floor p50",
            f"{_ms(order['p50'])} ms vs {_ms(durable['p50'])} ms",
            _x(ratio),
            ratio <= 1.5,
        )
    )
    ratio = order["p50"] / bare["p50"]
    rows.append(
        (
            "1",
            "approval → order p50 ≤ 2× the bare floor p50",
            f"{_ms(order['p50'])} ms vs {_ms(bare['p50'])} ms",
            _x(ratio),
            ratio <= 2,
        )
    )
    ratio = order["p99"] / durable["p99"]
    rows.append(
        (
            "1",
            "approval → order p99 ≤ 3× the durable floor p99",
            f"{_ms(order['p99'])} ms vs {_ms(durable['p99'])} ms",
            _x(ratio),
            ratio <= 3,
        )
    )

    n = results["sizes"]["burst"]
    ours = median([b["per_second"] for b in results["bursts"]])
    peer = median([b["per_second"] for b in results["peer"]["bursts"]])
    ratio = ours / peer if peer else float("nan")
    rows.append(
        (
            "2",
            f"burst of {n} ≥ Procrastinate's throughput (pacing bypassed, bench/unpaced.py)",
            f"{ours:.0f} vs {peer:.0f} approvals/s (medians of {len(results['bursts'])})",
            _x(ratio),
            ratio >= 1,
        )
    )
    bound = MAX_PACING / BRACKET
    rows.append(
        (
            "2",
            f"the same burst with the pacer at its maximum ({MAX_PACING} messages/s)",
            f"at most {bound:.1f} approvals/s by construction ({n} × {BRACKET} / {MAX_PACING} "
            f"= {n * BRACKET / MAX_PACING:.0f} s)",
            _x(bound / peer) if peer else "-",
            None,
        )
    )

    working = results["working"]
    following = working["following"]
    count = f"{working['open']:,}"
    rows.append(
        (
            "3",
            f"{count} working: reads on time ≥ 0.99 of the reads needed",
            f"{following['order_reads_done']:,} of {following['order_reads_needed']:,} "
            f"({following['list_reads']} list reads in {following['slots']} intervals of "
            f"{following['interval']:.0f} s; {following['per_order_reads']} per-order reads)",
            f"{following['read_fraction']:.2f}",
            following["read_fraction"] >= 0.99,
        )
    )
    ratio = following["gap_p99"] / following["interval"]
    rows.append(
        (
            "3",
            f"{count} working: gap p99 ≤ 1.2× the interval",
            f"{_s(following['gap_p99'])} s for {following['interval']:.0f} s",
            _x(ratio),
            ratio <= 1.2,
        )
    )
    rows.append(
        (
            "3",
            f"{count} working: executor CPU ≤ 25% of a core",
            f"{following['cpu_share']:.1%}",
            _x(following["cpu_share"] / 0.25),
            following["cpu_share"] <= 0.25,
        )
    )
    rss = max(following["rss_mb"], working.get("rss_after_mb", 0.0))
    rows.append(
        (
            "3",
            f"{count} working: RSS ≤ 100 MB",
            f"{rss:.0f} MB",
            _x(rss / 100),
            rss <= 100,
        )
    )
    busy = working["latency"]["order"]["p50"]
    ratio = busy / order["p50"]
    rows.append(
        (
            "3",
            f"approval → order p50 with {count} working ≤ 1.5× the idle p50",
            f"{_ms(busy)} ms vs {_ms(order['p50'])} ms",
            _x(ratio),
            ratio <= 1.5,
        )
    )

    recover = results["sizes"]["recover"]
    ready = median(results["startup"][str(recover)])
    rows.append(
        (
            "4",
            f"READY ≤ 1 s with {recover:,} executions to recover",
            f"{ready:.2f} s (median of {len(results['startup'][str(recover)])}; "
            f"{median(results['startup']['0']):.2f} s with none)",
            _x(ready / 1.0),
            ready <= 1.0,
        )
    )

    paced = results["pace"]
    alone = paced["alone"]
    rows.append(
        (
            "5",
            f"jax bridge, real latencies: a burst of {paced['n']} all at the bridge within 1.1× "
            f"the pacing's {paced['n']} × 3 / {paced['limit']} s",
            f"last POST arrived {alone['last_post']:.2f} s after the COMMIT "
            f"({alone['orders']}/{paced['n']}), for {paced['imposed_seconds']:.2f} s",
            _x(alone["ratio"]),
            alone["orders"] == paced["n"] and alone["ratio"] <= 1.1,
        )
    )
    probed = paced["probed"]
    idle_decision = paced["idle_decision"]["p50"]
    decisions = probed["probe_decisions"]
    ratio = decisions["p50"] / idle_decision if idle_decision else float("nan")
    # A decision that waited for a POST would take at least the 0.7 s a bracket holds its
    # request; 100 ms (or 10× the idle p50) is far above this machine's noise and far below that.
    ceiling = max(10 * idle_decision, DECISION_CEILING_MS)
    rows.append(
        (
            "5",
            "decisions for other symbols keep being made while POSTs wait (every one decided, "
            f"p50 ≤ 2× idle, slowest ≤ {ceiling:.0f} ms)",
            f"COMMIT → intent p50 {_ms(decisions['p50'])} ms, slowest {_ms(decisions['max'])} ms "
            f"({probed['probes_decided']}/{probed['probes']} decided) vs idle p50 "
            f"{_ms(idle_decision)} ms",
            f"{_x(ratio)}; slowest {_x(decisions['max'] / ceiling)} the ceiling",
            probed["probes"] > 0
            and probed["probes_decided"] == probed["probes"]
            and ratio <= 2
            and decisions["max"] <= ceiling,
        )
    )
    return rows


def _profile_section(title: str, profile: dict[str, Any] | None, hz: int = 100) -> list[str]:
    if not profile:
        return [f"### {title}", "", "py-spy could not attach (or was not run); no profile.", ""]
    total = max(int(profile["samples"]), 1)
    lines = [f"### {title}", "", f"{total} samples at {hz} Hz (CPU only: idle waits excluded).", ""]
    lines += ["| project function (inclusive) | share |", "|---|---|"]
    lines += [f"| `{name}` | {count / total:.0%} |" for name, count in profile["inclusive"][:12]]
    lines += ["", "| where the CPU was (leaf frame) | share |", "|---|---|"]
    lines += [f"| `{name}` | {count / total:.0%} |" for name, count in profile["leaves"][:10]]
    return [*lines, ""]


STAGES = (
    ("to_claimed", "COMMIT → `execution.claimed` event", "ledger event times"),
    ("to_submitting", "`claimed` → `order.submitting` (decide + intent)", "ledger event times"),
    ("to_bridge", "`submitting` → order at the bridge (pacer + POST)", "ledger, bridge"),
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


def _latency_rows(label: str, round_: dict[str, Any]) -> list[str]:
    rows = [
        _row(f"bare floor: NOTIFY → POST ({label})", round_["floor_bare"], "bench/floor.py"),
        _row(
            f"durable floor: NOTIFY → COMMIT → POST ({label})",
            round_["floor_durable"],
            "bench/floor.py --durable",
        ),
        _row(f"**approval → order at the bridge** ({label})", round_["order"], "the executor"),
    ]
    for key, name, note in STAGES:
        stage = round_.get("stages", {}).get(key, {})
        if stage.get("n"):
            rows.append(_row(f"&nbsp;&nbsp;stage: {name}", stage, note))
    return rows


def render(results: dict[str, Any]) -> tuple[str, str]:
    """(the whole document, the table printed on the terminal)."""
    sizes = results["sizes"]
    floor_notify = results["floor_notify"]
    floor_post = results["floor_post"]["arrival"]
    floor_sum = {k: floor_notify[k] + floor_post[k] for k in ("p50", "p95", "p99", "max")} | {
        "n": floor_notify["n"]
    }
    working = results["working"]
    rows = [
        "| measurement (ms) | p50 | p95 | p99 | max | n | note |",
        "|---|---|---|---|---|---|---|",
        _row("part: asyncpg NOTIFY → LISTEN", floor_notify, "t0 before COMMIT"),
        _row("part: httpx POST /orders/bracket → at the bridge", floor_post, "`created_at`"),
        _row("part: POST /orders/bracket round trip", results["floor_post"]["round_trip"]),
        _row("parts summed: NOTIFY + POST", floor_sum, "the issue-7 floor"),
        *_latency_rows("idle", results["idle"]),
        *_latency_rows(f"{working['open']:,} working", working["latency"]),
        _row("Procrastinate: defer → job start", results["peer_summary"], "t0 before defer"),
    ]
    latency_table = "\n".join(rows)

    burst_rows = [
        "| burst | approvals (jobs) / s | all at the bridge (started) | first | p50 | n |",
        "|---|---|---|---|---|---|",
    ]
    for i, b in enumerate(results["bursts"]):
        burst_rows.append(
            f"| trade-executor, pacing bypassed, run {i + 1} | "
            f"{b['per_second']:.0f} | {b['all_at_bridge_seconds']:.3f} s | "
            f"{_ms(b['first_ms'])} ms | {_ms(b['p50_ms'])} ms | {b['orders']}/{b['n']} |"
        )
    for i, b in enumerate(results["peer"]["bursts"]):
        burst_rows.append(
            f"| Procrastinate (worker concurrency {results['peer']['worker_concurrency']}, "
            f"batch_defer), run {i + 1} | {b['per_second']:.0f} | "
            f"{b['all_started_seconds']:.3f} s | - | - | {b['n']} |"
        )
    burst_table = "\n".join(burst_rows)

    f = working["following"]
    gaps = ", ".join(f"{g:.2f}" for g in f["gaps"])
    following_table = "\n".join(
        [
            "| working orders | RSS (max; after the approvals) | CPU executor | CPU bridge "
            "| list reads | intervals served | gaps between list reads | per-order reads "
            "| READY |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {working['open']:,} | {f['rss_mb']:.0f} MB; "
            f"{working.get('rss_after_mb', float('nan')):.0f} MB | {f['cpu_share']:.1%} | "
            f"{f['bridge_cpu_share']:.1%} | {f['list_reads']} in {f['window_seconds']:.0f} s | "
            f"{f['slots_served']}/{f['slots']} | {gaps} s | {f['per_order_reads']} | "
            f"{working['ready']:.2f} s |",
        ]
    )

    parts = working.get("memory_parts")
    if parts:
        following_table += (
            f"\n\nOne copy of the working set, measured with tracemalloc in the driver: "
            f"{parts['executions']:,} executions as the store returns them "
            f"{parts['executions_kept_mb']:.1f} MB ({parts['bytes_per_execution']:.0f} bytes "
            f"each; {parts['executions_peak_mb']:.1f} MB while reading); one order list read "
            f"{parts['list_kept_mb']:.1f} MB kept as the `OrderIndex`, "
            f"{parts['list_peak_mb']:.1f} MB at its peak while parsing."
        )

    startup_rows = ["| executions to recover | READY=1 (median) | runs |", "|---|---|---|"]
    for count, times in results["startup"].items():
        shown = ", ".join(f"{t:.2f}" for t in times)
        startup_rows.append(f"| {int(count):,} | {median(times):.2f} s | {shown} |")
    startup_rows.append(
        f"| {working['open']:,} (target 3's executor) | {working['ready']:.2f} s | 1 |"
    )
    startup_table = "\n".join(startup_rows)

    paced = results["pace"]
    pace_rows = [
        "| jax bridge, latency_scale 1 | first POST | last POST at the bridge | last placed "
        "| ratio to n × 3 / limit | busiest second at the bridge | probes decided "
        "| probe COMMIT → intent p50 / max |",
        "|---|---|---|---|---|---|---|---|",
    ]
    runs = [(paced, "alone", "burst alone"), (paced, "probed", "burst + other symbols")]
    wide_pool = results.get("pace_wide_pool")
    if wide_pool:
        note = " (experiment: order client's pool 200)"
        runs += [(wide_pool, "alone", "burst alone" + note)]
        runs += [(wide_pool, "probed", "burst + other symbols" + note)]
    for run, key, label in runs:
        p = run[key]
        probe = (
            f"{p['probes_decided']}/{p['probes']} | {_ms(p['probe_decisions']['p50'])} / "
            f"{_ms(p['probe_decisions']['max'])} ms"
            if p["probes"]
            else "- | -"
        )
        pace_rows.append(
            f"| {label}: {p['orders']}/{paced['n']} | {p['first_post']:.2f} s | "
            f"{p['last_post']:.2f} s | {p['last_placed']:.2f} s | {_x(p['ratio'])} | "
            f"{p['busiest_second_messages']} messages | {probe} |"
        )
    idle_decision = paced["idle_decision"]
    pace_rows.append(
        f"| idle approvals, one at a time | - | - | - | - | - | {int(idle_decision['n'])} | "
        f"{_ms(idle_decision['p50'])} / {_ms(idle_decision['max'])} ms |"
    )
    pace_table = "\n".join(pace_rows)

    target_rows = ["| # | target | measured | ratio | met |", "|---|---|---|---|---|"]
    for number, name, measured, ratio_text, met in targets(results):
        verdict = {True: "met", False: "NOT met", None: "not met by construction"}[met]
        target_rows.append(f"| {number} | {name} | {measured} | {ratio_text} | {verdict} |")
    target_table = "\n".join(target_rows)

    log_lines = []
    for label, events in (
        ("idle latency run", results.get("executor_log_idle")),
        ("bursts (pacing bypassed)", results.get("executor_log_burst")),
        (f"{working['open']:,} working", working.get("log")),
        ("jax bridge, paced", paced.get("log")),
    ):
        shown_events = {
            k: v
            for k, v in (events or {}).items()
            if k not in ("supervisor.signal", "bridge.limitation")
        }
        if shown_events:
            shown = ", ".join(f"`{k}` ×{v}" for k, v in sorted(shown_events.items()))
            log_lines.append(f"- {label}: {shown}")

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
        f"- Sizes: {sizes['latency']} approvals one at a time per target (executor, bare floor, "
        f"durable floor, in rotation); bursts of {sizes['burst']} ({sizes['runs']} runs, and "
        f"{sizes['runs']} of the peer); start-up {sizes['runs']} runs each; "
        f"{sizes['working']:,} working orders (poll interval {sizes['poll_interval']:.0f} s, "
        f"{sizes['poll_windows']} intervals measured, then {sizes['working_latency']} approvals "
        f"per target); a paced burst of {sizes['pace']} on the jax bridge.",
        "",
    ]
    method = [
        "## How it is measured",
        "",
        "- The executor is the real process: `.venv/bin/python -m trade_executor run` with "
        "`EXECUTION_ENABLED=true`, `HTTP_PORT=0`, `LOG_LEVEL=warning`, limits raised "
        "(`MAX_OPEN_POSITIONS`, `MAX_DAILY_LOSS`, `MAX_POSITION_VALUE_PCT=1`, bridge net "
        "liquidation and buying power 10^12), default order type LMT with a bracket, "
        "`BRIDGE_MAX_MESSAGES_PER_SECOND=50` (the most the settings allow) except in target 5 "
        "(45, the default).",
        "- The bridge is the project's paper bridge in its own process (`bench/bridge.py`: the "
        "Starlette app unchanged, `ideal` profile unless said, `fill_mode` never so every order "
        "stays working, TCP_NODELAY on the listening socket), behind a small ASGI middleware "
        "that answers long polls for order arrivals and notes the account reads. Requests are "
        "counted from the paper bridge's own request log (`GET /admin/requests`, stamped on "
        "arrival).",
        "- Approval → order (target 1): the driver inserts the approval inside a transaction, "
        "takes `time.time()` just before `COMMIT`, and compares it with the bridge's "
        "`created_at` for the order (the same machine's wall clock). Each approval waits for "
        "its order before the next commit. The two floors are processes of their own "
        "(`bench/floor.py`, asyncpg + httpx like the executor) that LISTEN and POST the same "
        "bracket body the executor sends; the durable floor first INSERTs and COMMITs one "
        "unique row (a synchronous commit: one WAL flush). The driver's row for a floor is "
        "committed with its NOTIFY in one transaction, as an approval and its trigger's NOTIFY "
        "are. The executor and both floors are driven in rotation (floor, floor, executor, "
        f"...) with {1000 * 0.025:.0f} ms before each commit, so all three see the same "
        "moments of this shared machine, and the executor's approvals are ≥ 75 ms apart: its "
        "pacer (a bracket every 63 ms at 50 messages/s) never holds one.",
        "- Stages: the ledger's event times (`clock_timestamp()`), the bridge's `created_at` and "
        "the times it received and answered each `GET /account` and `GET /positions`.",
        "- Bursts (target 2): 500 approvals inserted and committed in one statement; t0 before "
        "the INSERT (as the peer's t0 is before its batch INSERT); the clock stops when the last "
        "order reaches the bridge. The executor runs as `bench/unpaced.py run`: the real service "
        "with the wiring's `paced` replaced by the identity (bench only), because the pacer at "
        "its maximum caps any burst at 16.7 brackets/s.",
        "- The peer: Procrastinate (bench-only, in `bench/.venv`) on the same server, its worker "
        "in its own process, concurrency "
        f"{results['peer'].get('worker_concurrency', '?')}, LISTEN/NOTIFY on; latency t0 before "
        "`defer_async`, start = first line of the task; bursts: one `batch_defer_async` each, "
        "until the last job started.",
        "- Working orders (target 3): `submitted` executions seeded in SQL with matching working "
        "orders at the bridge; the service's start-up recovery follows each through the order "
        "list (`GET /orders` once per interval). After one interval of warm-up, the request log "
        "is cleared and the window measured: RSS (/proc, max of samples every 0.5 s), CPU share "
        "(utime+stime over wall time; 100% = one core), the list reads the bridge received. The "
        "reconciler (RECONCILE_INTERVAL 60 s) made its first pass before the window and its next "
        "after it. Then approvals one at a time with the orders still followed.",
        "- Start-up (target 4): process spawn to the `READY=1` datagram on an AF_UNIX socket "
        "passed as `NOTIFY_SOCKET` (includes the interpreter start and imports).",
        "- The real bridge's pace (target 5): the paper bridge's `jax` profile with "
        "`latency_scale` 1 (a bracket holds its request 0.7 s, a symbol seen for the first time "
        "costs `qualify_seconds` 5 s first), every symbol new; the executor at the default "
        "pacing (45 messages/s). A few approvals one at a time first (their COMMIT → intent "
        "written is the idle decision time); once their POSTs are answered, a burst in one "
        "COMMIT, its POSTs' arrival taken from the request log; once those are answered, the "
        "same burst again while an approval for another symbol is committed every 0.3 s: their "
        "COMMIT → intent times say whether decisions go on while the burst's POSTs wait. The "
        "same three steps again with `bench/experiments/wide_pool.py` (the order client's "
        "connection pool at 200 instead of 50): what target 5 would take.",
        "",
    ]
    doc = [
        *header,
        "## Targets",
        "",
        target_table,
        "",
        "## Latency (where the time goes)",
        "",
        latency_table,
        "",
        "## Burst throughput",
        "",
        burst_table,
        "",
        "## Following working orders",
        "",
        following_table,
        "",
        "## Start-up",
        "",
        startup_table,
        "",
        "## The real bridge's pace",
        "",
        pace_table,
        "",
        "Executor log events at warning level and above (besides `bridge.limitation`):",
        "",
        *(log_lines or ["- none"]),
        "",
        *method,
        "## Profiles (py-spy, attached to the running executor)",
        "",
        *_profile_section("approvals one at a time", results.get("profile_latency")),
        *_profile_section(
            f"a burst of {sizes['burst'] * 2}, pacing bypassed", results.get("profile_burst")
        ),
        *_profile_section(
            f"{working['open']:,} working orders, nothing else happening",
            results.get("profile_following"),
        ),
        *_profile_section(
            f"start-up to READY=1 with {sizes['recover']:,} executions to recover (py-spy "
            "starts the executor; includes the imports and the shutdown)",
            results.get("profile_startup"),
            hz=200,
        ),
    ]
    if ANALYSIS.exists():
        doc += ["## Analysis", "", ANALYSIS.read_text().strip(), ""]
    terminal = "\n\n".join(
        [target_table, latency_table, burst_table, following_table, startup_table, pace_table]
    )
    return "\n".join(doc) + "\n", terminal
