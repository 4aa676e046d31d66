"""A posture finding: a stable dotted id, a severity, an explanation and its record.

The explanation follows the seed reference's diagnosis style, in one line: what
it means, whether to fix it or wait, and what to change. `record` is the DNS
record, policy line or header the finding is about, exactly as it was read
(remote text: the CLI escapes it for terminals).

Ids are part of the public contract (README, "Posture findings"): a dashboard
or an alert rule matches on them, so one is never renamed or reused.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Severity(StrEnum):
    ERROR = "error"  # mail fails or is rejected because of it: fix before sending
    WARNING = "warning"  # weakens delivery or protection: fix soon
    INFO = "info"  # worth knowing; nothing to change

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    severity: Severity
    message: str
    record: str | None = None
    # Which name, host or IP it is about, when a domain has several (an MX host, a
    # DNSBL zone): part of the finding's identity for change detection.
    subject: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What a later run's finding is compared with: same id about the same thing."""
        return self.id, self.subject or ""


def error(id: str, message: str, record: str | None = None,
          subject: str | None = None) -> Finding:
    return Finding(id=id, severity=Severity.ERROR, message=message, record=record,
                   subject=subject)


def warning(id: str, message: str, record: str | None = None,
            subject: str | None = None) -> Finding:
    return Finding(id=id, severity=Severity.WARNING, message=message, record=record,
                   subject=subject)


def info(id: str, message: str, record: str | None = None,
         subject: str | None = None) -> Finding:
    return Finding(id=id, severity=Severity.INFO, message=message, record=record,
                   subject=subject)


def by_severity(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then info; stable by id within each."""
    return sorted(findings, key=lambda f: (f.severity.rank, f.id, f.subject or ""))
