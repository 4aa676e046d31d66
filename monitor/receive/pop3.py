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
sweeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import poplib
from collections.abc import Collection
from datetime import UTC, datetime

from monitor.config import MailboxConfig, TlsMode
from monitor.probe.result import FailureClass
from monitor.probe.tls import client_context
from monitor.receive.backend import (
    FoundMessage,
    ReceiveOptions,
    Scan,
    Trace,
    deletion,
    is_stale,
    parse_headers,
    token_of,
)
from monitor.receive.errors import ReceiveError
from monitor.receive.result import Placement

NO_FOLDERS_NOTE = "POP3 has no folders: placement is assumed, junk-filed mail is not visible"


# A maildrop: host, port, user.
MaildropKey = tuple[str | None, int | None, str | None]


class Pop3Backend:
    def __init__(self) -> None:
        # Per maildrop, the UIDLs of messages known to carry no token: POP3 cannot
        # search, so this spares reading their headers again on every scan.
        self._plain: dict[MaildropKey, frozenset[str]] = {}

    async def scan(self, mailbox: MailboxConfig, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        find = frozenset(tokens)
        return await asyncio.to_thread(_scan, mailbox, find, options, trace, self._plain,
                                       deletion(find, delete))


def _connect(mailbox: MailboxConfig, options: ReceiveOptions, trace: Trace) -> poplib.POP3:
    assert mailbox.host is not None and mailbox.username and mailbox.password
    context = client_context(mailbox.tls_verify, mailbox.ca_file)
    implicit = mailbox.tls is TlsMode.IMPLICIT
    port = mailbox.port or (995 if implicit else 110)
    trace.step = "connect"
    conn: poplib.POP3
    if implicit:
        conn = poplib.POP3_SSL(mailbox.host, port, timeout=options.op_timeout, context=context)
    else:
        conn = poplib.POP3(mailbox.host, port, timeout=options.op_timeout)
    try:
        if mailbox.tls is TlsMode.STARTTLS:
            trace.step = "starttls"
            if "STLS" not in conn.capa():
                raise ReceiveError(FailureClass.TLS, "server does not offer STLS")
            conn.stls(context)
        trace.step = "login"
        conn.user(mailbox.username)
        conn.pass_(mailbox.password.get_secret_value())
    except BaseException:
        _close(conn)
        raise
    return conn


def _scan(mailbox: MailboxConfig, tokens: frozenset[str], options: ReceiveOptions,
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
                    if exc.args and exc.args[0] == "-ERR EOF":
                        raise  # the connection is gone: fail the scan
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
        # Deleting is the last step, and only once the checker is sure to use the result.
        trace.step = "delete"
        trace.commit()
        for number in remove:
            conn.dele(number)
        trace.step = "quit"
        conn.quit()  # commits the deletions
    finally:
        _close(conn)
    scan.found = {m.token: dataclasses.replace(m, deleted=m.token in delete) for m in found}
    return scan


def _unique_ids(conn: poplib.POP3) -> dict[int, str]:
    """Message number -> UIDL; empty when the server has no UIDL (optional, RFC 1939 §7)."""
    try:
        _, lines, _ = conn.uidl()
    except poplib.error_proto as exc:
        if exc.args and exc.args[0] == "-ERR EOF":
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
