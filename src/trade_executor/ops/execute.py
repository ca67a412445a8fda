"""`execute`: approve and execute one signal through the running service's HTTP API."""

from __future__ import annotations

import argparse
import json

import httpx

from trade_executor.config import Settings
from trade_executor.ops.common import fail


def execute(settings: Settings, args: argparse.Namespace) -> int:
    url = args.url or f"http://{settings.http_host}:{settings.http_port}"
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/api/v1/execute",
            json={"signal_id": args.signal_id, "approved_by": args.approved_by},
            headers={"Authorization": f"Bearer {token}"},
            timeout=40,
        )
    except httpx.HTTPError as error:
        return fail(f"the service's HTTP API at {url} did not answer ({error})")
    try:
        body = response.json()
    except ValueError:
        return fail(f"the service answered {response.status_code} without JSON")
    print(json.dumps(body, indent=2))
    return 0 if response.status_code == 200 else 1
