"""Pre-campaign checks end to end: postfix accepts, dovecot files (Sieve), a loopback DNS
server answers for the sender domain; run_check in-process and `monitor check` as a user
runs it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.checks import CheckReport, CheckRequest, CheckStatus, Verdict, run_check
from monitor.config import Config, MailboxConfig, ProviderConfig
from monitor.receive import ReceiveStatus
from monitor.receive.result import Placement
from tests.integration.mailstack import MailStack
from tests.unit.checks.dnsserver import DnsServer, domain_records

SEED, SEED_PASSWORD = "seed@example.test", "seed-password"
# Its own user, so that filing everything into Junk touches no other test's mailbox.
JUNK_SEED, JUNK_PASSWORD = "check-junk@example.test", "check-junk-password"
DOMAIN = "example.test"
# Pigeonhole runs a personal script (default ~/.dovecot.sieve) after the stack's global
# one: a check message cannot carry the global rule's X-Test-Junk header.
ALWAYS_JUNK = 'require ["fileinto"];\nfileinto "Junk";\n'


@pytest.fixture(scope="module")
def junk_seed(mailstack: MailStack) -> Iterator[str]:
    mailstack.add_user(JUNK_SEED, JUNK_PASSWORD)
    home = mailstack.maildir_for(JUNK_SEED).parent
    owner = mailstack.mail_root.stat()
    for directory in (home.parent, home):
        directory.mkdir(mode=0o750, exist_ok=True)
        os.chown(directory, owner.st_uid, owner.st_gid)
    script = home / ".dovecot.sieve"
    script.write_text(ALWAYS_JUNK)
    os.chown(script, owner.st_uid, owner.st_gid)
    yield JUNK_SEED
    script.unlink()
    (home / ".dovecot.svbin").unlink(missing_ok=True)


def mailbox(stack: MailStack, name: str, address: str, password: str) -> dict[str, Any]:
    return {"name": name, "address": address, "kind": "imap", "host": stack.host,
            "port": stack.imaps_port, "tls": "implicit", "ca_file": str(stack.ca_pem_path),
            "username": address, "password": password, "deliver_within": "30s"}


def stack_config(stack: MailStack) -> Config:
    # mode `auth`: a check sends whatever the provider's scheduled probes do.
    provider = ProviderConfig.model_validate({
        "name": "postfix", "host": stack.host, "port": stack.submission_port,
        "tls": "starttls", "mode": "auth", "ca_file": stack.ca_pem_path,
        "helo": "check.example.test", "auth": {"username": SEED, "password": SEED_PASSWORD},
        "timeout": "20s", "step_timeout": "5s"})
    boxes = (MailboxConfig.model_validate(mailbox(stack, "seed", SEED, SEED_PASSWORD)),
             MailboxConfig.model_validate(mailbox(stack, "junk-seed", JUNK_SEED,
                                                  JUNK_PASSWORD)))
    return Config(providers=(provider,), mailboxes=boxes)


@pytest.fixture
async def full_dns() -> AsyncIterator[DnsServer]:
    async with DnsServer(domain_records(DOMAIN)) as server:
        yield server


@pytest.fixture
async def no_dmarc_dns() -> AsyncIterator[DnsServer]:
    async with DnsServer(domain_records(DOMAIN, dmarc=None)) as server:
        yield server


def request(*seeds: str) -> CheckRequest:
    return CheckRequest.model_validate({
        "provider": "postfix", "from": SEED, "seeds": list(seeds),
        "subject": "Pre-campaign check", "text": "Hello from the campaign.\n",
        "html": "<p>Hello from the campaign.</p>"})


async def test_check_passes_against_postfix_and_dovecot(mailstack: MailStack,
                                                        full_dns: DnsServer) -> None:
    progress: list[CheckReport] = []

    async def on_progress(report: CheckReport) -> None:
        progress.append(report)

    started = time.monotonic()
    report = await run_check(stack_config(mailstack), request("seed"), check_id="chk_pass",
                             dns_nameserver=full_dns.address, on_progress=on_progress)
    took = time.monotonic() - started
    assert (report.status, report.verdict, report.reasons) == (
        CheckStatus.DONE, Verdict.PASSED, []), report.reasons
    [seed] = report.seeds
    assert [seed.code(s) for s in ("mail", "rcpt", "data", "message")] == [
        (250, "2.1.0"), (250, "2.1.5"), (354, None), (250, "2.0.0")]
    assert seed.accepted and seed.arrived and seed.receive_status is ReceiveStatus.ARRIVED
    assert (seed.folder, seed.placement) == ("INBOX", Placement.INBOX)
    assert seed.latency_ms is not None and seed.latency_ms < 30_000
    assert report.dns is not None and report.dns.spf.record == "v=spf1 mx -all"
    assert report.dns.dmarc.policy == "reject"
    # Started, accepted (the token on record before the wait), done, the final report.
    assert [p.progress.seeds_done for p in progress] == [0, 0, 1, 1]
    assert progress[1].seeds[0].token == seed.token
    assert took < 30, f"the check took {took:.1f}s"
    print(f"check against postfix + dovecot: {took:.2f}s, delivery {seed.latency_ms} ms")


async def test_junk_seed_and_missing_dmarc_fail_with_exactly_those_reasons(
        mailstack: MailStack, junk_seed: str, no_dmarc_dns: DnsServer) -> None:
    report = await run_check(stack_config(mailstack), request("seed", "junk-seed"),
                             check_id="chk_fail", dns_nameserver=no_dmarc_dns.address)
    assert report.verdict is Verdict.FAILED
    assert report.reasons == ["junk-seed: landed in Junk",
                              "example.test has no DMARC record (_dmarc.example.test)"]
    inbox, junk = report.seeds
    assert (inbox.placement, junk.placement, junk.folder) == (
        Placement.INBOX, Placement.JUNK, "Junk")
    assert inbox.accepted and junk.accepted and junk.arrived


# The command line -----------------------------------------------------------------------


def write_config(path: Path, stack: MailStack) -> Path:
    path.write_text(f"""
providers:
  - name: postfix
    host: {stack.host}
    port: {stack.submission_port}
    mode: connect
    ca_file: {stack.ca_pem_path}
    helo: check.example.test
    auth: {{username: {SEED}, password: "${{SEED_PASSWORD}}"}}
mailboxes:
  - {{name: seed, address: {SEED}, kind: imap, host: {stack.host}, port: {stack.imaps_port},
      ca_file: {stack.ca_pem_path}, username: {SEED}, password: "${{SEED_PASSWORD}}",
      deliver_within: 30s}}
  - {{name: junk-seed, address: {JUNK_SEED}, kind: imap, host: {stack.host},
      port: {stack.imaps_port}, ca_file: {stack.ca_pem_path}, username: {JUNK_SEED},
      password: {JUNK_PASSWORD}, deliver_within: 30s}}
""")
    return path


async def monitor_check(config: Path, dns: DnsServer, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", "check", "--config", str(config),
        "--provider", "postfix", "--from", SEED, "--dns-server", f"127.0.0.1:{dns.port}",
        *args, env={**os.environ, "SEED_PASSWORD": SEED_PASSWORD},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_monitor_check_passes_and_exits_0(mailstack: MailStack, full_dns: DnsServer,
                                                tmp_path: Path) -> None:
    html = tmp_path / "campaign.html"
    html.write_text("<h1>May</h1>")
    code, out, err = await monitor_check(write_config(tmp_path / "m.yaml", mailstack),
                                         full_dns, "--seed", "seed", "--subject", "May news",
                                         "--html-file", str(html))
    assert code == 0, out + err
    assert "[--------------------] 0/1 seeds (sending)" in err
    assert "[####################] 1/1 seeds (done)" in err
    seed_row = next(line for line in out.splitlines() if line.startswith(f"seed  {SEED}"))
    assert seed_row.split()[2:10] == ["250", "2.1.0", "250", "2.1.5", "354", "250", "2.0.0",
                                      "arrived"]
    assert "INBOX" in seed_row
    assert "  SPF    v=spf1 mx -all" in out and "p=reject" in out
    assert "Verdict: PASSED" in out
    assert SEED_PASSWORD not in out + err


async def test_monitor_check_fails_and_exits_1_with_reasons(
        mailstack: MailStack, junk_seed: str, no_dmarc_dns: DnsServer, tmp_path: Path) -> None:
    config = write_config(tmp_path / "m.yaml", mailstack)
    code, out, err = await monitor_check(config, no_dmarc_dns, "--seed", "seed",
                                         "--seed", "junk-seed")
    assert code == 1, out + err
    assert "Verdict: FAILED" in out
    assert "  - junk-seed: landed in Junk\n" in out
    assert "  - example.test has no DMARC record (_dmarc.example.test)\n" in out
    assert "2/2 seeds (done)" in err

    code, out, err = await monitor_check(config, no_dmarc_dns, "--seed", "seed", "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["verdict"] == "failed" and report["seeds"][0]["placement"] == "inbox"
    assert report["reasons"] == ["example.test has no DMARC record (_dmarc.example.test)"]


async def test_monitor_check_usage_errors_exit_2(mailstack: MailStack, full_dns: DnsServer,
                                                 tmp_path: Path) -> None:
    config = write_config(tmp_path / "m.yaml", mailstack)
    code, out, err = await monitor_check(config, full_dns, "--seed", "nobody")
    assert code == 2 and "no mailbox named 'nobody' (known: seed, junk-seed)" in err
    code, out, err = await monitor_check(config, full_dns, "--seed", "seed",
                                         "--subject", "hi\r\nBcc: x@example.org")
    assert code == 2 and "--subject" in err and "header injection" in err
    assert out == ""
