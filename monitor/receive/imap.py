"""IMAP backend: implicit TLS (993) or STARTTLS (143), configured folders plus junk.

Client: IMAPClient (BSD, maintained) over the stdlib's imaplib, run in a worker
thread. aioimaplib was the first candidate but does not fit: it is
GPL-3.0-only (this project is Apache-2.0), it has no STARTTLS (open upstream
issue iroco-co/aioimaplib#1), and a server that sends a garbage greeting or
drops the connection leaves its commands waiting for their timeout instead
of failing. imaplib raises at once in those cases, and a socket timeout bounds
every read and write; the poller bounds the whole scan.

Per folder: SELECT, one `UID SEARCH HEADER X-Delivery-Monitor-Token ""` (an
empty string matches every message that has the header, RFC 9051 §6.4.4),
one FETCH of INTERNALDATE and the header block. Only once every folder is read
(and `Trace.commit()` succeeded, see `backend.py`) come STORE \\Deleted and
`UID EXPUNGE` (RFC 4315, so messages someone else flagged stay put), folder by
folder. The SEARCH matches probe messages only, so the newest `max_messages`
of them are examined however much other mail the folder holds. The junk
folder is the one LIST marks `\\Junk` (RFC 6154), else a common name.

Login: LOGIN with the password or, with `auth: xoauth2`, AUTHENTICATE XOAUTH2 with
an OAuth2 access token (`xoauth2.py`) from `token`, or read from `token_file` at
every scan so that a sidecar can refresh it. A server that does not advertise
AUTH=XOAUTH2 is an `auth` failure before the token is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Self

from imapclient import IMAPClient, SocketTimeout
from pydantic import SecretStr, field_validator, model_validator

from monitor.config import TlsMode
from monitor.network import client_context
from monitor.receive.backend import (
    MAX_MESSAGE_BYTES,
    FoundMessage,
    ReceiveOptions,
    Scan,
    ServerMailbox,
    Trace,
    deletion,
    is_junk_name,
    is_stale,
    missing,
    parse_headers,
    placement_of,
    token_of,
)
from monitor.receive.errors import ReceiveError
from monitor.receive.xoauth2 import Xoauth2, is_token, read_token_file
from monitor.results import TOKEN_HEADER, FailureClass

_JUNK_FLAG = b"\\junk"
_NOSELECT = b"\\noselect"

FolderList = Sequence[tuple[tuple[bytes, ...], bytes | None, str]]


class ImapAuth(StrEnum):
    PASSWORD = "password"  # LOGIN
    XOAUTH2 = "xoauth2"  # AUTHENTICATE XOAUTH2 with an OAuth2 access token


class ImapMailbox(ServerMailbox):
    kind: Literal["imap"] = "imap"
    auth: ImapAuth = ImapAuth.PASSWORD
    password: SecretStr | None = None
    # auth xoauth2: the access token, usually `${SOME_TOKEN}`, or a file holding it
    token: SecretStr | None = None
    token_file: Path | None = None
    folders: tuple[str, ...] = ("INBOX",)

    @model_validator(mode="before")
    @classmethod
    def _has_what_it_needs(cls, data: Any) -> Any:
        needs = ["host", "username"]
        # A token without `auth: xoauth2` is reported by _one_secret, not as "needs password".
        if isinstance(data, dict) and data.get("auth", "password") == "password" and (
                missing(data, ("token", "token_file")) == ["token", "token_file"]):
            needs.append("password")
        if lacking := missing(data, needs):
            raise ValueError(f"kind imap needs {', '.join(lacking)}")
        return data

    @field_validator("token")
    @classmethod
    def _one_word(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not is_token(value.get_secret_value()):
            raise ValueError("must be an access token: one word, no spaces or control characters")
        return value

    @field_validator("token_file")
    @classmethod
    def _token_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give `token` or `token_file`, not both")
        if self.auth is ImapAuth.XOAUTH2:
            if self.password is not None:
                raise ValueError("auth xoauth2 takes `token` or `token_file` instead of `password`")
            if self.token is None and self.token_file is None:
                raise ValueError("auth xoauth2 needs `token` (an OAuth2 access token) or "
                                 "`token_file`")
        elif self.token is not None or self.token_file is not None:
            key = "token" if self.token is not None else "token_file"
            raise ValueError(f"`{key}` needs auth: xoauth2")
        return self


class ImapBackend:
    async def scan(self, mailbox: ImapMailbox, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        find = frozenset(tokens)
        return await asyncio.to_thread(_scan, mailbox, find, deletion(find, delete), options,
                                       trace)


def find_junk(folders: FolderList) -> str | None:
    """The folder LIST marks \\Junk; failing that, the first with a common junk name."""
    selectable = [f for f in folders if _NOSELECT not in {flag.lower() for flag in f[0]}]
    for flags, _, name in selectable:
        if _JUNK_FLAG in {flag.lower() for flag in flags}:
            return name
    return next((name for _, _, name in selectable if is_junk_name(name)), None)


def _connect(mailbox: ImapMailbox, options: ReceiveOptions, trace: Trace) -> IMAPClient:
    context = client_context(mailbox.tls_verify, mailbox.ca_file)
    implicit = mailbox.tls is TlsMode.IMPLICIT
    trace.step = "connect"
    client = IMAPClient(mailbox.host, port=mailbox.port or (993 if implicit else 143),
                        ssl=implicit, ssl_context=context if implicit else None,
                        timeout=SocketTimeout(options.op_timeout, options.op_timeout))
    client.normalise_times = False  # keep INTERNALDATE's zone: we compare aware datetimes
    try:
        if mailbox.tls is TlsMode.STARTTLS:
            trace.step = "starttls"
            if not client.has_capability("STARTTLS"):
                # Never send the password in clear because the upgrade is missing.
                raise ReceiveError(FailureClass.TLS, "server does not offer STARTTLS")
            client.starttls(context)
        trace.step = "login"
        _login(client, mailbox)
    except BaseException:
        _close(client)
        raise
    return client


def _login(client: IMAPClient, mailbox: ImapMailbox) -> None:
    if mailbox.auth is ImapAuth.PASSWORD:
        assert mailbox.password is not None  # the config validator requires it
        client.login(mailbox.username, mailbox.password.get_secret_value())
        return
    if mailbox.token is not None:
        token = mailbox.token.get_secret_value()
    else:
        assert mailbox.token_file is not None  # the config validator requires one of the two
        token = read_token_file(mailbox.token_file)  # now: the sidecar may have refreshed it
    if not client.has_capability("AUTH=XOAUTH2"):
        raise ReceiveError(FailureClass.AUTH, "server does not offer AUTH=XOAUTH2")
    mechanism = Xoauth2(mailbox.username, token)
    try:
        client.sasl_login("XOAUTH2", mechanism)
    except Exception as exc:
        # Keep the class (errors.classify reads it), drop the token if the server echoed it.
        exc.args = tuple(mechanism.redact(arg) for arg in exc.args)
        raise


def _scan(mailbox: ImapMailbox, tokens: frozenset[str], delete: frozenset[str],
          options: ReceiveOptions, trace: Trace) -> Scan:
    client = _connect(mailbox, options, trace)
    try:
        trace.step = "list"
        junk = find_junk(client.list_folders())
        folders = list(dict.fromkeys([*mailbox.folders, *([junk] if junk else [])]))
        scan = Scan(folders=tuple(folders))
        if junk is None:
            scan.notes.append("no junk folder found (no \\Junk attribute, no common name)")
        remove: dict[str, list[int]] = {}
        for folder in folders:
            trace.checkpoint()
            remove[folder] = _scan_folder(client, folder, junk, tokens, delete, options, trace,
                                          scan)
        # Deleting is the last step, and only once the poller is sure to use the result.
        trace.step, trace.folder = "delete", None
        trace.commit()
        _delete(client, remove, trace)
        scan.found = {t: dataclasses.replace(m, deleted=t in delete)
                      for t, m in scan.found.items()}
        trace.step, trace.folder = "logout", None
        client.logout()
    finally:
        _close(client)
    return scan


def _scan_folder(client: IMAPClient, folder: str, junk: str | None, tokens: frozenset[str],
                 delete: frozenset[str], options: ReceiveOptions, trace: Trace,
                 scan: Scan) -> list[int]:
    """Record what the folder holds in `scan`; return the UIDs to delete."""
    trace.folder = folder
    trace.step = "select"
    client.select_folder(folder)
    trace.step = "search"
    # Only messages with the header match: other mail cannot crowd probes out.
    uids = sorted(client.search(["HEADER", TOKEN_HEADER, ""]))[-options.max_messages:]
    if not uids:
        return []
    trace.checkpoint()
    trace.step = "fetch"
    items = client.fetch(uids, ["INTERNALDATE", "BODY.PEEK[HEADER]"])
    now = datetime.now(UTC)
    remove: list[int] = []
    found_here: dict[int, str] = {}
    for uid, item in items.items():
        headers = parse_headers(bytes(item.get(b"BODY[HEADER]") or b""))
        token = token_of(headers)
        internal = item.get(b"INTERNALDATE")
        arrived = internal if isinstance(internal, datetime) and internal.tzinfo else None
        if token is not None and (token in tokens or token in delete):
            if token in delete:
                remove.append(uid)  # a duplicate of a token found elsewhere goes too
            if token in tokens and token not in scan.found:
                found_here[uid] = token
                scan.found[token] = FoundMessage(token=token, folder=folder,
                                                 placement=placement_of(folder, junk),
                                                 headers=headers, seen_at=now)
        elif is_stale(headers, arrived, options, now):
            remove.append(uid)
            scan.swept += 1
    if options.keep_message and found_here:
        _fetch_whole(client, scan, found_here)
    return remove


def _fetch_whole(client: IMAPClient, scan: Scan, wanted: dict[int, str]) -> None:
    """The whole message of each token found in this folder (posture needs its body)."""
    for uid, item in client.fetch(list(wanted), ["BODY.PEEK[]"]).items():
        raw = bytes(item.get(b"BODY[]") or b"")[:MAX_MESSAGE_BYTES]
        token = wanted.get(uid)
        if raw and token is not None:
            scan.found[token] = dataclasses.replace(scan.found[token], raw=raw)


def _delete(client: IMAPClient, remove: dict[str, list[int]], trace: Trace) -> None:
    selected = next(reversed(remove), None)  # the folder scanned last is still selected
    for folder, uids in remove.items():
        if not uids:
            continue
        trace.folder = folder
        if folder != selected:
            client.select_folder(folder)
            selected = folder
        client.delete_messages(uids, silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:  # plain EXPUNGE also removes messages others flagged \Deleted
            client.expunge()


def _close(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):  # already closed, or the peer is gone
        client.shutdown()
