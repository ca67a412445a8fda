"""`trade-executor demo` prints the console's address; with --keep the service and its console
stay up after the story until Ctrl-C (SIGINT), which then stops it cleanly (exit 0)."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from queue import Empty, Queue

import httpx

from tests.integration.test_demo import DEADLINE, clean_env, demo_command


def test_demo_keep_leaves_the_console_running_until_ctrl_c(fresh_database_url: str) -> None:
    process = subprocess.Popen(
        [*demo_command(), "--keep"],
        env=clean_env(DATABASE_URL=fresh_database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: Queue[str] = Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    try:
        while not seen or "running until Ctrl-C" not in seen[-1]:
            try:
                seen.append(lines.get(timeout=DEADLINE))
            except Empty:
                raise AssertionError(
                    "the demo never said it keeps running:\n" + "".join(seen)
                ) from None
        output = "".join(seen)
        [url] = re.findall(r"console: (http://127\.0\.0\.1:\d+/console) \(running until", output)
        # Announced while the story runs too, with the token to log in with (this run's own).
        assert re.search(
            rf"console: {re.escape(url)} \(log in with the API token to act: \S+ ", output
        )
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200
        # The demo's story is there: AAPL closed at its stop-loss, TSLA at its target.
        assert 'data-count="closed">2<' in page.text
        assert "stop_loss" in page.text and "take_profit" in page.text
        assert process.poll() is None  # still running after the story
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_demo_ends_by_printing_the_consoles_address(fresh_database_url: str) -> None:
    done = subprocess.run(
        demo_command(),
        env=clean_env(DATABASE_URL=fresh_database_url),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.rstrip().splitlines()[-1]
    assert re.fullmatch(
        r"console: http://127\.0\.0\.1:\d+/console \(stopped with the demo; `trade-executor demo "
        r"--keep` keeps the service and its console running until Ctrl-C\)",
        last,
    ), last
