"""The `check.completed` event a finished check ends with (DESIGN.md, Events).

Built here, stored and fanned out by the caller (the API's background task), like
every other event: nothing in the checks package writes to storage or posts a webhook.
"""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.checks.model import CheckReport, CheckStatus
from monitor.events.model import Event, EventType
from monitor.ids import new_id


def completed_event(report: CheckReport, now: datetime | None = None) -> Event:
    """`data`: check_id, verdict (passed/failed, or null with `error`), reasons, seed counts."""
    if report.status not in (CheckStatus.DONE, CheckStatus.ERROR):
        raise ValueError(f"check {report.id} is {report.status.value}, not finished")
    seeds = report.seeds
    return Event(
        id=new_id(), type=EventType.CHECK_COMPLETED,
        timestamp=now or report.finished_at or datetime.now(UTC), provider=report.provider,
        run_id=None,
        data={"check_id": report.id, "status": report.status.value,
              "verdict": report.verdict.value if report.verdict else None,
              "reasons": list(report.reasons), "error": report.error,
              "sender": report.sender, "seeds_total": len(seeds),
              "seeds_accepted": sum(s.accepted for s in seeds),
              "seeds_arrived": sum(s.arrived for s in seeds),
              "seeds_inbox": sum(s.placement == "inbox" for s in seeds)})
