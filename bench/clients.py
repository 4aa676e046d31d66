"""The contenders: our probe, raw aiosmtplib by hand, and the external tools' command lines.

The raw clients do the same SMTP work as the probe, command for command: the probe
always sends NOOP after EHLO, so the raw clients do too, and the raw message has
the same size as the probe's. What the raw clients skip is everything that makes a
probe a probe: per-step timing and records, reply classification, reading the
certificate, the result model.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path
from shutil import which

import aiosmtplib
import yaml

from bench.server import ServerInfo
from bench.timing import AsyncOp
from monitor.config import Config, ProviderConfig
from monitor.probe import run_probe

HELO = "bench.localhost"
SENDER = "probe@bench.localhost"
RECIPIENT = "seed@bench.localhost"
# Generous: a timeout firing would be a broken benchmark, not a data point.
TIMEOUT_S = 10.0


def provider_fields(server: ServerInfo, name: str, mode: str) -> dict[str, object]:
    """One provider of the given mode against the benchmark server (config-file shape)."""
    fields: dict[str, object] = {
        "name": name, "host": server.host, "port": server.port, "mode": mode,
        # Connect mode stays in plaintext, like the raw client it is compared with.
        "tls": "none" if mode == "connect" else "starttls",
        "ca_file": str(server.ca_file), "helo": HELO, "timeout": f"{TIMEOUT_S:g}s",
    }
    if mode in ("auth", "send"):
        fields["auth"] = {"username": server.username, "password": server.password}
    if mode == "send":
        fields["from"] = SENDER
        fields["to"] = [RECIPIENT]
    return fields


def make_config(server: ServerInfo) -> Config:
    """Providers `connect`, `tls` and `send`, named after their mode."""
    providers = tuple(ProviderConfig.model_validate(provider_fields(server, mode, mode))
                      for mode in ("connect", "tls", "send"))
    return Config(providers=providers)


def write_config(server: ServerInfo, path: Path) -> Path:
    """The same providers as a YAML file, for the `monitor probe` command line."""
    providers = [provider_fields(server, mode, mode) for mode in ("connect", "tls", "send")]
    path.write_text(yaml.safe_dump({"settings": {"helo": HELO}, "providers": providers}),
                    encoding="utf-8")
    return path


def ours(config: Config, name: str) -> AsyncOp:
    """`run_probe` for one provider; a failed probe aborts the benchmark."""
    provider = config.provider(name)
    assert provider is not None, name

    async def op() -> None:
        result = await run_probe(provider, config)
        if not result.ok:
            raise RuntimeError(f"probe {name} failed at {result.failed_step}: "
                               f"{result.model_dump_json(include={'steps'})}")
    return op


def raw_connect(server: ServerInfo, local_hostname: str | None = HELO) -> AsyncOp:
    """Connect, EHLO, NOOP, QUIT by hand; `local_hostname=None` leaves it to aiosmtplib."""
    async def op() -> None:
        smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port,
                               local_hostname=local_hostname, start_tls=False,
                               timeout=TIMEOUT_S)
        await smtp.connect()
        await smtp.ehlo()
        await smtp.noop()
        await smtp.quit()
    return op


def raw_send(server: ServerInfo, message_size: int) -> AsyncOp:
    """The send probe's session by hand, verifying the server against the same CA."""
    # Built once, like the probe's cached context: building one per session would
    # time OpenSSL's CA loading, not SMTP.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(server.ca_file))
    message = _message(message_size)

    async def op() -> None:
        smtp = aiosmtplib.SMTP(hostname=server.host, port=server.port, local_hostname=HELO,
                               start_tls=False, tls_context=context, timeout=TIMEOUT_S)
        await smtp.connect()
        await smtp.ehlo()
        await smtp.noop()
        await smtp.starttls(tls_context=context, server_hostname=server.host)
        await smtp.ehlo()
        await smtp.login(server.username, server.password)  # picks PLAIN here, as we do
        await smtp.sendmail(SENDER, [RECIPIENT], message)
        await smtp.quit()
    return op


def _message(size: int) -> bytes:
    head = (f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: benchmark\r\n"
            "Auto-Submitted: auto-generated\r\n\r\n").encode()
    line = b"x" * 70 + b"\r\n"
    body = (line * (size // len(line) + 1))[: max(size - len(head) - 2, 0)]
    return head + body + b"\r\n"


def swaks(server: ServerInfo) -> list[str]:
    """swaks' full send: STARTTLS (certificate verified against our CA), AUTH PLAIN, one message."""
    return ["swaks", "--server", f"{server.host}:{server.port}", "--helo", HELO,
            "--tls", "--tls-verify", "--tls-ca-path", str(server.ca_file),
            "--auth", "PLAIN", "--auth-user", server.username,
            "--auth-password", server.password, "--from", SENDER, "--to", RECIPIENT]


CHECK_SMTP = "/usr/lib/nagios/plugins/check_smtp"
# What the peers print when they skipped the work they were asked for (swaks without
# Net::SSLeay gives up before STARTTLS).
_PEER_GAVE_UP = ("TLS not available", "requires Net::SSLeay")


def peer_problem(argv: list[str]) -> str | None:
    """Run a peer once: None when it did its whole job, else what went wrong."""
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                          timeout=60)
    output = (done.stdout + done.stderr).decode(errors="replace")
    gave_up = next((line for line in output.splitlines()
                    if any(marker in line for marker in _PEER_GAVE_UP)), None)
    if gave_up is not None:
        return gave_up.strip(" *")
    if done.returncode != 0:
        return f"exit {done.returncode}: {output.strip()[-300:]}"
    return None


def check_smtp(server: ServerInfo, *, starttls: bool) -> list[str]:
    return [CHECK_SMTP, "-H", server.host, "-p", str(server.port), "-F", HELO,
            *(["-S"] if starttls else [])]


def monitor_cli(config_file: Path, name: str) -> list[str]:
    """`monitor probe NAME`: a fresh interpreter per run, as a cron job would pay."""
    beside = Path(sys.executable).parent / "monitor"
    executable = str(beside) if beside.exists() else which("monitor") or "monitor"
    return [executable, "probe", name, "--config", str(config_file)]
