"""`monitor demo`: the whole loop on loopback, with nothing to install or configure.

For now: start the sandbox SMTP server (STARTTLS with a generated certificate,
AUTH, a Maildir), probe it, inject a failure (451, then 550 at RCPT) and show
the recovery — printing each step table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from monitor.config import Config, ProviderConfig
from monitor.probe import run_probe
from monitor.render import render_result
from monitor.sandbox import Sandbox

_SCENES = (
    ("healthy sandbox", None),
    ("injected: sandbox answers 451 at RCPT", "451 4.3.0 Sandbox: temporary failure (demo)"),
    ("injected: sandbox answers 550 at RCPT", "550 5.1.1 Sandbox: no such user (demo)"),
    ("fault removed: recovery", None),
)


def demo_config(sandbox: Sandbox) -> Config:
    assert sandbox.certificates is not None
    provider = ProviderConfig.model_validate({
        "name": "sandbox",
        "host": sandbox.host,
        "port": sandbox.port,
        "tls": "starttls",
        "mode": "send",
        "ca_file": sandbox.certificates.ca_file,
        "helo": "demo.localhost",
        "auth": {"username": sandbox.username, "password": sandbox.password},
        "from": "probe@demo.localhost",
        "to": ["seed@demo.localhost"],
        "timeout": "10s",
    })
    return Config(providers=(provider,))


async def run_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as tmp:
        sandbox = await Sandbox(Path(tmp)).start()
        try:
            config = demo_config(sandbox)
            provider = config.providers[0]
            print(f"Sandbox SMTP server on {sandbox.host}:{sandbox.port} "
                  f"(STARTTLS, AUTH as {sandbox.username!r})\n")
            outcomes = []
            for title, fault in _SCENES:
                sandbox.faults.pop("rcpt", None)
                if fault:
                    sandbox.faults["rcpt"] = fault
                result = await run_probe(provider, config)
                outcomes.append(result.ok)
                print(f"=== {title} ===")
                print(render_result(result))
                print()
            delivered = len(list(sandbox.maildir.glob("new/*")))
            print(f"Messages in the sandbox Maildir: {delivered}")
        finally:
            await sandbox.stop()
    expected = [fault is None for _, fault in _SCENES]
    return 0 if outcomes == expected else 1
