"""DATABASE_URL, read in both of libpq's forms and handed to asyncpg as one URL.

- the URL form, one host or several: `postgresql://u@a:5432,b:5433/db?target_session_attrs=...`;
- the keyword form: `host=a,b port=5432,5433 dbname=db user=u target_session_attrs=read-write`
  (values may be single-quoted, with `\\'` and `\\\\` escapes, as libpq allows).

asyncpg reads only the URL form (it tries the hosts in order and keeps the first whose session
matches `target_session_attrs`), so the keyword form is converted. The service writes: with
several hosts it must land on the primary, so `target_session_attrs` defaults to `read-write`
there, and a value that could pick a standby (`any`, `standby`, `read-only`, ...) is refused.

Pure: no asyncpg here (the settings validate DATABASE_URL with it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

DEFAULT_PORT = 5432
WRITABLE_SESSION_ATTRS = ("read-write", "primary")
SCHEMES = ("postgresql", "postgres")

# key = value, the value bare or single-quoted (libpq's conninfo syntax).
_KEYWORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)")
_KEYWORD_MAP = {"dbname": "database", "user": "user", "password": "password"}


class DatabaseUrlError(ValueError):
    """DATABASE_URL cannot be read; the message is one sentence (no secret in it)."""


@dataclass(frozen=True, slots=True)
class Server:
    """One host of DATABASE_URL: a name or address (or a Unix-socket directory) and a port."""

    host: str
    port: int

    @property
    def is_socket(self) -> bool:
        return self.host.startswith("/")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed DATABASE_URL. `params` keeps every other option (sslmode, ...) in order."""

    servers: tuple[Server, ...]
    user: str | None = None
    password: str | None = None
    database: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    scheme: str = "postgresql"

    @property
    def several_hosts(self) -> bool:
        return len(self.servers) > 1

    @property
    def target_session_attrs(self) -> str | None:
        return dict(self.params).get("target_session_attrs")

    def with_password(self, password: str) -> DatabaseUrl:
        return replace(self, password=password)

    def hosts_text(self) -> str:
        """`a:5432,b:5433`: the servers, for logs and messages."""
        return ",".join(str(server) for server in self.servers)

    def to_url(self) -> str:
        """The URL asyncpg connects with (credentials included: never log it)."""
        creds = ""
        if self.user is not None or self.password is not None:
            creds = quote(self.user or "postgres", safe="")
            if self.password is not None:
                creds += ":" + quote(self.password, safe="")
            creds += "@"
        params = list(self.params)
        if any(server.is_socket for server in self.servers):
            # Socket directories travel in the query (a "/" cannot be in the netloc).
            params += [
                ("host", ",".join(server.host for server in self.servers)),
                ("port", ",".join(str(server.port) for server in self.servers)),
            ]
            netloc = creds
        else:
            netloc = creds + self.hosts_text()
        path = "/" + quote(self.database, safe="") if self.database else "/"
        query = "?" + urlencode(params, safe="/,") if params else ""
        return f"{self.scheme}://{netloc}{path}{query}"

    def redacted(self) -> str:
        """Every host and the database, never the user, the password or the options."""
        path = "/" + self.database if self.database else ""
        if any(server.is_socket for server in self.servers):
            return f"{self.scheme}://***:***@{path}?host={self.hosts_text()}"
        return f"{self.scheme}://***:***@{self.hosts_text()}{path}"


def parse_database_url(text: str) -> DatabaseUrl:
    """Read DATABASE_URL in either form; raise `DatabaseUrlError` (one sentence) if it cannot
    be, or if several hosts are named with a `target_session_attrs` that could pick a standby."""
    text = text.strip()
    if not text:
        raise DatabaseUrlError("is empty")
    if "://" in text:
        url = _parse_url(text)
    elif "=" in text:
        url = _parse_keywords(text)
    else:
        raise DatabaseUrlError(
            "must be a postgresql://user@host:port/db URL or libpq keywords (host=... dbname=...)"
        )
    return _writable(url)


def _writable(url: DatabaseUrl) -> DatabaseUrl:
    attrs = url.target_session_attrs
    if attrs is None:
        if not url.several_hosts:
            return url
        # Several hosts and no choice made: the primary, else asyncpg takes the first that
        # answers, a standby included, and every write fails there.
        return replace(url, params=(*url.params, ("target_session_attrs", "read-write")))
    if url.several_hosts and attrs not in WRITABLE_SESSION_ATTRS:
        raise DatabaseUrlError(
            f"target_session_attrs={attrs} could connect to a standby, and the service writes: "
            "use target_session_attrs=read-write with several hosts"
        )
    return url


def _parse_url(text: str) -> DatabaseUrl:
    try:
        parts = urlsplit(text)
    except ValueError:
        raise DatabaseUrlError("is not a parsable URL") from None
    if parts.scheme not in SCHEMES:
        raise DatabaseUrlError("must be a postgresql://user@host:port/db URL")
    creds, at, hostspec = parts.netloc.rpartition("@")
    user = password = None
    if at:
        name, colon, secret = creds.partition(":")
        user = unquote(name) if name else None
        password = unquote(secret) if colon else None
    params = parse_qsl(parts.query, keep_blank_values=True)
    options = [(k, v) for k, v in params if k not in ("host", "port")]
    query = dict(params)
    if hostspec:
        servers = _host_list(hostspec)
    elif "host" in query:  # postgresql:///db?host=/run/postgresql&port=5432
        servers = _servers(query["host"].split(","), query.get("port", ""))
    else:
        raise DatabaseUrlError("must be a postgresql://user@host:port/db URL")
    database = unquote(parts.path.lstrip("/")) or None
    return DatabaseUrl(tuple(servers), user, password, database, tuple(options), parts.scheme)


def _host_list(hostspec: str) -> list[Server]:
    """`a:5432,[::1]:5433,b` (ports optional)."""
    servers: list[Server] = []
    for spec in hostspec.split(","):
        if not spec:
            raise DatabaseUrlError("names an empty host in its host list")
        if spec.startswith("["):
            host, bracket, rest = spec[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise DatabaseUrlError("has an unparsable IPv6 host")
            port = rest[1:]
        else:
            host, _, port = spec.partition(":")
        servers.append(Server(unquote(host), _port(port)))
    return servers


def _servers(hosts: list[str], ports: str) -> list[Server]:
    """libpq's rule: one port for every host, or one port per host."""
    port_list = [p.strip() for p in ports.split(",")] if ports.strip() else [""]
    if len(port_list) == 1:
        port_list = port_list * len(hosts)
    if len(port_list) != len(hosts):
        raise DatabaseUrlError(
            f"names {len(hosts)} hosts but {len(port_list)} ports (give one port, or one per host)"
        )
    if any(not host.strip() for host in hosts):
        raise DatabaseUrlError("names an empty host in its host list")
    return [Server(host.strip(), _port(port)) for host, port in zip(hosts, port_list, strict=True)]


def _port(text: str) -> int:
    if not text:
        return DEFAULT_PORT
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise DatabaseUrlError(f"has a bad port {text!r}")
    return int(text)


def _parse_keywords(text: str) -> DatabaseUrl:
    values: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _KEYWORD.match(text, position)
        if match is None or match.end() == position:
            raise DatabaseUrlError("is not a parsable list of libpq keywords (key=value ...)")
        key, raw = match.group(1), match.group(2)
        if raw.startswith("'"):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        values[key] = raw
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return _from_keywords(values)


def _from_keywords(values: Mapping[str, str]) -> DatabaseUrl:
    host = values.get("host") or values.get("hostaddr")
    if not host:
        raise DatabaseUrlError("names no host (host=...)")
    servers = _servers(host.split(","), values.get("port", ""))
    known = {"host", "hostaddr", "port", *_KEYWORD_MAP}
    options = tuple((k, v) for k, v in values.items() if k not in known)
    return DatabaseUrl(
        tuple(servers),
        user=values.get("user"),
        password=values.get("password"),
        database=values.get("dbname"),
        params=options,
    )
