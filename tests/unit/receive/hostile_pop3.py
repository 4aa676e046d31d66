"""A scripted POP3 peer on loopback: a real maildrop, or misbehaviour on cue.

By default it serves `maildrop` (header blocks, oldest first) as RFC 1939 says:
STAT, UIDL, TOP n 0, DELE marks, QUIT applies the marks, a session that ends
without QUIT applies nothing. Each command name in `script` overrides that with
bytes (`{line}` is filled in with the command line as received, for servers
that echo it), or one of the misbehaviours: HANG (answer nothing, ever; the
session ends when the client hangs up), DROP (close the connection), STLS
(answer +OK, then upgrade the stream), or a callable that writes what it likes
and returns whether to keep the connection open.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

HANG, DROP, STLS = "hang", "drop", "stls"
Action = bytes | str | Callable[[asyncio.StreamWriter, bytes], Awaitable[bool]]

PROBE = b"Subject: probe\r\nX-Delivery-Monitor-Token: dm-x\r\n"
CAPA = b"+OK capabilities\r\nTOP\r\nUIDL\r\nUSER\r\nSTLS\r\n.\r\n"


@dataclass
class HostilePop3:
    script: dict[str, Action] = field(default_factory=dict)
    greeting: bytes | str = b"+OK POP3 ready\r\n"
    maildrop: list[bytes] = field(default_factory=lambda: [PROBE])
    tls: ssl.SSLContext | None = None
    seen: list[str] = field(default_factory=list)  # command names, in order
    hangups: int = 0  # sessions ended, by either side
    port: int = 0
    _marked: set[int] = field(default_factory=set)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> HostilePop3:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def commit(self) -> None:
        """Apply the DELE marks, as the UPDATE state does (RFC 1939 §6)."""
        self.maildrop = [m for n, m in enumerate(self.maildrop, 1) if n not in self._marked]
        self._marked.clear()

    async def hung_up(self, sessions: int = 1, within: float = 2.0) -> None:
        """Wait until `sessions` sessions have ended: after a HANG, only the client
        closing its end ends one, so this proves its thread let go."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.hangups >= sessions), within)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._marked.clear()  # a new session: marks of one that ended without QUIT are gone
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            async with self._changed:
                self.hangups += 1
                self._changed.notify_all()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.greeting == HANG:
            return await _idle(reader)
        writer.write(self.greeting if isinstance(self.greeting, bytes) else b"")
        while line := await reader.readline():
            line = line.rstrip(b"\r\n")
            words = line.split()
            command = words[0].upper().decode(errors="replace") if words else ""
            self.seen.append(command)
            action = self.script.get(command) or self._answer(command, words[1:])
            if action == HANG:
                return await _idle(reader)
            if action == DROP:
                return
            if action == STLS:
                writer.write(b"+OK begin TLS\r\n")
                await writer.drain()
                assert self.tls is not None
                await writer.start_tls(self.tls)
                continue
            if callable(action):
                if not await action(writer, line):
                    return
                continue
            assert isinstance(action, bytes)
            writer.write(action.replace(b"{line}", line))
            await writer.drain()
            if command == "QUIT":
                return

    def _answer(self, command: str, args: list[bytes]) -> bytes:
        """What a well-behaved server answers, from the maildrop."""
        live = [n for n in range(1, len(self.maildrop) + 1) if n not in self._marked]
        number = int(args[0]) if args and args[0].isdigit() else 0
        if command in ("USER", "PASS"):
            return b"+OK\r\n"
        if command == "CAPA":
            return CAPA
        if command == "STAT":
            size = sum(len(self.maildrop[n - 1]) for n in live)
            return b"+OK %d %d\r\n" % (len(live), size)
        if command == "UIDL":
            return b"+OK\r\n" + b"".join(b"%d uid-%d\r\n" % (n, n) for n in live) + b".\r\n"
        if command in ("TOP", "DELE") and number not in live:
            return b"-ERR no such message\r\n"
        if command == "TOP":
            body = b"".join(b"." + h if h.startswith(b".") else h
                            for h in self.maildrop[number - 1].splitlines(keepends=True))
            return b"+OK\r\n" + body + b"\r\n.\r\n"  # the header block, its blank line, end
        if command == "DELE":
            self._marked.add(number)
            return b"+OK marked\r\n"
        if command == "QUIT":
            self.commit()
            return b"+OK bye\r\n"
        return b"-ERR unknown command\r\n"


async def _idle(reader: asyncio.StreamReader) -> None:
    """Answer nothing; return once the client has closed its end."""
    while await reader.read(65536):
        pass
