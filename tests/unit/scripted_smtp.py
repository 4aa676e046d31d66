"""A scripted SMTP peer for odd server behaviour: wrong codes, silence, garbage.

aiosmtpd (the sandbox) is a well-behaved server; this one does exactly what a
test tells it, byte for byte, per command verb. Behaviours:
a reply string, `HANG` (never answer), `CLOSE` (drop the connection),
`Drip(text, every)` (one byte at a time), or raw `bytes`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass, field
from typing import Any


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


HANG = _Marker("HANG")
CLOSE = _Marker("CLOSE")


@dataclass(frozen=True)
class Drip:
    text: str
    every: float = 1.0


Behaviour = str | bytes | Drip | _Marker

DEFAULT_EHLO = ("250-scripted.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 1000000\r\n"
                "250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN")


@dataclass
class ScriptedServer:
    replies: dict[str, Behaviour] = field(default_factory=dict)
    banner: Behaviour = "220 scripted.test ESMTP ready"
    starttls_context: ssl.SSLContext | None = None  # offer STARTTLS with this
    implicit_context: ssl.SSLContext | None = None  # TLS from the first byte (465)
    commands: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0,
                                                  ssl=self.implicit_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def reply_for(self, verb: str) -> Behaviour:
        if verb in self.replies:
            return self.replies[verb]
        ehlo = DEFAULT_EHLO
        if self.starttls_context is not None:
            ehlo = ehlo.replace("250-PIPELINING", "250-STARTTLS\r\n250-PIPELINING")
        defaults: dict[str, str] = {
            "EHLO": ehlo, "HELO": "250 scripted.test", "NOOP": "250 2.0.0 OK",
            "STARTTLS": "220 2.0.0 Ready to start TLS", "AUTH": "235 2.7.0 Authenticated",
            "MAIL": "250 2.1.0 Ok", "RCPT": "250 2.1.5 Ok", "DATA": "354 End with <CRLF>.<CRLF>",
            "MESSAGE": "250 2.0.0 Ok: queued as ABC123", "RSET": "250 2.0.0 Ok",
            "QUIT": "221 2.0.0 Bye", "VRFY": "252 2.0.0 Cannot VRFY user",
            "EXPN": "502 5.5.1 EXPN not available",
        }
        return defaults.get(verb, "500 5.5.2 Error: command not recognized")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if not await self._send(writer, self.banner):
                return
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").strip()
                verb = text.split(" ", 1)[0].upper()
                self.commands.append(text)
                if verb == "AUTH" and text.upper().startswith("AUTH LOGIN"):
                    if "AUTH" in self.replies:  # a scripted refusal ends the exchange
                        if not await self._send(writer, self.replies["AUTH"]):
                            return
                        continue
                    await self._send(writer, "334 " + base64.b64encode(b"Password:").decode())
                    await reader.readline()
                if verb == "AUTH" and text.upper() == "AUTH CRAM-MD5":
                    await self._send(writer, "334 " + base64.b64encode(b"<1.2@test>").decode())
                    self.commands.append((await reader.readline()).decode().strip())
                if not await self._send(writer, self.reply_for(verb)):
                    return
                if verb == "STARTTLS" and self.starttls_context is not None and \
                        str(self.reply_for(verb)).startswith("220"):
                    await writer.start_tls(self.starttls_context)
                elif verb == "DATA" and str(self.reply_for(verb)).startswith("354"):
                    while await reader.readline() not in (b".\r\n", b""):
                        pass
                    if not await self._send(writer, self.reply_for("MESSAGE")):
                        return
                elif verb == "QUIT":
                    break
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, behaviour: Behaviour) -> bool:
        """Send a reply; False when the behaviour ends the connection."""
        if behaviour is HANG:
            await asyncio.sleep(3600)
            return False
        if behaviour is CLOSE:
            writer.close()
            return False
        if isinstance(behaviour, Drip):
            for byte in (behaviour.text + "\r\n").encode():
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(behaviour.every)
            return True
        data = behaviour if isinstance(behaviour, bytes) else (str(behaviour) + "\r\n").encode()
        writer.write(data)
        await writer.drain()
        return True
