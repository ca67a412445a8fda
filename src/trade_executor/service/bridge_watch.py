"""The bridge checked in the background (CONTRACT sections 6 and 9), not only when an approval
needs it: `/health`, the `bridge_up` gauge and the `bridge.down` / `bridge.up` log lines all
read this one watcher.

Guarantees: one `GET /health` every CHECK_INTERVAL on a client of its own that never retries
(so a down bridge costs one failed request per interval, not a burst of retry warnings); the
outage is logged once when it starts (`bridge.down`, then at most once a minute with a count
while it lasts) and once when it ends (`bridge.up`); a bridge that answers but is not connected
to IB counts as down (orders would fail). Each check also re-reads the account's mode (the
`paper_trading` of `/health`): a bridge that turns live (or paper) is seen within one interval,
logged (`bridge.account_mode_changed`, warning) and handed to `on_mode`.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from trade_executor.broker.client import BrokerClient
from trade_executor.broker.errors import BrokerError
from trade_executor.observability.logging import clear_repeated, get_logger, log_repeated
from trade_executor.observability.metrics import Metrics

CHECK_INTERVAL = 5.0
CHECK_TIMEOUT = 3.0
_KEY = "bridge"

log = get_logger("trade_executor.bridge_watch")

ModeListener = Callable[[bool | None], None]


def _mode(paper_trading: bool | None) -> str:
    return {True: "paper", False: "live", None: "unknown"}[paper_trading]


class BridgeWatch:
    def __init__(
        self,
        url: str,
        metrics: Metrics,
        *,
        interval: float = CHECK_INTERVAL,
        on_mode: ModeListener | None = None,
    ) -> None:
        self._url = url
        self._metrics = metrics
        self._interval = interval
        self._on_mode = on_mode
        self.up: bool | None = None  # None until the first check
        self.problem: str | None = None
        # The account's mode as the last connected /health said (None: not said, or not yet).
        self.paper_trading: bool | None = None
        self._mode_seen = False

    def listen(self, on_mode: ModeListener) -> None:
        """Call `on_mode(paper_trading)` at every change of the account's mode."""
        self._on_mode = on_mode

    async def run(self) -> None:
        """Check until cancelled."""
        async with BrokerClient(self._url, CHECK_TIMEOUT, read_retries=0) as client:
            while True:
                await self.check(client)
                await anyio.sleep(self._interval)

    async def check(self, client: BrokerClient) -> None:
        problem: str | None = None
        try:
            with anyio.fail_after(CHECK_TIMEOUT + 1):
                health = await client.health()
            if not health.connected:
                problem = "the bridge is not connected to IB"
            else:
                self._note_mode(health.paper_trading)
        except (BrokerError, TimeoutError) as error:
            problem = str(error) or type(error).__name__
        self.problem = problem
        self.up = problem is None
        self._metrics.set_bridge_up(self.up)
        if problem is not None:
            log_repeated(_KEY, "bridge.down", error=problem, url=self._url)
        else:
            clear_repeated(_KEY, "bridge.up", url=self._url)

    def _note_mode(self, paper_trading: bool | None) -> None:
        if self._mode_seen and paper_trading == self.paper_trading:
            return
        if self._mode_seen:
            log.warning(
                "bridge.account_mode_changed",
                was=_mode(self.paper_trading),
                now=_mode(paper_trading),
                url=self._url,
            )
        self._mode_seen = True
        self.paper_trading = paper_trading
        if self._on_mode is not None:
            self._on_mode(paper_trading)
