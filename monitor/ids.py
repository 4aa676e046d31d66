"""Identifiers for runs, events, deliveries and checks.

Time-ordered (millisecond prefix) so ids sort like creation time and cursors can
page by id; 48 random bits make collisions between replicas negligible.
"""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str = "") -> str:
    return f"{prefix}{time.time_ns() // 1_000_000:013x}{secrets.token_hex(6)}"
