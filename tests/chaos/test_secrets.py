"""Secrets never reach the output: a password in DATABASE_URL (percent-encoded, with characters
that need it) and an API_TOKEN, through a full run at LOG_LEVEL=debug that goes through
failures: the bridge failing, a SIGKILL and the recovery after it, a PostgreSQL outage (with its
tracebacks), an HTTP 500, wrong tokens, invalid configuration (exit 78), commands against an
unreachable database. Every line of stdout and stderr of every process is searched for every
form of both secrets (as written, percent-decoded, and their random core alone), and every DSN
shown with credentials must be masked as `postgresql://***:***@host...`.

The local server uses trust authentication, so any password in the DSN connects.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import anyio
import anyio.to_thread
import asyncpg
import httpx
import pytest

from tests.support import ThreadedBridge, approve, insert_signal
from tests.support.chaos import (
    BASE_ENV,
    ENTRY,
    ROOT,
    STOP,
    TARGET,
    Harness,
    wait_settled,
)
from tests.support.proxy import tcp_proxy

pytestmark = pytest.mark.anyio

CORE = uuid.uuid4().hex[:16]
PASSWORD = f"pw/{CORE}@:!x"  # needs percent-encoding in a URL
PASSWORD_IN_URL = quote(PASSWORD, safe="")
TOKEN_CORE = uuid.uuid4().hex[:16]
TOKEN = f"tok-{TOKEN_CORE}"
SECRET_FORMS = {PASSWORD, PASSWORD_IN_URL, CORE, TOKEN, TOKEN_CORE}
# A DSN with a user:password pair that is not the mask.
UNMASKED_DSN = re.compile(r"postgres(?:ql)?://(?!\*\*\*:\*\*\*@)[^\s/\"'@:]*:[^\s/\"'@]*@")


def with_password(url: str, password: str = PASSWORD_IN_URL) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


def leaks(text: str) -> list[str]:
    found = [form for form in SECRET_FORMS if form in text]
    found += UNMASKED_DSN.findall(text)
    return found


def cli(*args: str, **env: str) -> tuple[int, str]:
    """A one-shot command; its exit code and stdout + stderr."""
    values = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRADE_EXECUTOR")},
        **BASE_ENV,
        "API_TOKEN": TOKEN,
        "LOG_LEVEL": "debug",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "trade_executor", *args],
        env=values,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout.decode(errors="replace") + done.stderr.decode(
        errors="replace"
    )


def test_check_config_and_refusals_redact(db_url: str, tmp_path: Path) -> None:
    dsn = with_password(db_url)
    assert leaks(dsn) and leaks(TOKEN) and leaks(PASSWORD)  # the detector detects
    outputs: dict[str, str] = {}
    code, outputs["check-config"] = cli("check-config", DATABASE_URL=dsn)
    assert code == 0, outputs["check-config"]
    assert "DATABASE_URL=postgresql://***:***@" in outputs["check-config"]
    assert re.search(r"^API_TOKEN=\*\*\*$", outputs["check-config"], re.M)
    # DATABASE_PASSWORD kept out of the URL is a secret too.
    code, outputs["check-config password"] = cli(
        "check-config", DATABASE_URL=db_url, DATABASE_PASSWORD=PASSWORD
    )
    assert code == 0
    env_file = tmp_path / "te.env"
    env_file.write_text(f"DATABASE_URL={dsn}\nAPI_TOKEN={TOKEN}\n")
    code, outputs["env file"] = cli("--env-file", str(env_file), "check-config")
    assert code == 0, outputs["env file"]
    # Invalid configuration: exit 78, naming the setting, never echoing the secret.
    code, outputs["invalid setting"] = cli("run", DATABASE_URL=dsn, MAX_RISK_PER_TRADE="0")
    assert code == 78, outputs["invalid setting"]
    bad_port = dsn.replace(f":{urlsplit(db_url).port}/", ":notaport/")
    code, outputs["invalid url"] = cli("check-config", DATABASE_URL=bad_port)
    assert code == 78, outputs["invalid url"]
    assert "DATABASE_URL" in outputs["invalid url"]
    bad_scheme = "mysql" + dsn.removeprefix("postgresql")
    code, outputs["wrong scheme"] = cli("check-config", DATABASE_URL=bad_scheme)
    assert code == 78, outputs["wrong scheme"]
    # Commands against a database that refuses connections.
    with tcp_proxy(db_url) as proxy:
        proxy.cut()
        down = proxy.url_for(dsn)
        for command in (["status"], ["halt", "--reason", "x"], ["migrate"]):
            code, outputs[" ".join(command)] = cli(*command, DATABASE_URL=down)
            assert code != 0, outputs[" ".join(command)]
    for name, text in outputs.items():
        assert not leaks(text), (name, leaks(text), text[-2000:])


SNAPSHOT_AGE = 0.5  # seconds: ACCOUNT_SNAPSHOT_MAX_AGE for the full run


async def test_a_full_run_with_failures_never_logs_a_secret(
    harness: Harness, bridge: ThreadedBridge, conn: asyncpg.Connection, db_url: str
) -> None:
    harness.env.update(
        {
            "API_TOKEN": TOKEN,
            "LOG_LEVEL": "debug",
            "IB_BRIDGE_TIMEOUT": "1",
            "ACCOUNT_SNAPSHOT_MAX_AGE": str(SNAPSHOT_AGE),
        }
    )
    dsn = with_password(db_url)
    extra: dict[str, str] = {}

    async def approval(prefix: str) -> uuid.UUID:
        signal_id = await insert_signal(
            conn, prefix + uuid.uuid4().hex[:6].upper(), "BUY", ENTRY, STOP, TARGET
        )
        await approve(conn, signal_id)
        return signal_id

    # 1. A normal run: an approval executes; the API is called with good and bad tokens.
    first = harness.start(database_url=dsn)
    await first.wait_ready()
    await wait_settled(conn, [await approval("S")], process=first)
    port = first.http_port()
    assert port is not None
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=40) as client:
        good = {"Authorization": f"Bearer {TOKEN}"}
        signal_id = await insert_signal(conn, "API" + CORE[:4].upper(), "BUY", ENTRY, STOP, TARGET)
        ok = await client.post(
            base + "/api/v1/execute",
            json={"signal_id": str(signal_id), "approved_by": "api"},
            headers=good,
        )
        assert ok.status_code == 200, ok.text
        for headers in (
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
        ):
            denied = await client.post(base + "/api/v1/execute", json={}, headers=headers)
            assert denied.status_code == 401
        # An error inside the request (a deeply nested body: answered 500 today).
        await client.post(base + "/api/v1/execute", content=b"[" * 5000, headers=good)
        for path in ("/health", "/metrics"):
            extra[path] = (await client.get(base + path)).text
    # The CLI against the running service.
    code, extra["execute"] = await anyio.to_thread.run_sync(
        lambda: cli(
            "execute",
            str(uuid.uuid4()),
            "--approved-by",
            "ops",
            "--url",
            base,
            DATABASE_URL=dsn,
        )
    )
    assert code != 0  # no such signal
    code, extra["status"] = await anyio.to_thread.run_sync(lambda: cli("status", DATABASE_URL=dsn))
    assert code == 0, extra["status"]

    # 2. The bridge fails every request: executions fail with the bridge's errors. A decision
    #    would use an account snapshot read before the faults while it is younger than
    #    ACCOUNT_SNAPSHOT_MAX_AGE, and its POST would then be ambiguous (a 5xx), located for
    #    minutes: the kept snapshot is let age first, so the decision meets the bridge's errors.
    bridge.set_faults(error_rate=1.0)
    await anyio.sleep(SNAPSHOT_AGE * 1.5)
    await wait_settled(conn, [await approval("F")], process=first)
    bridge.set_faults(error_rate=0, unavailable_rate=1.0)
    await wait_settled(conn, [await approval("U")], process=first)
    bridge.set_faults(unavailable_rate=0)
    assert await first.stop() == 0

    # 3. A SIGKILL after the broker accepted, and the recovery that adopts the order.
    crashed = harness.start(database_url=dsn, fault="after_broker_accepted")
    await crashed.wait_ready()
    pending = await approval("K")
    await crashed.wait_exit()
    recovered = harness.start(database_url=dsn)
    await recovered.wait_ready()
    await wait_settled(conn, [pending], process=recovered)
    assert await recovered.stop() == 0

    # 4. PostgreSQL unreachable, then "starting up" (57P03), then back: the tracebacks of the
    #    pool, the listener and the supervisor (the process may exit 1 there: see
    #    test_database_faults) are searched too.
    with tcp_proxy(db_url) as proxy:
        outage = harness.start(database_url=proxy.url_for(dsn))
        await outage.wait_ready()
        proxy.cut()
        await anyio.sleep(2)
        proxy.restore()
        proxy.cut(starting_up=True)
        await anyio.sleep(2)
        proxy.restore()
        with anyio.move_on_after(15):
            while outage.returncode() is None and len(outage.events("supervisor.ready")) < 2:
                await anyio.sleep(0.1)
        outage.kill()

    lines = harness.all_lines()
    assert len(lines) > 50
    assert any("Traceback" in line for line in lines), "no traceback was exercised"
    leaked = [(line[:300], leaks(line)) for line in lines if leaks(line)]
    assert not leaked, leaked[:5]
    for name, text in extra.items():
        assert not leaks(text), (name, leaks(text))
