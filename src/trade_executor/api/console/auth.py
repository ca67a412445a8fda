"""The console's sessions: who may act, and forms that only the console's own pages can send.

- The API token is typed once into the login form (a POST body) and never leaves the server
  again: the browser gets an opaque random session id in a cookie (HttpOnly, SameSite=Strict,
  Path=/console, Secure when served over https), never the token or anything derived from it.
  Sessions live in this process's memory: a restart, or a rotated API_TOKEN (each request checks
  that the token the session logged in with is still the service's), logs everyone out.
- Every action form carries the session's CSRF token (a second random value, in a hidden field,
  compared in constant time), and every POST must come from the console's own origin (Origin,
  else Referer, equal to the address the request was sent to): a page elsewhere can neither
  read the CSRF token nor send the cookie (SameSite=Strict), and both are checked anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "te_console"
COOKIE_PATH = "/console"
# An idle session ends after this long (a console left open in a browser overnight logs out).
IDLE_TIMEOUT = 12 * 3600.0
MAX_SESSIONS = 1000  # a flood of logins cannot grow the book without bound
MAX_OPERATOR = 60


@dataclass
class Session:
    operator: str
    csrf: str
    token_digest: bytes  # sha256 of the token logged in with: a rotation ends the session
    seen: float
    flash: list[tuple[bool, str]] = field(default_factory=list)  # (ok, what the service did)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class SessionBook:
    """The console's logged-in sessions, by their random id."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._sessions: dict[str, Session] = {}
        self._clock = clock

    def open(self, operator: str, token: str) -> str:
        self._expire()
        if len(self._sessions) >= MAX_SESSIONS:  # the oldest idle goes first
            oldest = min(self._sessions, key=lambda sid: self._sessions[sid].seen)
            del self._sessions[oldest]
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = Session(
            operator, secrets.token_urlsafe(32), digest(token), self._clock()
        )
        return sid

    def get(self, request: Request, token: str | None) -> Session | None:
        """The request's live session, or None (no cookie, unknown, idle too long, or the
        service's token is no longer the one it logged in with)."""
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        session = self._sessions.get(sid)
        now = self._clock()
        if session is None:
            return None
        if (
            token is None
            or not hmac.compare_digest(session.token_digest, digest(token))
            or now - session.seen > IDLE_TIMEOUT
        ):
            del self._sessions[sid]
            return None
        session.seen = now
        return session

    def close(self, request: Request) -> None:
        sid = request.cookies.get(COOKIE)
        if sid:
            self._sessions.pop(sid, None)

    def _expire(self) -> None:
        now = self._clock()
        for sid in [s for s, v in self._sessions.items() if now - v.seen > IDLE_TIMEOUT]:
            del self._sessions[sid]


def set_cookie(response: Response, request: Request, sid: str) -> None:
    response.set_cookie(
        COOKIE,
        sid,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def token_matches(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.encode(), token.encode())


def same_origin(request: Request) -> bool:
    """True when the POST says it comes from the address it was sent to (Origin, else
    Referer); neither header, or another origin: refused."""
    host = request.headers.get("host")
    if not host:
        return False
    expected = f"{request.url.scheme}://{host}".lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.lower() == expected
    referer = request.headers.get("referer")
    if not referer:
        return False
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}".lower() == expected


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())
