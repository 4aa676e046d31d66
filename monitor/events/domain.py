"""Domain event detection: (previous posture, new report) -> (new state, events).

Pure, like monitor/events/detect.py: no I/O, no clock; the caller stores the
state and the events in one transaction. Tested as sequences of ticks.

- `domain.blocklisted` / `domain.delisted`: once per listing (target and zone)
  that appears / goes away. A listing that could not be checked this time
  (`dnsbl.unknown`, a failed lookup) keeps its previous state.
- `domain.posture_changed`: one event per run that adds or removes a finding or
  changes one's severity (DMARC p=reject -> p=none is `-dmarc.ok`,
  `+dmarc.policy_none`). DNSBL findings are left to the two events above. A
  family whose lookup failed this time (`spf.lookup_failed`...) is carried over
  unchanged: a timeout is not a change of posture.
- The first run sets the baseline: it raises no posture change, but does raise
  `domain.blocklisted` for each listing it finds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from monitor.events.model import Event, EventType
from monitor.ids import new_id
from monitor.posture.assess import PostureReport
from monitor.posture.finding import Finding

LISTED, UNKNOWN = "dnsbl.listed", "dnsbl.unknown"


class PostureState(BaseModel):
    """What the last run found, as stored (`domain_posture.state`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    findings: list[Finding] = Field(default_factory=list)  # without DNSBL findings
    listings: dict[str, Finding] = Field(default_factory=dict)  # by subject "target zone"


def _family(finding: Finding) -> str:
    return finding.id.split(".", 1)[0]


def _event(kind: EventType, domain: str, now: datetime, **data: Any) -> Event:
    return Event(id=new_id(), type=kind, timestamp=now, provider=None,
                 data={"domain": domain, **data})


def _brief(finding: Finding) -> dict[str, Any]:
    return {"id": finding.id, "severity": finding.severity.value, "subject": finding.subject,
            "message": finding.message, "record": finding.record}


def detect_posture(domain: str, previous: PostureState | None, report: PostureReport,
                   now: datetime) -> tuple[PostureState, list[Event]]:
    posture = [f for f in report.findings if _family(f) != "dnsbl"]
    failed = {_family(f) for f in posture if f.id.endswith(".lookup_failed")}
    if previous is not None and failed:
        # Carried over: the previous findings of a family that could not be looked up.
        posture = [f for f in posture if _family(f) not in failed] + [
            f for f in previous.findings if _family(f) in failed]
    listings, events = _listings(domain, previous, report, now)
    state = PostureState(findings=posture, listings=listings)
    if previous is None:
        return state, events
    before = {f.key: f for f in previous.findings}
    after = {f.key: f for f in posture}
    added = [_brief(f) for k, f in after.items() if k not in before]
    removed = [_brief(f) for k, f in before.items() if k not in after]
    changed = [{**_brief(f), "previous": before[k].severity.value, "current": f.severity.value}
               for k, f in after.items() if k in before and before[k].severity != f.severity]
    if added or removed or changed:
        events.insert(0, _event(EventType.DOMAIN_POSTURE_CHANGED, domain, now,
                                added=added, removed=removed, changed=changed))
    return state, events


def _listings(domain: str, previous: PostureState | None, report: PostureReport,
              now: datetime) -> tuple[dict[str, Finding], list[Event]]:
    before = previous.listings if previous is not None else {}
    listed = {f.subject or "": f for f in report.findings if f.id == LISTED}
    unknown = {f.subject or "" for f in report.findings if f.id == UNKNOWN}
    # Unknown this time (a refused query, a timeout): as it was.
    current = {**{s: f for s, f in before.items() if s in unknown}, **listed}
    events = []
    for subject, finding in current.items():
        if subject not in before:
            events.append(_event(EventType.DOMAIN_BLOCKLISTED, domain, now,
                                 **_listing_data(subject, finding)))
    for subject, finding in before.items():
        if subject not in current:
            events.append(_event(EventType.DOMAIN_DELISTED, domain, now,
                                 **_listing_data(subject, finding)))
    return current, events


def _listing_data(subject: str, finding: Finding) -> dict[str, Any]:
    target, _, zone = subject.partition(" ")
    return {"target": target, "zone": zone, "listing": subject.replace(" ", "@"),
            "message": finding.message, "record": finding.record}
