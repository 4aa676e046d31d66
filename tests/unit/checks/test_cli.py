"""`monitor check`: argument errors in-process, a whole check as a subprocess."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

import pytest

from monitor.checks.cli import ProgressPrinter, parse_nameserver
from monitor.checks.model import CheckReport, Progress, Stage
from monitor.cli import main
from monitor.sandbox import Sandbox
from tests.unit.checks.conftest import SENDER
from tests.unit.checks.dnsserver import DnsServer, domain_records


@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)), ("[::1]:5353", ("::1", 5353)), ("[::1]", ("::1", 53)),
])
def test_parse_nameserver(value: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(value) == expected


def write_config(path: Path, box: Sandbox | None = None) -> Path:
    host, port, ca = ("127.0.0.1", 1, "") if box is None else (
        box.host, box.port, f"ca_file: {box.certificates.ca_file if box.certificates else ''}")
    path.write_text(f"""
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
    (["--dns-server", "dns.example:53"], "--dns-server 'dns.example:53': not an IP address"),
    (["--dns-server", "127.0.0.1:99999"], "bad port"),
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


async def test_a_check_as_a_subprocess(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path / "c.yaml", sandbox)
    async with DnsServer(domain_records("check.test")) as dns:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor.cli", "check", "--config", str(config),
            "--provider", "sandbox", "--from", SENDER, "--seed", "seed-1",
            "--dns-server", f"127.0.0.1:{dns.port}", "--json",
            env={"SANDBOX_PASSWORD": sandbox.password},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert (report["status"], report["verdict"], report["sender"]) == ("done", "passed", SENDER)
    assert report["seeds"][0]["placement"] == "inbox"
    assert "1/1 seeds (done)" in err.decode()
    assert sandbox.password not in out.decode()
