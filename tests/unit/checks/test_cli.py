"""`monitor check`: argument errors in-process, a whole check as a subprocess."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

from monitor.checks.model import CheckReport, Progress, Stage
from monitor.cli import main
from monitor.cli.check import ProgressPrinter
from monitor.config.models import parse_nameserver
from monitor.sandbox import Sandbox
from tests.unit.checks.conftest import SENDER
from tests.unit.checks.dnsserver import DnsServer, domain_records


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)), ("[::1]:5353", ("::1", 5353)), ("[::1]", ("::1", 53)),
])
def test_parse_nameserver(value: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(value) == expected


def write_config(path: Path, box: Sandbox | None = None, dns_server: str | None = None
                 ) -> Path:
    host, port, ca = ("127.0.0.1", 1, "") if box is None else (
        box.host, box.port, f"ca_file: {box.certificates.ca_file if box.certificates else ''}")
    settings = f'settings: {{dns_server: "{dns_server}"}}' if dns_server else ""
    path.write_text(f"""{settings}
providers:
  - name: sandbox
    host: {host}
    port: {port}
    {ca}
    helo: check.localhost
    auth: {{username: demo, password: "${{SANDBOX_PASSWORD}}"}}
mailboxes:
  - {{name: seed-1, address: seed-1@seeds.test, kind: maildir,
      path: {box.maildir if box else '/nonexistent'}, deliver_within: 10s}}
""")
    return path


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "news@check.test\r\nBcc: x@y.example"], "--from: Value error, from must not "
     "contain CR, LF, NUL or other control characters (header injection)"),
    (["--from", "not-an-address"], "--from: Value error, from 'not-an-address' is not an "
     "address of the form local@domain"),
    (["--subject", "a\nb"], "--subject: Value error, subject must not contain CR, LF"),
    (["--seed", "nobody"], "no mailbox named 'nobody' (known: seed-1)"),
    (["--provider", "other"], "no provider named 'other' (known: sandbox)"),
    (["--dns-server", "dns.example:53"], "--dns-server 'dns.example:53': expected an IP "
     "address, optionally with :port"),
    (["--dns-server", "127.0.0.1:99999"], "--dns-server '127.0.0.1:99999': the port must be "
     "1-65535"),
    (["--text-file", "/nonexistent/body.txt"], "cannot read --text-file /nonexistent/body.txt"),
])
def test_usage_and_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch, args: list[str],
                                        message: str) -> None:
    monkeypatch.setenv("SANDBOX_PASSWORD", "x")
    base = {"--provider": "sandbox", "--from": SENDER, "--seed": "seed-1"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["check", "--config", str(write_config(tmp_path / "c.yaml"))]
    for flag, value in base.items():
        argv += [flag, value]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_a_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    assert main(["check", "--config", str(tmp_path / "none.yaml"), "--provider", "p",
                 "--from", SENDER, "--seed", "s"]) == 2
    assert "none.yaml" in capsys.readouterr().err


async def test_progress_redraws_in_place_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    printer = ProgressPrinter(stream)
    for done, stage in ((0, Stage.SENDING), (1, Stage.WAITING), (1, Stage.WAITING),
                        (2, Stage.DONE)):
        await printer(CheckReport.model_construct(
            progress=Progress(seeds_total=2, seeds_done=done, stage=stage)))
    printer.close()
    assert stream.getvalue() == (
        "\r[--------------------] 0/2 seeds (sending)"
        "\r[##########----------] 1/2 seeds (waiting)"
        "\r[####################] 2/2 seeds (done)\n")


async def check_subprocess(config: Path, sandbox: Sandbox, *flags: str, as_json: bool = True
                           ) -> tuple[int | None, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", "check", "--config", str(config),
        "--provider", "sandbox", "--from", SENDER, "--seed", "seed-1", *flags,
        *(["--json"] if as_json else []),
        env={"SANDBOX_PASSWORD": sandbox.password},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out, err


async def test_a_check_as_a_subprocess(tmp_path: Path, sandbox: Sandbox) -> None:
    # settings.dns_server names a dead resolver: --dns-server takes precedence over it.
    config = write_config(tmp_path / "c.yaml", sandbox, dns_server="127.0.0.1:9")
    async with DnsServer(domain_records("check.test")) as dns:
        code, out, err = await check_subprocess(config, sandbox,
                                                "--dns-server", f"127.0.0.1:{dns.port}")
    assert code == 0, err.decode()
    report = json.loads(out)
    assert (report["status"], report["verdict"], report["sender"]) == ("done", "passed", SENDER)
    assert report["seeds"][0]["placement"] == "inbox"
    assert "1/1 seeds (done)" in err.decode()
    assert sandbox.password not in out.decode()


async def test_posture_findings_are_printed_with_their_explanations_and_fail_the_check(
        tmp_path: Path, sandbox: Sandbox) -> None:
    from tests.unit.posture.zones import spf_tree

    records = domain_records("check.test")
    records.update(spf_tree("check.test", 11))
    config = write_config(tmp_path / "c.yaml", sandbox)
    async with DnsServer(records) as dns:
        code, out, err = await check_subprocess(config, sandbox, "--dns-server",
                                                f"127.0.0.1:{dns.port}", as_json=False)
    text = out.decode()
    assert code == 1, err.decode()
    assert "\nPosture of check.test" in text
    assert "\n  Errors\n    spf.lookup_limit\n" in text
    assert "needs 11 DNS lookups, over the limit of 10 (RFC 7208 §4.6.4)" in text
    assert "\n  Warnings\n" in text and "mta_sts.missing" in text
    assert "Verdict: FAILED" in text and "  - spf.lookup_limit: SPF for check.test" in text


async def test_without_dns_server_flag_the_config_setting_is_used(
        tmp_path: Path, sandbox: Sandbox) -> None:
    async with DnsServer(domain_records("check.test")) as dns:
        config = write_config(tmp_path / "c.yaml", sandbox, dns_server=f"127.0.0.1:{dns.port}")
        code, out, err = await check_subprocess(config, sandbox)
        asked = list(dns.queries)
    assert code == 0, err.decode()
    assert json.loads(out)["verdict"] == "passed"  # check.test exists only on that server
    assert asked  # and it was asked
