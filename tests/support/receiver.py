"""A local HTTP receiver behind an Apprise `json://` URL (the notification tests): it records
each body, answers `status`, and hangs while `hang` is clear."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "s3cr3tT0kenXYZ"


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        self.hang = threading.Event()  # set: answer; clear: hang until set
        self.hang.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                receiver.bodies.append(body)
                receiver.arrived.set()
                receiver.hang.wait(10)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook/{SECRET}?rto=2&cto=2"
