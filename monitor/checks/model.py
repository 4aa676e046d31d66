"""What a pre-campaign check is asked to do, and what it reports.

`CheckRequest` is the body of `POST /v1/checks` and the arguments of `monitor
check`; it is strict because its strings end up in SMTP commands and message
headers: CR, LF, NUL (and every other character that can break a header line)
are refused in the subject and the address, so nothing a client sends can add
a header or an SMTP command (header injection). `CheckReport` is what
`GET /v1/checks/{id}` returns, while the check runs and when it is done.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.posture.assess import PostureReport
from monitor.probe.result import StepResult
from monitor.receive.result import AuthVerdict, Placement, ReceiveStatus
from monitor.results import FailureClass

MAX_SEEDS = 50
MAX_BODY_BYTES = 1024 * 1024  # per body; a campaign bigger than this is not a seed test
MAX_SUBJECT_CHARS = 998  # RFC 5322 §2.1.1: the longest line a header may have

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]

# Everything str.splitlines() splits on, which the email package may treat as a line
# break when it folds a header, plus NUL and the other C0 controls.
_LINE_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
# RFC 5322 §3.2.3 atext; a dot-atom local part (quoted local parts are not accepted).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def valid_address(value: str, what: str = "address") -> str:
    """A plain `local@domain` (RFC 5321 §4.1.2 dot-atom, LDH domain); ValueError if not."""
    if _LINE_BREAKING.search(value):
        raise ValueError(f"{what} must not contain CR, LF, NUL or other control characters "
                         "(header injection)")
    if len(value) > 254:  # RFC 5321 §4.5.3.1.3 path limit, minus the angle brackets
        raise ValueError(f"{what} is longer than 254 characters")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{what} {value!r} is not an address of the form local@domain")
    if len(local) > 64 or not _LOCAL.match(local):
        raise ValueError(f"{what} {value!r} has an invalid local part (a dot-atom of at most "
                         "64 letters, digits and !#$%&'*+/=?^_`{|}~- is expected)")
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(_LABEL.match(x) for x in labels):
        raise ValueError(f"{what} {value!r} has an invalid domain (dot-separated letters, "
                         "digits and hyphens, at least two labels)")
    return value


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class CheckRequest(Frozen):
    """Send the campaign's content from `sender` through `provider` to each seed."""

    provider: Name
    # `from` on the wire (JSON and the CLI's --from); `sender` in Python.
    sender: str = Field(alias="from", max_length=254)
    seeds: list[Name] = Field(min_length=1, max_length=MAX_SEEDS,
                              description="configured mailbox names")
    subject: str | None = Field(default=None, max_length=MAX_SUBJECT_CHARS)
    text: str | None = None
    html: str | None = None

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return valid_address(value, "from")

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        if value is not None and _LINE_BREAKING.search(value):
            raise ValueError("subject must not contain CR, LF, NUL or other control "
                             "characters (header injection)")
        return value

    @field_validator("text", "html")
    @classmethod
    def _body(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if "\x00" in value:
            raise ValueError("must not contain NUL (SMTP DATA cannot carry it)")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise ValueError(f"is larger than {MAX_BODY_BYTES} bytes")
        return value

    @field_validator("seeds")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        twice = sorted({s for s in value if value.count(s) > 1})
        if twice:
            # One message per seed: a repeated seed would make its placement ambiguous.
            raise ValueError(f"seeds are listed more than once: {', '.join(twice)}")
        return value


class CheckStatus(StrEnum):
    PENDING = "pending"  # accepted, not started
    RUNNING = "running"
    DONE = "done"  # finished; `verdict` is set
    ERROR = "error"  # the check itself could not run to the end; `error` says why


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class Stage(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    WAITING = "waiting"  # sent; waiting for arrival (or, for the check, for DNS)
    DONE = "done"


class Progress(Frozen):
    seeds_total: int
    seeds_done: int = 0
    stage: Stage = Stage.QUEUED


class SeedReport(Frozen):
    """One seed: how its message went through SMTP and where it landed."""

    mailbox: str
    address: str
    stage: Stage = Stage.QUEUED
    run_id: str | None = None
    token: str | None = None
    message_id: str | None = None
    # Every SMTP step of this seed's session (one session per seed), with its
    # reply code, enhanced code (RFC 3463), text and latency.
    smtp: list[StepResult] = Field(default_factory=list)
    accepted: bool = False  # 250 to the final dot
    accepted_at: datetime | None = None
    failed_step: str | None = None
    failure_class: FailureClass | None = None
    receive_status: ReceiveStatus | None = None
    arrived: bool = False
    latency_ms: float | None = None
    folder: str | None = None
    placement: Placement | None = None
    spf: AuthVerdict | None = None
    dkim: AuthVerdict | None = None
    dmarc: AuthVerdict | None = None
    error: str | None = None

    def code(self, step: str) -> tuple[int | None, str | None]:
        """(code, enhanced code) of the last `step` (mail, rcpt, data, message…)."""
        found = [s for s in self.smtp if s.step.value == step]
        return (found[-1].code, found[-1].enhanced_code) if found else (None, None)


class MxHost(Frozen):
    preference: int
    exchange: str


class MxReport(Frozen):
    present: bool = False
    hosts: list[MxHost] = Field(default_factory=list)
    null_mx: bool = False  # RFC 7505 "0 .": the domain accepts no mail
    error: str | None = None  # the lookup failed (timeout, SERVFAIL…), not "no record"


class SpfReport(Frozen):
    present: bool = False
    record: str | None = None
    records: list[str] = Field(default_factory=list)  # every v=spf1 TXT found
    parseable: bool = False
    all_qualifier: str | None = None  # "-", "~", "?" or "+" of the `all` mechanism
    dns_lookup_terms: int = 0  # top-level include/a/mx/ptr/exists/redirect (limit 10)
    error: str | None = None  # lookup failure, several records, or the parse error


class DmarcReport(Frozen):
    name: str  # _dmarc.<domain>
    present: bool = False
    record: str | None = None
    valid: bool = False
    policy: str | None = None  # p=
    subdomain_policy: str | None = None  # sp=
    pct: int | None = None
    rua: list[str] = Field(default_factory=list)
    error: str | None = None


class DnsReport(Frozen):
    domain: str
    nameserver: str | None = None  # ip:port when not the system resolver
    mx: MxReport
    spf: SpfReport
    dmarc: DmarcReport
    notes: list[str] = Field(default_factory=list)
    duration_ms: float = 0.0


class CheckReport(Frozen):
    id: str
    status: CheckStatus
    provider: str
    sender: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress
    seeds: list[SeedReport] = Field(default_factory=list)
    dns: DnsReport | None = None
    # The sender domain's posture findings (monitor/posture/), errors first; DKIM and the
    # sending IP from the first seed message that arrived, DANE from the probe's TLS.
    posture: PostureReport | None = None
    verdict: Verdict | None = None
    reasons: list[str] = Field(default_factory=list)  # why it failed, one line each
    warnings: list[str] = Field(default_factory=list)  # worth knowing; not failures
    error: str | None = None
