"""trade-executor benchmarks (issues 7 and 16): the single entry point of `make bench`.

    .venv/bin/python bench/run.py [--quick] [--runs N] [--no-profile] [--worktree]
                                  [--report-only] [--out docs/BENCHMARKS.md]

Needs the project's virtualenv and a PostgreSQL server: TEST_DATABASE_URL (set by
scripts/with-postgres.sh), else postgresql://postgres@127.0.0.1:5432. Benchmark-only dependencies
(Procrastinate, psycopg, py-spy) go into bench/.venv, created here when missing.

What is measured is the committed source (HEAD's src/, exported to bench/results/snapshot), so
that edits in progress in the working tree cannot change the code under test halfway through a
run; `--worktree` measures the working tree instead. Every run creates its own databases
(bench_<random>) and drops them. Prints the table and writes docs/BENCHMARKS.md; raw numbers go
to bench/results/last-run.json (bench/results/partial.json after each phase).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BENCH_VENV = BENCH / ".venv"
BENCH_PYTHON = BENCH_VENV / "bin" / "python"
PY_SPY = BENCH_VENV / "bin" / "py-spy"


def ensure_bench_venv() -> None:
    """bench/.venv with bench/requirements.txt, created or completed when something is missing."""
    check = "import procrastinate, psycopg"
    if (
        BENCH_PYTHON.exists()
        and PY_SPY.exists()
        and subprocess.run([BENCH_PYTHON, "-c", check], capture_output=True).returncode == 0
    ):
        return
    print("bench: installing the benchmark-only dependencies into bench/.venv", flush=True)
    if not BENCH_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run(
        [BENCH_PYTHON, "-m", "pip", "install", "--quiet", "-r", str(BENCH / "requirements.txt")],
        check=True,
    )


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def source_tree(worktree: bool) -> tuple[Path, str]:
    """(the src/ directory to measure, how the report names it)."""
    commit = _git("rev-parse", "--short", "HEAD")
    if worktree or not commit:
        dirty = " with uncommitted changes" if _git("status", "--porcelain", "src") else ""
        return ROOT / "src", f"working tree at {commit or '?'}{dirty}"
    snapshot = BENCH / "results" / "snapshot"
    shutil.rmtree(snapshot, ignore_errors=True)
    snapshot.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "HEAD", "src"], cwd=ROOT, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive.stdout, check=True)
    return snapshot / "src", f"commit {commit}"


def main() -> int:
    parser = argparse.ArgumentParser(description="trade-executor benchmarks (issues 7 and 16)")
    parser.add_argument("--quick", action="store_true", help="small N, for development")
    parser.add_argument("--runs", type=int, help="repetitions of the cheap measurements")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy passes")
    parser.add_argument("--worktree", action="store_true", help="measure the working tree")
    parser.add_argument("--report-only", action="store_true", help="re-render the last run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    try:
        import trade_executor  # noqa: F401
    except ImportError:
        sys.exit("bench/run.py needs the project's virtualenv: run `make bench`")
    ensure_bench_venv()
    src, source = source_tree(args.worktree or args.report_only)
    # The executor and the bridge are child processes: PYTHONPATH puts the measured tree ahead
    # of the editable install's path entry; this process imports it first as well.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p
    )
    sys.path.insert(0, str(src))
    for name in [
        m for m in sys.modules if m == "trade_executor" or m.startswith("trade_executor.")
    ]:
        del sys.modules[name]
    print(f"bench: measuring the {source}", flush=True)
    import suite

    return suite.main(args, source)


if __name__ == "__main__":
    sys.exit(main())
