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
    """Starts `python -m bench.server` and stops it on exit (by closing its stdin).

    `stall=True`: the server never answers MAIL FROM (after STARTTLS and AUTH went
    through) and prints `stalled N` when the N-th session reaches it; `wait_stalled`
    reads those lines.
    """

    def __init__(self, directory: Path, *, stall: bool = False) -> None:
        self.directory = directory
        self.stall = stall
        self.stalled = 0
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerInfo:
        # The server's stderr goes to a file: aiosmtpd warns about clients that
        # drop the connection (check_smtp does), which would garble the table.
        log = (self.directory / "server.log").open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.server", str(self.directory),
             *(["--stall"] if self.stall else [])],
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

    @property
    def pid(self) -> int:
        assert self._process is not None, "enter the context first"
        return self._process.pid

    def wait_stalled(self, count: int) -> None:
        """Block until `count` sessions in all have stalled at MAIL (a stall server only)."""
        assert self.stall and self._process is not None and self._process.stdout is not None
        while self.stalled < count:
            line = self._process.stdout.readline()
            if not line:
                raise RuntimeError(f"stall server exited; see {self.directory}/server.log")
            self.stalled = int(line.split()[1])

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


async def _serve(directory: Path, *, stall: bool) -> None:
    sandbox = await Sandbox(directory).start()
    assert sandbox.handler is not None and sandbox.certificates is not None
    # No Maildir: writing every benchmark message to disk would add file-system
    # noise to the server's reply time for DATA, which is not what we measure.
    sandbox.handler.maildir = None
    if stall:
        stalled = 0
        forever = asyncio.get_running_loop().create_future()

        async def handle_mail(*_: object) -> str:
            nonlocal stalled
            stalled += 1
            print(f"stalled {stalled}", flush=True)
            await asyncio.shield(forever)  # aiosmtpd cancels this when the client leaves
            return "250 never sent"

        # aiosmtpd looks its hooks up per connection, so the instance attribute counts.
        sandbox.handler.handle_MAIL = handle_mail  # type: ignore[method-assign]
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
    if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["--stall"]):
        print("usage: python -m bench.server DIRECTORY [--stall]", file=sys.stderr)
        return 2
    asyncio.run(_serve(Path(sys.argv[1]), stall=sys.argv[2:] == ["--stall"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
