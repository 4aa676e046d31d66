"""`monitor webhook verify`, run as a real subprocess: exit 0 valid, 1 invalid, 2 usage."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.webhooks.signing import generate_secret, headers

BODY = b'{"type":"webhook.test","timestamp":"2026-01-01T00:00:00Z","data":{"x":"\xc3\xa9"}}'


def run(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "webhook", "verify", *args],
        input=stdin, capture_output=True, timeout=60, env={**os.environ, **(env or {})},
    )  # bytes in: the body must reach the verifier exactly as sent
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())


def header_args(sent: dict[str, str]) -> list[str]:
    out = []
    for name, value in sent.items():
        out += ["--header", f"{name}: {value}"]
    return out


@pytest.fixture
def secret() -> str:
    return generate_secret()


def test_valid_from_stdin_and_header_flags(secret: str) -> None:
    sent = headers("evt_1", int(time.time()), BODY, secret)
    done = run("--secret", secret, *header_args(sent), stdin=BODY)
    assert done.returncode == 0, done.stderr
    assert "valid: webhook-id evt_1" in done.stdout


def test_valid_from_files_with_secret_from_environment(secret: str, tmp_path: Path) -> None:
    sent = headers("evt_2", int(time.time()), BODY, secret)
    dump = "POST /hooks HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items())
    (tmp_path / "headers.txt").write_text(dump + "\r\n")
    (tmp_path / "body.json").write_bytes(BODY)
    done = run("--headers-file", str(tmp_path / "headers.txt"),
               "--body-file", str(tmp_path / "body.json"),
               env={"MONITOR_WEBHOOK_SECRET": secret})
    assert done.returncode == 0, done.stderr


def test_tampered_body_is_invalid(secret: str) -> None:
    sent = headers("evt_3", int(time.time()), BODY, secret)
    done = run("--secret", secret, *header_args(sent), stdin=BODY + b" ")
    assert done.returncode == 1
    assert "no signature matches" in done.stderr


def test_old_timestamp_is_invalid_unless_tolerated(secret: str) -> None:
    sent = headers("evt_4", int(time.time()) - 3600, BODY, secret)
    assert run("--secret", secret, *header_args(sent), stdin=BODY).returncode == 1
    tolerant = run("--secret", secret, "--tolerance", "7200", *header_args(sent), stdin=BODY)
    assert tolerant.returncode == 0, tolerant.stderr


@pytest.mark.parametrize("args", [
    [],  # no secret at all
    ["--secret", "whsec_not base64!"],
    ["--secret", "whsec_dGVzdA==", "--header", "no colon here"],
    ["--secret", "whsec_dGVzdA==", "--body-file", "/nonexistent/body.json"],
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    sent = headers("evt_5", int(time.time()), BODY, "whsec_dGVzdA==")
    done = run(*args, *header_args(sent), stdin=BODY, env={"MONITOR_WEBHOOK_SECRET": ""})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "error:" in done.stderr
