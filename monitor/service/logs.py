"""Structured JSON logs on stderr. Every record can carry `action`, `provider`, `step`…

Secrets never reach a log line: probe results redact credentials at the source,
and config secrets are SecretStr (their repr is '**********').
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger",
                       "message": "msg"},
        timestamp=False))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # These libraries log every request/job at INFO; our own lines say what matters.
    for noisy in ("apscheduler", "httpx", "httpcore", "uvicorn.access", "mail.log", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # It warns on every malformed form a client posts; the inbound route answers 400.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
