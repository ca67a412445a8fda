"""What `run` says at start, from the review's findings: an unreachable database ends the start
with one sentence and exit 1 (it was `TimeoutError: ` and a traceback after 60 s), and the
sentences check-config warns with (a limit set to 0, MAX_RISK_PER_TRADE above 0.02) are logged
at warning, not only inside the info line `supervisor.starting`."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from tests.support import ThreadedBridge, make_settings, running_service
from trade_executor.service.run import Service
from trade_executor.service.systemd import SystemdNotifier

pytestmark = pytest.mark.anyio


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_database_ends_the_start_in_one_sentence(bridge: ThreadedBridge) -> None:
    port = closed_port()
    settings = make_settings(f"postgresql://te@127.0.0.1:{port}/te", bridge)
    service = Service(settings, notifier=SystemdNotifier(None), database_deadline=1.5)
    with capture_logs() as logs:
        code = await service.run()
    assert code == 1
    assert service.failure is not None
    assert service.failure.startswith(
        f"cannot reach the database at 127.0.0.1:{port}/te (no answer within 1.5 s, step migrate"
    ), service.failure
    assert "\n" not in service.failure and "Traceback" not in service.failure
    [failed] = [line for line in logs if line["event"] == "supervisor.failed"]
    assert failed["error"] == service.failure
    assert "exc_info" not in failed  # a known cause: no traceback
    assert any(line["event"] == "supervisor.database_unavailable" for line in logs)


async def test_run_logs_the_config_warnings_at_warning(db_url: str, bridge: ThreadedBridge) -> None:
    settings = make_settings(
        db_url, bridge, max_open_positions=0, max_risk_per_trade=Decimal("0.03")
    )
    with capture_logs() as logs:
        async with running_service(settings):
            pass
    warnings = [line for line in logs if line["event"] == "supervisor.config_warning"]
    assert {line["log_level"] for line in warnings} == {"warning"}
    assert [line["warning"] for line in warnings] == settings.warnings()
    assert "limits off (set to 0): MAX_OPEN_POSITIONS" in warnings[0]["warning"]
    assert warnings[1]["warning"].startswith("MAX_RISK_PER_TRADE=0.03 risks 3% of net liquidation")
