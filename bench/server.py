"""The benchmark's SMTP server: the project's sandbox, in a process of its own.

Run as `python -m bench.server DIR`: starts `monitor.sandbox.Sandbox` (aiosmtpd with
STARTTLS + AUTH) on a free loopback port, prints one JSON line describing it, and
serves until its stdin closes. `ServerProcess` is the client side of that contract.

A separate process matters: with the server in the client's event loop, every
measurement would also time aiosmtpd, and with it sharing our one core the ratios
would mostly compare server CPU. The machine has two cores, one for each side.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from monitor.sandbox import Sandbox


@dataclass(frozen=True)
class ServerInfo:
    """Where the benchmark server listens and how to log in to it."""

    host: str
    port: int
    username: str
    password: str
    ca_file: Path


class ServerProcess:
    """Starts `python -m bench.server` and stops it on exit (by closing its stdin)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerInfo:
        # The server's stderr goes to a file: aiosmtpd warns about clients that
        # drop the connection (check_smtp does), which would garble the table.
        log = (self.directory / "server.log").open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.server", str(self.directory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        log.close()
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=10)
            raise RuntimeError(f"benchmark server did not start; see {self.directory}/server.log")
        fields = json.loads(line)
        return ServerInfo(host=fields["host"], port=fields["port"],
                          username=fields["username"], password=fields["password"],
                          ca_file=Path(fields["ca_file"]))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        process = self._process
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def _serve(directory: Path) -> None:
    sandbox = await Sandbox(directory).start()
    assert sandbox.handler is not None and sandbox.certificates is not None
    # No Maildir: writing every benchmark message to disk would add file-system
    # noise to the server's reply time for DATA, which is not what we measure.
    sandbox.handler.maildir = None
    print(json.dumps({
        "host": sandbox.host, "port": sandbox.port, "username": sandbox.username,
        "password": sandbox.password, "ca_file": str(sandbox.certificates.ca_file),
    }), flush=True)
    try:
        # Serve until the parent closes our stdin (or dies, which closes it too).
        await asyncio.to_thread(sys.stdin.buffer.read)
    finally:
        await sandbox.stop()


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: python -m bench.server DIRECTORY", file=sys.stderr)
        return 2
    asyncio.run(_serve(Path(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
