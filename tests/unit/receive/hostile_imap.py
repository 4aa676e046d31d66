"""A scripted IMAP peer on loopback: answers per command, or misbehaves on cue.

Each command name maps to bytes (with `{tag}` filled in), or to one of the
misbehaviours: HANG (read nothing more, answer nothing), DROP (close the
connection), STARTTLS (answer OK, then upgrade the stream), a `Sasl` exchange
(AUTHENTICATE: continuation, the client's response, optionally an error
challenge, then the reply), or a callable that writes what it likes and returns
whether to keep the connection open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

HANG, DROP, STARTTLS = "hang", "drop", "starttls"


@dataclass(frozen=True)
class Sasl:
    """AUTHENTICATE <mechanism>, answered as a server does without SASL-IR (RFC 9051
    §6.2.2): an empty continuation, the client's base64 response (decoded into
    `HostileImap.sasl`), then `reply`. With `error_challenge` (base64, as Gmail and
    dovecot send before refusing an XOAUTH2 token), that challenge comes first and
    the client's answer to it is recorded too."""

    reply: bytes = b"{tag} OK [CAPABILITY IMAP4rev1 UIDPLUS] authenticated\r\n"
    error_challenge: bytes | None = None


Action = bytes | str | Sasl | Callable[[asyncio.StreamWriter, bytes], Awaitable[bool]]

HEADER = b"X-Delivery-Monitor-Token: dm-x\r\n\r\n"
DEFAULTS: dict[str, Action] = {
    "CAPABILITY": b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN AUTH=XOAUTH2\r\n{tag} OK done\r\n",
    "LOGIN": b"{tag} OK [CAPABILITY IMAP4rev1 UIDPLUS] logged in\r\n",
    "AUTHENTICATE": Sasl(),
    "LIST": b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
            b'* LIST (\\HasNoChildren \\Junk) "/" Spam\r\n{tag} OK done\r\n',
    "SELECT": b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n{tag} OK [READ-WRITE] selected\r\n",
    "SEARCH": b"* SEARCH 1\r\n{tag} OK done\r\n",
    "FETCH": b'* 1 FETCH (UID 1 INTERNALDATE "30-Nov-2026 12:00:00 +0000" BODY[HEADER] '
             b"{%d}\r\n%s)\r\n{tag} OK done\r\n" % (len(HEADER), HEADER),
    "STORE": b"{tag} OK done\r\n",
    "EXPUNGE": b"{tag} OK done\r\n",
    "LOGOUT": b"* BYE bye\r\n{tag} OK done\r\n",
}


@dataclass
class HostileImap:
    script: dict[str, Action] = field(default_factory=dict)
    greeting: bytes | str = b"* OK IMAP4rev1 ready\r\n"
    tls: ssl.SSLContext | None = None
    seen: list[str] = field(default_factory=list)  # command names, in order
    # Per AUTHENTICATE: the mechanism named and every response, decoded ("*" = cancelled)
    sasl: list[tuple[str, list[bytes]]] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> HostileImap:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.greeting == HANG:
            await asyncio.sleep(3600)
        writer.write(self.greeting if isinstance(self.greeting, bytes) else b"")
        while line := await reader.readline():
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            words = rest.split()
            name = words[0].upper() if words else b""
            if name == b"UID" and len(words) > 1:
                name = words[1].upper()
            command = name.decode(errors="replace")
            self.seen.append(command)
            action = self.script.get(command, DEFAULTS.get(command, b"{tag} BAD unknown\r\n"))
            if action == HANG:
                await asyncio.sleep(3600)
            if action == DROP:
                return
            if action == STARTTLS:
                writer.write(tag + b" OK begin TLS\r\n")
                await writer.drain()
                assert self.tls is not None
                await writer.start_tls(self.tls)
                continue
            if isinstance(action, Sasl):
                mechanism = words[1].decode(errors="replace") if len(words) > 1 else ""
                if not await self._authenticate(reader, writer, tag, mechanism, action):
                    return
                continue
            if callable(action):
                if not await action(writer, tag):
                    return
                continue
            assert isinstance(action, bytes)
            writer.write(action.replace(b"{tag}", tag))
            await writer.drain()

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            tag: bytes, mechanism: str, sasl: Sasl) -> bool:
        responses: list[bytes] = []
        self.sasl.append((mechanism, responses))
        challenges = [b""] + ([sasl.error_challenge] if sasl.error_challenge is not None else [])
        for challenge in challenges:
            writer.write(b"+ " + challenge + b"\r\n")
            await writer.drain()
            line = await reader.readline()
            if not line:
                return False
            answer = line.rstrip(b"\r\n")
            try:
                responses.append(answer if answer == b"*" else base64.b64decode(answer,
                                                                                validate=True))
            except binascii.Error:
                writer.write(tag + b" BAD not base64\r\n")
                return True
            if answer == b"*":  # RFC 9051 §6.2.2: the client cancelled
                writer.write(tag + b" BAD cancelled\r\n")
                return True
        writer.write(sasl.reply.replace(b"{tag}", tag))
        await writer.drain()
        return True
