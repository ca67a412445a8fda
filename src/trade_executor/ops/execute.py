"""`execute`: approve and execute one signal through the running service's HTTP API.

The answer is printed as the service sent it, numbers exact (parsed to Decimal and written back
as the same JSON numbers, never through a float). Exit codes tell the outcomes apart, so a script
can branch without parsing the body (`EXIT_CODES`, also in `execute --help`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from trade_executor.broker import jsonnum
from trade_executor.config.sources import Settings
from trade_executor.ops.common import Refusal

EXECUTE_TIMEOUT = 40.0  # the service waits up to 30 s for the outcome

EX_NOT_AUTHORISED = 3  # 401 a bad or missing token, 403 POST endpoints disabled (no API_TOKEN)
EX_NOT_FOUND = 4  # 404 no such signal
EX_ALREADY_EXECUTED = 5  # 409 the signal was executed before (the existing trade is printed)
EX_REJECTED = 6  # 422 rejected or failed (the reason is printed)

EXIT_CODES: dict[int, int] = {
    200: 0,
    401: EX_NOT_AUTHORISED,
    403: EX_NOT_AUTHORISED,
    404: EX_NOT_FOUND,
    409: EX_ALREADY_EXECUTED,
    422: EX_REJECTED,
}

EXIT_CODES_HELP = """exit codes:
  0  executed (or dry run): the trade is printed
  1  no answer, 400, 503 (standby or not ready), 504 (no outcome within 30 s), anything else
  2  bad usage
  3  401 the token was refused, or 403 the service has POST endpoints disabled
  4  404 no such signal
  5  409 the signal was already executed (the existing trade is printed)
  6  422 rejected or failed (the reason is printed)
  78 invalid configuration"""


@dataclass(frozen=True, slots=True)
class Answered:
    """The running service's answer: its HTTP status and its JSON body (numbers exact)."""

    status: int
    body: Any

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)


async def execute(
    settings: Settings, signal_id: str, approved_by: str, *, url: str | None = None
) -> Answered | Refusal:
    """Approve and execute `signal_id` through the running service's HTTP API (at `url`, or
    HTTP_HOST:HTTP_PORT), with its API_TOKEN; a Refusal when it cannot be asked or answered
    without JSON."""
    base = (url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/")
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    if not token:
        return Refusal(
            "API_TOKEN is not set in this command's configuration: execute needs the running "
            "service's token (set API_TOKEN, or pass --env-file with it)"
        )
    try:
        async with httpx.AsyncClient(timeout=EXECUTE_TIMEOUT) as client:
            response = await client.post(
                f"{base}/api/v1/execute",
                json={"signal_id": signal_id, "approved_by": approved_by},
                headers={"Authorization": f"Bearer {token}"},
            )
    except httpx.HTTPError as error:
        return Refusal(
            f"the service's HTTP API at {base} did not answer ({error or type(error).__name__})"
        )
    try:
        body = jsonnum.loads(response.content)
    except ValueError:
        return Refusal(f"the service at {base} answered {response.status_code} without JSON")
    return Answered(response.status_code, body)
