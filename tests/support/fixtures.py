"""The suite's fixtures (registered as a plugin by tests/conftest.py): the only home of fixtures.

Async tests
    Mark them `@pytest.mark.anyio` (or `pytestmark = pytest.mark.anyio` for a module). They run
    on asyncio (`anyio_backend`, tests/conftest.py); the core's tests are also marked
    `both_backends` and run on trio as well. `no_blocking` makes the test body fail at any
    blocking call of the service's code on the event loop (`no_blocking_calls` below).

Parallel runs (`make test`: pytest-xdist, TEST_WORKERS)
    Every fixture is worker-safe: database names carry the worker's name and a uuid, ports are
    ephemeral (0), files live under `tmp_path`, advisory locks and `pg_stat_activity` reads are
    per database. Tests that must not run at the same time as each other would share an
    `@pytest.mark.xdist_group(name=...)` (one worker runs them in turn; `--dist loadgroup`)
    with the reason beside it; none needs one today.

PostgreSQL (server: TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres)
    `pg_server_url`       (session)  the server's maintenance database; never write there.
    `migrated_template`   (session)  a database migrated once per worker, never connected to
                                     again: every migrated database below is a clone of it
                                     (`CREATE DATABASE ... TEMPLATE`), not a migration replayed.
    `database_url`        (session)  one migrated database for the whole run. Shared by every
                                     test of the worker: use fresh uuids and symbols, never
                                     assume a table is empty, and put back what you change.
    `db_url`              (function) a new migrated database (a clone), dropped after the test.
    `migrated_database`   (function) a factory of more of those.
    `module_database_url` (module)   a migrated database of the module's own, which its tests may
                                     empty (`PgLedger.emptied` does).
    `fresh_database_url`  (function) a new, empty, unmigrated database, dropped after the test
                                     (the migrations' own tests start from it).
    `create_database`     (function) a factory of more of those.

Ledgers (`tests.support.ledgers`)
    `ledger`              (function) parametrised: a `MemoryLedger` and a `PgLedger` on
                                     `module_database_url`, emptied.

Bridges and the environment
    `bridge` (a paper bridge in its own thread; a module overrides `bridge_options` for another
    PaperConfig), `paper` (the paper bridge in the test's own loop), `client`, `receiver`,
    `clean_environment` (no setting leaks in from the machine).

These fixtures are synchronous (setup and teardown use `asyncio.run`), so sync and async tests on
either backend can use them.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from tests.support import (
    ENV_VARIABLES,
    PaperServer,
    ThreadedBridge,
    paper_config,
    paper_in_this_loop,
    threaded_bridge,
)
from tests.support.ledgers import Ledger, MemoryLedger, PgLedger
from tests.support.receiver import Receiver
from trade_executor.broker import BrokerClient
from trade_executor.config.session_calendar import trading_session
from trade_executor.config.sources import load_settings
from trade_executor.observability.logging import configure_logging
from trade_executor.store.migrate import migrate
from trade_executor_dev.paper import PaperConfig

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_SERVER_URL


def _with_database(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def _worker() -> str:
    """The pytest-xdist worker's name ("gw0"...), or "main" without xdist: part of every name
    this process creates on the server, so that parallel workers never meet."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


async def _create(server_url: str, template: str = "template0") -> str:
    # A generated name (hex only) is safe to interpolate: CREATE DATABASE takes no parameters.
    name = f"te_{_worker()}_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server_url)
    try:
        # template0: CREATE DATABASE from template1 fails while anyone is connected to template1.
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return _with_database(server_url, name)


async def _drop(server_url: str, database_url: str) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    conn = await asyncpg.connect(server_url)
    try:
        # FORCE: a test that leaked a connection must not make the teardown fail.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def create_database(pg_server_url: str) -> Iterator[Callable[[], str]]:
    created: list[str] = []

    def factory() -> str:
        url = asyncio.run(_create(pg_server_url))
        created.append(url)
        return url

    yield factory
    for url in created:
        asyncio.run(_drop(pg_server_url, url))


@pytest.fixture
def fresh_database_url(create_database: Callable[[], str]) -> str:
    return create_database()


@pytest.fixture(scope="session")
def migrated_template(pg_server_url: str) -> Iterator[str]:
    """The name of a database migrated once per session (per xdist worker), which no one
    connects to again: the template that every migrated database of the run is cloned from
    (`CREATE DATABASE ... TEMPLATE`, a file copy: no migration replayed per test)."""
    url = asyncio.run(_create(pg_server_url))
    try:
        asyncio.run(migrate(url))
        yield urlsplit(url).path.lstrip("/")
    finally:
        asyncio.run(_drop(pg_server_url, url))


def _clone(server_url: str, template: str) -> str:
    return asyncio.run(_create(server_url, template))


@pytest.fixture(scope="session")
def database_url(pg_server_url: str, migrated_template: str) -> Iterator[str]:
    url = _clone(pg_server_url, migrated_template)
    try:
        yield url
    finally:
        asyncio.run(_drop(pg_server_url, url))


@pytest.fixture(scope="module")
def module_database_url(pg_server_url: str, migrated_template: str) -> Iterator[str]:
    url = _clone(pg_server_url, migrated_template)
    try:
        yield url
    finally:
        asyncio.run(_drop(pg_server_url, url))


@pytest.fixture
def migrated_database(pg_server_url: str, migrated_template: str) -> Iterator[Callable[[], str]]:
    """A factory: `migrated_database()` returns the URL of another new database with the schema
    migrated (a clone of the template); all are dropped after the test."""
    created: list[str] = []

    def factory() -> str:
        url = _clone(pg_server_url, migrated_template)
        created.append(url)
        return url

    yield factory
    for url in created:
        asyncio.run(_drop(pg_server_url, url))


@pytest.fixture(params=["memory", "postgres"])
def ledger_url(request: pytest.FixtureRequest, anyio_backend: str) -> str | None:
    """None for the memory store, else the URL of the module's database (synchronous, so the
    database can be created outside the test's event loop)."""
    if request.param == "memory":
        return None
    if anyio_backend != "asyncio":
        pytest.skip("asyncpg runs on asyncio only")
    return str(request.getfixturevalue("module_database_url"))


@pytest.fixture
async def ledger(ledger_url: str | None) -> AsyncIterator[Ledger]:
    if ledger_url is None:
        yield MemoryLedger()
        return
    async with PgLedger.emptied(ledger_url) as emptied:
        yield emptied


# -- the environment -------------------------------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting leaks in from the machine running the tests (`ENV_VARIABLES`); afterwards the
    logs are configured back to the suite's default, since `main()` configures them for the
    whole process. Modules that run the command line use it for every test:
    `pytestmark = pytest.mark.usefixtures("clean_environment")`."""
    for name in ENV_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    configure_logging("json", "info")


# -- the event loop is never blocked ---------------------------------------------------------


@contextmanager
def no_blocking_calls() -> Iterator[BlockBuster]:
    """Fails the test (`blockbuster.BlockingError`, raised where the call is made) when code
    of the service (`trade_executor`) makes a blocking call (a sleep, a blocking socket or file
    operation...) on a running asyncio event loop. The development scaffolding in the package
    (the paper bridge, the memory store, the demo) is not scanned. tests/conftest.py applies it
    to the body of every test marked `no_blocking` (the actors' and the service's tests)."""
    # As the service does before it builds the actors (in a worker thread: seconds of imports).
    settings = load_settings()
    trading_session(settings.trading_session, settings.trading_day_timezone)
    with blockbuster_ctx(
        "trade_executor",
        excluded_modules=[
            "trade_executor_dev.paper",
            "trade_executor_dev.testing",
            "trade_executor_dev.demo",
            "trade_executor_dev.devdb",
        ],
    ) as buster:
        for function in buster.functions.values():
            # Read before the loop in production (the command line loads the settings, then
            # starts the loop); the tests build theirs inside it.
            function.can_block_in("trade_executor/config/sources.py", "load_settings")
            # The package's few .sql files, read once at start-up (`migrate`).
            function.can_block_in("trade_executor/store/migrate.py", "load_migrations")
            # asyncpg looks for ~/.pgpass and ~/.postgresql's certificates (a few stats) at
            # every connect: the library's, and short.
            function.can_block_in("asyncpg/connect_utils.py", "_parse_connect_dsn_and_args")
            # The API's app is built once at start-up (the console's template folder, its static
            # files' folder); jinja reads a console template from the package at its first use
            # (then cached): short reads of the package's own files, found and left as they are.
            function.can_block_in("trade_executor/api/app.py", "create_app")
            function.can_block_in("jinja2/loaders.py", "get_source")
            # A scrape of /metrics reads /proc/self (the process collector): memory, not disk.
            function.can_block_in("prometheus_client/process_collector.py", "collect")
            # A crash logged with its traceback stats and reads the frames' source files (the
            # console renderer through rich, the JSON one through `traceback`/linecache): only
            # on the path of an error already happening, and cached after the first time.
            function.can_block_in("rich/traceback.py", "_render_stack")
            function.can_block_in("linecache.py", ["updatecache", "checkcache"])
        yield buster


# -- the service's surroundings --------------------------------------------------------------


@pytest.fixture
def db_url(migrated_database: Callable[[], str]) -> str:
    """A new database with the schema migrated (a clone of `migrated_template`), dropped after
    the test."""
    return migrated_database()


@pytest.fixture
def bridge_options() -> dict[str, Any]:
    """`PaperConfig` overrides for `bridge`: a module that needs another bridge overrides this
    fixture (tests/chaos/test_load.py: prices that move only when stepped)."""
    return {}


@pytest.fixture
def bridge(bridge_options: dict[str, Any]) -> Iterator[ThreadedBridge]:
    """A paper bridge in its own thread (a separate server, as in production), with the real
    bridge's behaviour (the `jax` profile, its waits scaled by JAX_LATENCY_SCALE): no order_ref
    kept (the chaos invariants tie orders to executions by the order_ref each POST was sent
    with, from the bridge's request log), unset prices, 500s, DAY orders."""
    with threaded_bridge(**bridge_options) as running:
        yield running


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `db_url` (asyncio only)."""
    connection = await asyncpg.connect(db_url)
    try:
        yield connection
    finally:
        await connection.close()


# -- the paper bridge in the test's own event loop (both backends) ---------------------------


@pytest.fixture
def paper_settings() -> PaperConfig:
    return paper_config()


@pytest.fixture
async def paper(anyio_backend: str, paper_settings: PaperConfig) -> AsyncIterator[PaperServer]:
    async with paper_in_this_loop(paper_settings) as server:
        yield server


@pytest.fixture
async def client(paper: PaperServer) -> AsyncIterator[BrokerClient]:
    """A client of the paper bridge that records (endpoint, outcome) of every attempt."""

    def record(endpoint: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        paper.requests.append((endpoint, outcome))

    async with BrokerClient(
        paper.url, timeout=5, read_retries=2, backoff_base=0.0, on_request=record
    ) as broker:
        yield broker


# -- a local receiver of notifications (tests/support/receiver.py) ---------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    # serve_forever in a thread of its own: Apprise posts from a worker thread
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.hang.set()
    r.server.shutdown()
