"""The one small interface every mailbox backend implements, and what they share
(including `ServerMailbox`, the config fields of a mailbox on a server).

Each backend module also owns its kind's config model; `registry.py` lists them.

A backend looks through one mailbox for probe messages and reports what it
found; it does not decide what a finding means (the poller does), and it may
raise: the poller classifies exceptions in one place (`errors.classify`),
reading `Trace.step` to say where it happened.

Every scan also deletes the messages of the tokens in its `delete` set and
sweeps probe messages older than `ReceiveOptions.sweep_after` whose token
nobody is waiting for (a crashed monitor, a mailbox removed from config), so
seed mailboxes never fill up. The service passes as `delete` the tokens whose
results it has already stored, so a message is removed only on the pass after
its arrival was recorded: a crash or a database error in between leaves it to
be found again, never reported missing. Callers that report at once (the CLI)
pass None: delete what is found.

A scan runs in a worker thread that the poller's timeout cannot stop, so it
reads first and deletes last, and `Trace` is the handshake between the two
sides: the backend calls `Trace.checkpoint()` as it goes (it raises once the
poller has given up) and `Trace.commit()` right before deleting anything;
the poller calls `Trace.abandon()` when time is up. Whichever comes first
wins, under a lock: an abandoned scan deletes nothing, and a committed one is
waited for and its result used, so a message is never deleted unreported.

Only probe messages (those with the token header) count towards
`ReceiveOptions.max_messages`, newest first: other mail never crowds them out.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from monitor.config import MailboxConfig, TlsMode
from monitor.config.models import Host, Port
from monitor.receive.result import Placement
from monitor.results import TOKEN_HEADER

if TYPE_CHECKING:  # inbound.py imports this module
    from monitor.receive.inbound import InboundStore

# RFC 6154 names the attribute; these are the names servers without it use.
JUNK_NAMES = ("junk", "spam", "junk e-mail", "junk email", "bulk mail", "[gmail]/spam")

MAX_HEADER_BYTES = 256 * 1024  # a probe's header block is ~1 KB; more is not ours
MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # a kept seed message; a campaign body is far smaller


@dataclass(frozen=True)
class ReceiveOptions:
    """Knobs the service sets once; the defaults suit a seed mailbox."""

    data_dir: Path = Path("data")  # without inbound_store: <data_dir>/inbound/<mailbox>/
    # Where posted (`inbound`) mail is kept; the service's is the database, shared by
    # every replica. None: a Maildir per mailbox under data_dir (the CLI, tests).
    inbound_store: InboundStore | None = None
    # Trust only Authentication-Results from this host (RFC 8601 §5); None trusts
    # the topmost header, which is the one the receiving host added last.
    authserv_id: str | None = None
    op_timeout: float = 10.0  # each network read/write of a backend
    scan_timeout: float = 60.0  # one whole scan of one mailbox
    sweep_after: timedelta = timedelta(days=1)
    max_messages: int = 500  # probe messages (newest first) examined per folder and scan
    # Fetch the whole message of each token found (`ReceiveResult.message`), for the
    # posture checks of a pre-campaign check (DKIM as received, the Received chain).
    # Maildir and IMAP do; POP3 and inbound report headers only.
    keep_message: bool = False


class ScanAbandoned(TimeoutError):
    """Raised inside a backend's thread once the poller stopped waiting for it."""


@dataclass
class Trace:
    """Where a scan is, written by the backend and read when it fails or times out;
    also the abandon/commit handshake between the poller and the backend's thread."""

    step: str = "connect"
    folder: str | None = None
    _abandoned: bool = field(default=False, repr=False, compare=False)
    _committed: bool = field(default=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def checkpoint(self) -> None:
        """Backend: stop here (raise) if the poller has given up on this scan."""
        if self._abandoned:
            raise ScanAbandoned(f"scan abandoned at step {self.step}")

    def commit(self) -> None:
        """Backend: call right before deleting anything. From here on the poller waits
        for the scan and uses its result; raises if the poller gave up first."""
        with self._lock:
            self.checkpoint()
            self._committed = True

    def abandon(self) -> bool:
        """Checker: give up on the scan. True when the backend will now delete nothing;
        False when it has already committed, so its result must still be awaited."""
        with self._lock:
            if self._committed:
                return False
            self._abandoned = True
            return True


@dataclass(frozen=True)
class FoundMessage:
    token: str
    folder: str
    placement: Placement
    headers: Message
    seen_at: datetime
    folder_known: bool = True
    deleted: bool = False
    raw: bytes | None = None  # the whole message, when ReceiveOptions.keep_message


@dataclass
class Scan:
    found: dict[str, FoundMessage] = field(default_factory=dict)
    swept: int = 0
    folders: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


class ServerMailbox(MailboxConfig):
    """The fields of a mailbox on a server (imap, pop3); each kind adds its credentials."""

    host: Host
    port: Port | None = None  # default: the protocol's port for `tls`
    tls: TlsMode = TlsMode.IMPLICIT
    tls_verify: bool = True
    ca_file: Path | None = None
    username: str


def missing(data: Any, keys: Iterable[str]) -> list[str]:
    """Of `keys`, those absent or null in the raw input of a mailbox model: for the
    model validators that name, in one message, everything a kind still needs."""
    if not isinstance(data, dict):
        return []  # not a mapping: pydantic says so itself
    return [key for key in keys if data.get(key) is None]


Mailbox = TypeVar("Mailbox", bound=MailboxConfig, contravariant=True)


class MailboxBackend(Protocol[Mailbox]):
    async def scan(self, mailbox: Mailbox, tokens: Collection[str],
                   options: ReceiveOptions, trace: Trace,
                   delete: Collection[str] | None = None) -> Scan:
        """Find messages carrying any of `tokens`, delete those of `delete` (None:
        of `tokens`), sweep stale probes; call `trace.checkpoint()` while reading
        and `trace.commit()` before deleting."""
        ...


def deletion(tokens: frozenset[str], delete: Collection[str] | None) -> frozenset[str]:
    return tokens if delete is None else frozenset(delete)


def parse_headers(raw: bytes) -> Message:
    """The header block of a message; compat32 keeps odd headers as they came."""
    return BytesHeaderParser(policy=compat32).parsebytes(raw[:MAX_HEADER_BYTES])


def token_of(headers: Message) -> str | None:
    value = headers.get(TOKEN_HEADER)
    if value is None:
        return None
    return " ".join(str(value).split()) or None


def received_time(headers: Message) -> datetime | None:
    """Timestamp of the topmost Received header (RFC 5321 §4.4: after the last ';')."""
    received = headers.get_all("Received") or []
    return parse_date(str(received[0]).rpartition(";")[2]) if received else None


def message_time(headers: Message) -> datetime | None:
    """When a message arrived, for the sweep: topmost Received, else Date."""
    return received_time(headers) or parse_date(str(headers.get("Date") or ""))


def parse_date(text: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(" ".join(text.split()))
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 5322 "-0000" means UTC with no known local zone: email.utils returns naive.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def is_junk_name(folder: str) -> bool:
    name = folder.strip().lower()
    last = name.replace(".", "/").rsplit("/", 1)[-1]  # INBOX.Junk, INBOX/Spam
    return name in JUNK_NAMES or last in JUNK_NAMES


def placement_of(folder: str, junk_folder: str | None) -> Placement:
    if folder.upper() == "INBOX":
        return Placement.INBOX
    if folder == junk_folder or (junk_folder is None and is_junk_name(folder)):
        return Placement.JUNK
    return Placement.OTHER


def is_stale(headers: Message, arrived: datetime | None, options: ReceiveOptions,
             now: datetime) -> bool:
    """A leftover probe message, old enough to sweep."""
    when = arrived or message_time(headers)
    return when is not None and now - when > options.sweep_after
