"""Every error answer is JSON (CONTRACT section 6), down to the HTTP layer: a Content-Length of
10^21 got an empty, non-JSON 400 from h11 (review finding); now the API's own 413. A request h11
cannot parse at all gets a JSON 400."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from tests.support import ThreadedBridge, make_settings, running_service

pytestmark = pytest.mark.anyio
TOKEN = "test-token"


async def raw_exchange(port: int, head: bytes) -> tuple[int, dict[str, str], Any]:
    """Send `head` (no body), read the answer until the server closes or it is complete."""
    received = b""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head)
        with anyio.fail_after(10):
            while True:
                end = received.find(b"\r\n\r\n")
                if end >= 0:
                    lines = received[:end].decode().split("\r\n")
                    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
                    if len(received) >= end + 4 + int(headers.get("content-length", "0")):
                        break
                try:
                    received += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    head_text, _, body = received.partition(b"\r\n\r\n")
    lines = head_text.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(body)


def execute_head(content_length: str) -> bytes:
    return (
        "POST /api/v1/execute HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


async def test_huge_content_length_is_a_json_413(db_url: str, bridge: ThreadedBridge) -> None:
    async with running_service(make_settings(db_url, bridge)) as service:
        assert service.http_port is not None
        for length in (str(10**21), "9" * 300, "16385"):
            status, headers, body = await raw_exchange(service.http_port, execute_head(length))
            assert status == 413, (length, body)
            assert headers["content-type"] == "application/json"
            assert body == {"error": "request body too large (at most 16384 bytes)"}


async def test_unparsable_request_is_a_json_400(db_url: str, bridge: ThreadedBridge) -> None:
    async with running_service(make_settings(db_url, bridge)) as service:
        assert service.http_port is not None
        for head in (b"NOT HTTP AT ALL\r\n\r\n", execute_head("12, 13")):
            status, headers, body = await raw_exchange(service.http_port, head)
            assert status == 400, (head, body)
            assert headers["content-type"] == "application/json"
            assert body["error"].startswith("bad request"), body
