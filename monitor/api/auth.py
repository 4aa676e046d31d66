"""Bearer tokens with two scopes, `read` and `admin` (admin can also read).

Tokens come from MONITOR_API_TOKENS ("token:scope,token:scope") or the file
named by MONITOR_API_TOKENS_FILE (same entries, commas or new lines). Each
presented token is compared with every configured one in constant time.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from starlette.requests import Request

from monitor.api.errors import ApiError


class Scope(StrEnum):
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True)
class Tokens:
    entries: tuple[tuple[bytes, Scope], ...] = ()

    @classmethod
    def parse(cls, text: str, source: str) -> Tokens:
        entries = []
        for raw in text.replace("\n", ",").split(","):
            item = raw.strip()
            if not item:
                continue
            token, sep, scope = item.rpartition(":")
            if not sep or not token or scope not in Scope.__members__.values():
                raise ValueError(f"{source}: each entry must be token:read or token:admin")
            if len(token) < 16:
                raise ValueError(f"{source}: tokens must be at least 16 characters")
            entries.append((token.encode(), Scope(scope)))
        return cls(tuple(entries))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Tokens:
        environ = os.environ if env is None else env
        if path := environ.get("MONITOR_API_TOKENS_FILE"):
            return cls.parse(Path(path).read_text(encoding="utf-8"), path)
        return cls.parse(environ.get("MONITOR_API_TOKENS", ""), "MONITOR_API_TOKENS")

    def scope_of(self, presented: str) -> Scope | None:
        found: Scope | None = None
        candidate = presented.encode()
        for token, scope in self.entries:  # no early exit: timing says nothing
            if hmac.compare_digest(candidate, token) and found is not Scope.ADMIN:
                found = scope
        return found


def authorize(request: Request, tokens: Tokens, needed: Scope) -> Scope:
    header = request.headers.get("authorization", "")
    kind, _, presented = header.partition(" ")
    if kind.lower() != "bearer" or not presented.strip():
        raise ApiError(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    scope = tokens.scope_of(presented.strip())
    if scope is None:
        raise ApiError(401, "invalid token", headers={"WWW-Authenticate": "Bearer"})
    if needed is Scope.ADMIN and scope is not Scope.ADMIN:
        raise ApiError(403, "this route needs an admin token")
    return scope
