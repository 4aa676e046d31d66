"""POP3 backend: implicit TLS (995) or STLS (110, RFC 2595), stdlib poplib in a thread.

POP3 has no folders (RFC 1939): a server that files a message as junk keeps
it out of the POP3 maildrop, so a message found here is reported in folder
"INBOX" with `folder_known=False`, and one filed as junk is never seen — it
ends as `missing`, not `junk`. Prefer IMAP when placement matters.

POP3 cannot search, so messages are read newest first, header block only
(`TOP n 0`), until `max_messages` probe messages (those with the token header)
have been examined: other mail does not count, so it cannot crowd probes out.
A message found to carry no token is remembered by its UIDL (per maildrop, in
memory) and not read again, so a big maildrop costs one UIDL per scan plus
the headers of what is new. Deletions (DELE) are sent last, after
`Trace.commit()` (see `backend.py`), and take effect at QUIT (RFC 1939 §6);
when the session dies before QUIT the server keeps them and the next scan
sweeps them. Once QUIT is sent the server may have applied them, answer or
not, so what the scan found is reported even if QUIT's answer goes wrong.

Only a well-formed "-ERR" is skipped, to TOP (a message another client took)
or UIDL (optional, RFC 1939 §7). Anything else poplib rejects (a garbage status
line, a line over its 2,048-byte limit) leaves the rest of the stream unknown:
read on, it would be taken for the answer about another message, so it fails
the scan.
A multi-line answer is read to at most `MAX_ANSWER_BYTES`, checking
`Trace.checkpoint()` at each line, so one that never ends neither fills memory
nor keeps an abandoned thread reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import poplib
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import SecretStr, model_validator

from monitor.config import TlsMode
from monitor.network import client_context
from monitor.receive.backend import (
    FoundMessage,
    ReceiveOptions,
    Scan,
    ServerMailbox,
    Trace,
    deletion,
    is_stale,
    missing,
    parse_headers,
    token_of,
)
from monitor.receive.errors import ReceiveError
from monitor.receive.result import Placement
from monitor.results import FailureClass

NO_FOLDERS_NOTE = "POP3 has no folders: placement is assumed, junk-filed mail is not visible"
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a UIDL listing of ~200,000 messages


class Pop3Mailbox(ServerMailbox):
    kind: Literal["pop3"] = "pop3"
    password: SecretStr

    @model_validator(mode="before")
    @classmethod
    def _has_what_it_needs(cls, data: Any) -> Any:
        if lacking := missing(data, ("host", "username", "password")):
            raise ValueError(f"kind pop3 needs {', '.join(lacking)}")
        return data


class _Pop3(poplib.POP3):
    """poplib.POP3 with bounded multi-line answers (see the module docstring)."""

    trace: Trace | None = None

    def _getlongresp(self) -> tuple[bytes, list[bytes], int]:
        # poplib's own, plus the byte cap and the checkpoint; the private helpers it
        # calls are not in typeshed.
        resp: bytes = self._getresp()  # type: ignore[attr-defined]
        lines: list[bytes] = []
        octets = 0
        while True:
            if self.trace is not None:
                self.trace.checkpoint()
            line, size = self._getline()  # type: ignore[attr-defined]
            if line == b".":
                return resp, lines, octets
            octets += size
            if octets > MAX_ANSWER_BYTES:
                raise poplib.error_proto(
                    f"answer too long: over {MAX_ANSWER_BYTES:,} bytes without its final '.'")
            lines.append(line[1:] if line.startswith(b"..") else line)  # dot-stuffing


class _Pop3Ssl(_Pop3, poplib.POP3_SSL):
    pass


# A maildrop: host, port, user.
MaildropKey = tuple[str | None, int | None, str | None]


class Pop3Backend:
    def __init__(self) -> None:
        # Per maildrop, the UIDLs of messages known to carry no token: POP3 cannot
        # search, so this spares reading their headers again on every scan.
        self._plain: dict[MaildropKey, frozenset[str]] = {}

    async def scan(self, mailbox: Pop3Mailbox, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        find = frozenset(tokens)
        return await asyncio.to_thread(_scan, mailbox, find, options, trace, self._plain,
                                       deletion(find, delete))


def _connect(mailbox: Pop3Mailbox, options: ReceiveOptions, trace: Trace) -> poplib.POP3:
    context = client_context(mailbox.tls_verify, mailbox.ca_file)
    implicit = mailbox.tls is TlsMode.IMPLICIT
    port = mailbox.port or (995 if implicit else 110)
    trace.step = "connect"
    conn: _Pop3
    if implicit:
        conn = _Pop3Ssl(mailbox.host, port, timeout=options.op_timeout, context=context)
    else:
        conn = _Pop3(mailbox.host, port, timeout=options.op_timeout)
    conn.trace = trace
    try:
        if mailbox.tls is TlsMode.STARTTLS:
            trace.step = "starttls"
            # Never send the password in clear because the upgrade is missing.
            if "STLS" not in _capabilities(conn):
                raise ReceiveError(FailureClass.TLS, "server does not offer STLS")
            try:
                conn.stls(context)
            except poplib.error_proto as exc:
                if not _refused(exc):
                    raise
                raise ReceiveError(FailureClass.TLS, f"STLS refused: {_reply(exc)}") from None
        trace.step = "login"
        conn.user(mailbox.username)
        password = mailbox.password.get_secret_value()
        try:
            conn.pass_(password)
        except poplib.error_proto as exc:  # some servers echo the command line back
            raise poplib.error_proto(_reply(exc).replace(password, "***")) from None
    except BaseException:
        _close(conn)
        raise
    return conn


def _scan(mailbox: Pop3Mailbox, tokens: frozenset[str], options: ReceiveOptions,
          trace: Trace, plain: dict[MaildropKey, frozenset[str]] | None = None,
          delete: frozenset[str] | None = None) -> Scan:
    plain = {} if plain is None else plain
    delete = tokens if delete is None else delete
    maildrop: MaildropKey = (mailbox.host, mailbox.port, mailbox.username)
    conn = _connect(mailbox, options, trace)
    scan = Scan(folders=("INBOX",), notes=[NO_FOLDERS_NOTE])
    try:
        trace.step = "stat"
        count, _ = conn.stat()
        trace.step = "uidl"
        unique_ids = _unique_ids(conn)
        known = plain.get(maildrop, frozenset())
        learned: set[str] = set()
        now = datetime.now(UTC)
        remove: list[int] = []
        found: list[FoundMessage] = []
        probes = 0
        try:
            for number in range(count, 0, -1):  # newest first
                if probes >= options.max_messages:
                    break
                uid = unique_ids.get(number)
                if uid is not None and uid in known:
                    continue
                trace.checkpoint()
                trace.step = "fetch"
                try:
                    _, lines, _ = conn.top(number, 0)
                except poplib.error_proto as exc:
                    if not _refused(exc):
                        raise  # the connection is gone, or its stream unreadable
                    continue  # "-ERR Message 3 expunged": another client took it meanwhile
                headers = parse_headers(b"\r\n".join(lines))
                token = token_of(headers)
                if token is None:  # not a probe: does not count, and is not read again
                    if uid is not None:
                        learned.add(uid)
                    continue
                probes += 1
                if token in tokens or token in delete:
                    if token in delete:
                        remove.append(number)
                    if token in tokens and token not in {m.token for m in found}:
                        found.append(FoundMessage(token=token, folder="INBOX",
                                                  placement=Placement.INBOX, headers=headers,
                                                  seen_at=now, folder_known=False))
                elif is_stale(headers, None, options, now):
                    remove.append(number)
                    scan.swept += 1
        finally:  # what was learned holds even if this scan is cut short
            if unique_ids:
                plain[maildrop] = (known & frozenset(unique_ids.values())) | learned
        # Deleting is the last step, and only once the poller is sure to use the result.
        trace.step = "delete"
        trace.commit()
        for number in remove:
            conn.dele(number)
        trace.step = "quit"
        applied = _quit(conn, scan)  # commits the deletions
    finally:
        _close(conn)
    scan.found = {m.token: dataclasses.replace(m, deleted=applied and m.token in delete)
                  for m in found}
    return scan


def _quit(conn: poplib.POP3, scan: Scan) -> bool:
    """QUIT; True when the server confirmed it applied the deletions. Once QUIT is
    sent it may have (RFC 1939 §6) whatever comes back, so a failure here does not
    fail the scan: its findings are reported, with a note."""
    try:
        conn.quit()
    except (poplib.error_proto, OSError) as exc:
        what = (_reply(exc)[:200] if isinstance(exc, poplib.error_proto)
                else f"no answer ({type(exc).__name__})")
        scan.notes.append(f"QUIT: {what}; the deletions may not have been applied, "
                          f"probe messages left behind are swept later")
        return False
    return True


def _capabilities(conn: poplib.POP3) -> dict[str, list[str]]:
    """CAPA (RFC 2449), empty when the server refuses it: it then offers no STLS."""
    try:
        return conn.capa()
    except poplib.error_proto as exc:
        # poplib turns every failure into "-ERR CAPA not supported"; the one it
        # caught says whether the server answered -ERR or the connection is gone.
        cause = exc.__context__
        if isinstance(cause, poplib.error_proto) and not _refused(cause):
            raise cause from None
        return {}


def _refused(exc: poplib.error_proto) -> bool:
    """The server answered "-ERR": poplib passes its reply as bytes, while its own
    markers ("-ERR EOF" for a closed connection, "line too long") are str."""
    return bool(exc.args) and isinstance(exc.args[0], bytes) and exc.args[0].startswith(b"-ERR")


def _reply(exc: poplib.error_proto) -> str:
    arg = exc.args[0] if exc.args else ""
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def _unique_ids(conn: poplib.POP3) -> dict[int, str]:
    """Message number -> UIDL; empty when the server has no UIDL (optional, RFC 1939 §7)."""
    try:
        _, lines, _ = conn.uidl()
    except poplib.error_proto as exc:
        if not _refused(exc):
            raise
        return {}
    ids: dict[int, str] = {}
    for line in lines:
        number, _, uid = line.decode("ascii", "replace").partition(" ")
        if number.isdigit() and uid.strip():
            ids[int(number)] = uid.strip()
    return ids


def _close(conn: poplib.POP3) -> None:
    with contextlib.suppress(Exception):
        conn.close()
