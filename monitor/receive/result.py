"""What the receive side reports about one sent probe message.

A `PendingToken` goes in (written when DATA was accepted), a `ReceiveResult`
comes out, one per pending token and check. Both are plain frozen models: the
poller knows nothing about storage, and storage knows nothing about IMAP.

Status, in the order a token can move through it:

    pending  not seen yet, deadline not reached: ask again later
    arrived  found (placement says inbox, junk or other)
    late     found, but its arrival time is past the deadline (class `delivery`)
    missing  not found by a check that started at or after the deadline (`delivery`)
    error    the mailbox could not be checked (class auth/tls/network/timeout/…)

`settled` says whether the caller may forget the token: everything but
`pending`, and `error` only once the deadline has passed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import PrivateAttr, computed_field, model_validator

from monitor.results import Diagnosis, FailureClass, Frozen


class ReceiveStatus(StrEnum):
    PENDING = "pending"
    ARRIVED = "arrived"
    LATE = "late"
    MISSING = "missing"
    ERROR = "error"


class Placement(StrEnum):
    INBOX = "inbox"
    JUNK = "junk"
    OTHER = "other"


class AuthVerdict(StrEnum):
    """RFC 8601 §2.7 result values for SPF, DKIM and DMARC (plus DKIM's `policy`)."""

    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"
    POLICY = "policy"


class PendingToken(Frozen):
    """A message accepted by SMTP that some mailbox should receive before `deadline`."""

    token: str
    run_id: str
    provider: str
    mailbox: str
    accepted_at: datetime
    deadline: datetime


class ReceiveResult(Frozen):
    token: str
    run_id: str
    provider: str
    mailbox: str
    backend: str  # the mailbox kind: imap, pop3, maildir, inbound
    status: ReceiveStatus
    checked_at: datetime  # when the check that produced this result started
    accepted_at: datetime
    deadline: datetime
    # When this poller first saw the message, and the topmost Received
    # timestamp (added by the receiving host, one-second resolution).
    seen_at: datetime | None = None
    received_at: datetime | None = None
    # accepted_at → received_at when there is a Received timestamp, else → seen_at.
    latency_ms: float | None = None
    seen_latency_ms: float | None = None  # accepted_at → seen_at, includes polling delay
    folder: str | None = None
    # POP3 shows only the inbox; a message the server filed elsewhere is never
    # seen there, so the folder is an assumption, not an observation.
    folder_known: bool = True
    placement: Placement | None = None
    spf: AuthVerdict | None = None
    dkim: AuthVerdict | None = None
    dmarc: AuthVerdict | None = None
    authserv_id: str | None = None  # whose Authentication-Results the verdicts come from
    deleted: bool = False  # the poller removed the message from the mailbox
    failure_class: FailureClass | None = None
    step: str | None = None  # mailbox step that failed: connect, starttls, login, select…
    error: str | None = None
    # For late, missing and junk: what it means and what to do, as for SMTP failures.
    diagnosis: Diagnosis | None = None
    notes: tuple[str, ...] = ()
    # The raw message when ReceiveOptions.keep_message asked for it: in memory only, never
    # stored, serialized or in the API's schema (a private attribute).
    _message: bytes | None = PrivateAttr(default=None)

    @property
    def message(self) -> bytes | None:
        return self._message

    def with_message(self, raw: bytes | None) -> ReceiveResult:
        copy = self.model_copy()
        copy._message = raw
        return copy

    @model_validator(mode="before")
    @classmethod
    def _drop_computed(cls, data: Any) -> Any:
        # JSON written by model_dump() carries the computed fields below; reading
        # it back (storage, API) must not trip over them.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in _COMPUTED}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def arrived(self) -> bool:
        return self.status in (ReceiveStatus.ARRIVED, ReceiveStatus.LATE)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """Delivered in time and not filed as junk (DESIGN.md `delivery.failed`): the one
        definition of "delivered", for the CLI's exit code and the service's events."""
        return self.status is ReceiveStatus.ARRIVED and self.placement is not Placement.JUNK

    @computed_field  # type: ignore[prop-decorator]
    @property
    def settled(self) -> bool:
        """True when the pending token can be dropped: no later check can change this."""
        if self.status is ReceiveStatus.PENDING:
            return False
        if self.status is ReceiveStatus.ERROR:
            return self.checked_at >= self.deadline
        return True


_COMPUTED = frozenset({"arrived", "ok", "settled"})
