"""This process's name among the instances sharing a database: `host:pid`, the form of
`executor_control.leader_id`. Pool sessions carry it as `application_name`
(`trade-executor host:pid`), which is how `status` tells instances apart."""

from __future__ import annotations

import os
import socket


def instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def application_name() -> str:
    """The `application_name` of this instance's pool sessions (PostgreSQL keeps 63 bytes)."""
    return f"trade-executor {instance_id()}"[:63]
