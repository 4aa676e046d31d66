"""A probe result in a few hundred bytes: what a list of thousands of providers shows.

Stored beside the provider's state when a run is recorded, so listing providers
reads one small row each instead of each one's whole last result.
"""

from __future__ import annotations

from datetime import datetime

from monitor.probe.result import ProbeResult
from monitor.results import Frozen

# Diagnosis lines quote server replies; a list keeps the gist, the full result keeps all.
MAX_LINE = 160


class RunSummary(Frozen):
    run_id: str
    started_at: datetime
    duration_ms: float
    ok: bool
    failed_step: str | None = None
    code: int | None = None
    enhanced_code: str | None = None
    failure_class: str | None = None
    diagnosis: str | None = None
    tls_verified: bool | None = None
    certificate_not_after: datetime | None = None


def summarize(result: ProbeResult) -> RunSummary:
    failure = result.failure
    certificate = result.tls.certificate if result.tls else None
    diagnosis = result.diagnosis.summary if result.diagnosis else None
    return RunSummary(
        run_id=result.run_id, started_at=result.started_at,
        duration_ms=round(result.duration_ms, 1), ok=result.ok,
        failed_step=result.failed_step.value if result.failed_step else None,
        code=failure.code if failure else None,
        enhanced_code=failure.enhanced_code if failure else None,
        failure_class=result.failure_class.value if result.failure_class else None,
        diagnosis=_clip(diagnosis) if diagnosis else None,
        tls_verified=result.tls.verified if result.tls else None,
        certificate_not_after=certificate.not_after if certificate else None)


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 1] + "…"
