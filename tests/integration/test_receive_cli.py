"""`monitor probe` end to end: postfix accepts, dovecot files, the CLI waits and reports."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mailstack import MailStack

SEED, SEED_PASSWORD = "seed@example.test", "seed-password"

# A personal Sieve script (Pigeonhole's default location, ~/.dovecot.sieve, runs
# after the stack's global one) lets a probe — which cannot carry X-Test-Junk —
# be filed as junk by its subject.
JUNK_BY_SUBJECT = """require ["fileinto"];
if header :contains "Subject" "[junk-test]" { fileinto "Junk"; stop; }
"""


def write_config(path: Path, stack: MailStack, *, subject: str = "Delivery Monitor probe",
                 deliver_within: str = "20s") -> Path:
    path.write_text(f"""
providers:
  - name: local-postfix
    host: {stack.host}
    port: {stack.submission_port}
    mode: send
    ca_file: {stack.ca_pem_path}
    helo: probe.example.test
    auth: {{username: {SEED}, password: "${{SEED_PASSWORD}}"}}
    from: {SEED}
    to: [seed-imap]
    subject: "{subject}"
mailboxes:
  - name: seed-imap
    address: {SEED}
    kind: imap
    host: {stack.host}
    port: {stack.imap_port}
    tls: starttls
    ca_file: {stack.ca_pem_path}
    username: {SEED}
    password: "${{SEED_PASSWORD}}"
    deliver_within: {deliver_within}
""")
    return path


async def monitor(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", *args,
        env={**os.environ, "SEED_PASSWORD": SEED_PASSWORD},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def junk_by_subject(mailstack: MailStack) -> Iterator[None]:
    home = mailstack.maildir_for(SEED).parent
    home.mkdir(parents=True, exist_ok=True)
    script = home / ".dovecot.sieve"
    script.write_text(JUNK_BY_SUBJECT)
    owner = home.stat()
    os.chown(script, owner.st_uid, owner.st_gid)
    yield
    script.unlink()
    (home / ".dovecot.svbin").unlink(missing_ok=True)


async def test_probe_prints_arrival_latency_and_folder(mailstack: MailStack,
                                                       tmp_path: Path) -> None:
    config = write_config(tmp_path / "monitor.yaml", mailstack)
    code, out, err = await monitor("probe", "local-postfix", "--config", str(config))
    assert code == 0, out + err
    assert "Delivery:     seed-imap (imap) arrived, folder INBOX → inbox" in out
    assert "to the Received timestamp, seen after" in out and "; deleted" in out
    assert out.index("OK in") < out.index("Delivery:")  # under the step table
    assert "waiting for the probe message in seed-imap" in err
    assert SEED_PASSWORD not in out + err


async def test_probe_json_has_the_receive_side(mailstack: MailStack, tmp_path: Path) -> None:
    config = write_config(tmp_path / "monitor.yaml", mailstack)
    code, out, err = await monitor("probe", "local-postfix", "--config", str(config), "--json")
    assert code == 0, err
    data = json.loads(out)
    [receive] = data["receive"]
    assert data["ok"] and data["token"] == receive["token"]
    assert (receive["status"], receive["placement"], receive["folder"], receive["ok"]) == (
        "arrived", "inbox", "INBOX", True)
    assert receive["latency_ms"] is not None and receive["seen_latency_ms"] > 0


async def test_junk_case_shows_junk_and_exits_1(mailstack: MailStack, tmp_path: Path,
                                                junk_by_subject: None) -> None:
    config = write_config(tmp_path / "monitor.yaml", mailstack, subject="[junk-test] probe")
    code, out, err = await monitor("probe", "local-postfix", "--config", str(config))
    assert code == 1, out + err
    assert "OK in" in out  # SMTP was fine; the receive side is not
    assert "Delivery:     seed-imap (imap) landed in JUNK, folder Junk → junk" in out


async def test_missing_message_fails_at_the_deadline(mailstack: MailStack,
                                                     tmp_path: Path) -> None:
    mailstack.set_recipient_access({SEED: "DISCARD test: accepted, never delivered"})
    try:
        config = write_config(tmp_path / "monitor.yaml", mailstack, deliver_within="2s")
        code, out, err = await monitor("probe", "local-postfix", "--config", str(config))
    finally:
        mailstack.set_recipient_access({})
    assert code == 1, out + err
    assert "FAILED (delivery): not seen in INBOX, Junk within 2s of DATA being accepted" in out
