"""The one exception of the checks package.

    CheckError(code, message, details)   the request names something the config
                                         does not have; nothing was sent

`code` is stable (`unknown_provider`, `unknown_seed`) and `details` is JSON-safe,
so the API can answer 422 with `{"error": {"code", "message", "details"}}`.
Everything else that can go wrong in a check is reported in its `CheckReport`.
"""

from __future__ import annotations

from typing import Any


class CheckError(Exception):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
