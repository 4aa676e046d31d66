"""POP3 backend: implicit TLS (995) or STLS (110, RFC 2595), stdlib poplib in a thread.

POP3 has no folders (RFC 1939): a server that files a message as junk keeps
it out of the POP3 maildrop, so a message found here is reported in folder
"INBOX" with `folder_known=False`, and one filed as junk is never seen — it
ends as `missing`, not `junk`. Prefer IMAP when placement matters.

Only the newest `max_messages` messages are examined, header block only
(`TOP n 0`). Deletions (DELE) take effect at QUIT (RFC 1939 §6); when the
session dies before QUIT the server keeps them and the next scan sweeps them.
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
    is_stale,
    parse_headers,
    token_of,
)
from monitor.receive.errors import ReceiveError
from monitor.receive.result import Placement

NO_FOLDERS_NOTE = "POP3 has no folders: placement is assumed, junk-filed mail is not visible"


class Pop3Backend:
    async def scan(self, mailbox: MailboxConfig, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace) -> Scan:
        return await asyncio.to_thread(_scan, mailbox, frozenset(tokens), options, trace)


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
          trace: Trace) -> Scan:
    conn = _connect(mailbox, options, trace)
    scan = Scan(folders=("INBOX",), notes=[NO_FOLDERS_NOTE])
    try:
        trace.step = "stat"
        count, _ = conn.stat()
        now = datetime.now(UTC)
        remove: list[int] = []
        found: list[FoundMessage] = []
        for number in range(count, max(0, count - options.max_messages), -1):
            trace.step = "fetch"
            try:
                _, lines, _ = conn.top(number, 0)
            except poplib.error_proto as exc:
                if exc.args and exc.args[0] == "-ERR EOF":
                    raise  # the connection is gone: fail the scan
                continue  # "-ERR Message 3 expunged": another client took it meanwhile
            headers = parse_headers(b"\r\n".join(lines))
            token = token_of(headers)
            if token is None:
                continue
            if token in tokens:
                remove.append(number)
                if token not in {m.token for m in found}:
                    found.append(FoundMessage(token=token, folder="INBOX",
                                              placement=Placement.INBOX, headers=headers,
                                              seen_at=now, folder_known=False))
            elif is_stale(headers, None, options, now):
                remove.append(number)
                scan.swept += 1
        trace.step = "delete"
        for number in remove:
            conn.dele(number)
        trace.step = "quit"
        conn.quit()  # commits the deletions
    finally:
        _close(conn)
    scan.found = {m.token: dataclasses.replace(m, deleted=True) for m in found}
    return scan


def _close(conn: poplib.POP3) -> None:
    with contextlib.suppress(Exception):
        conn.close()
