"""Domain event detection as ticks: posture A -> B raises exactly the right events, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.events.domain import PostureState, detect_posture
from monitor.events.model import Event, EventType, Severity
from monitor.posture.assess import PostureReport
from monitor.posture.finding import Finding, error, info, warning

T0 = datetime(2026, 12, 1, tzinfo=UTC)
DOMAIN = "news.test"
SPF_OK = info("spf.ok", "SPF is valid", "v=spf1 -all")
DMARC_OK = info("dmarc.ok", "p=reject", "v=DMARC1; p=reject")
DMARC_NONE = warning("dmarc.policy_none", "p=none", "v=DMARC1; p=none")
SPF_NEAR = warning("spf.lookup_limit", "10 of 10")
SPF_OVER = error("spf.lookup_limit", "11 lookups")
LISTED = error("dnsbl.listed", "listed", "25.2.0.192.zen.test A 127.0.0.2",
               subject="192.0.2.25 zen.test")
UNKNOWN = warning("dnsbl.unknown", "refused", subject="192.0.2.25 zen.test")
SPF_FAILED = warning("spf.lookup_failed", "timed out")


class Ticks:
    """Feeds reports one at a time, keeping the state as the service would."""

    def __init__(self) -> None:
        self.state: PostureState | None = None
        self.now = T0

    def tick(self, *findings: Finding) -> list[Event]:
        self.now += timedelta(hours=6)
        report = PostureReport(domain=DOMAIN, findings=list(findings))
        self.state, events = detect_posture(DOMAIN, self.state, report, self.now)
        # The state survives a round trip through the database's JSON.
        self.state = PostureState.model_validate(self.state.model_dump(mode="json"))
        return events


def types(events: list[Event]) -> list[EventType]:
    return [e.type for e in events]


def test_the_first_run_is_the_baseline_and_the_same_posture_raises_nothing() -> None:
    ticks = Ticks()
    assert ticks.tick(SPF_OK, DMARC_OK) == []
    assert ticks.tick(SPF_OK, DMARC_OK) == []


def test_dmarc_reject_to_none_is_one_change_once() -> None:
    ticks = Ticks()
    ticks.tick(SPF_OK, DMARC_OK)
    [event] = ticks.tick(SPF_OK, DMARC_NONE)
    assert event.type is EventType.DOMAIN_POSTURE_CHANGED and event.provider is None
    assert event.data["domain"] == DOMAIN
    assert [f["id"] for f in event.data["added"]] == ["dmarc.policy_none"]
    assert [f["id"] for f in event.data["removed"]] == ["dmarc.ok"]
    assert event.data["changed"] == []
    assert event.severity is Severity.WARNING
    assert event.headline() == "news.test: posture changed (+dmarc.policy_none, -dmarc.ok)"
    assert ticks.tick(SPF_OK, DMARC_NONE) == []  # once
    [back] = ticks.tick(SPF_OK, DMARC_OK)
    assert [f["id"] for f in back.data["added"]] == ["dmarc.ok"]
    assert back.severity is Severity.INFO


def test_spf_going_over_the_limit_is_a_severity_change() -> None:
    ticks = Ticks()
    ticks.tick(SPF_NEAR, DMARC_OK)
    [event] = ticks.tick(SPF_OVER, DMARC_OK)
    assert event.data["changed"] == [{"id": "spf.lookup_limit", "severity": "error",
                                      "subject": None, "message": "11 lookups", "record": None,
                                      "previous": "warning", "current": "error"}]
    assert event.data["added"] == [] and event.data["removed"] == []
    assert event.severity is Severity.ERROR
    assert "spf.lookup_limit warning→error" in event.headline()


def test_a_failed_lookup_carries_the_family_over() -> None:
    ticks = Ticks()
    ticks.tick(SPF_OK, DMARC_OK)
    assert ticks.tick(SPF_FAILED, DMARC_OK) == []  # a timeout is not a change
    assert ticks.tick(SPF_OK, DMARC_OK) == []
    # But a real change in another family during the outage still counts.
    assert types(ticks.tick(SPF_FAILED, DMARC_NONE)) == [EventType.DOMAIN_POSTURE_CHANGED]


def test_listing_and_delisting_once_each_and_unknown_changes_nothing() -> None:
    ticks = Ticks()
    ticks.tick(SPF_OK)
    [listed] = ticks.tick(SPF_OK, LISTED)
    assert listed.type is EventType.DOMAIN_BLOCKLISTED
    assert (listed.data["target"], listed.data["zone"]) == ("192.0.2.25", "zen.test")
    assert listed.headline() == "news.test: 192.0.2.25 in zen.test listed"
    assert listed.severity is Severity.ERROR and listed.type.pages
    assert ticks.tick(SPF_OK, LISTED) == []
    assert ticks.tick(SPF_OK, UNKNOWN) == []  # a refused query is not a delisting
    [delisted] = ticks.tick(SPF_OK)
    assert delisted.type is EventType.DOMAIN_DELISTED and delisted.type.resolves
    assert delisted.type.family == listed.type.family
    assert delisted.data["listing"] == listed.data["listing"] == "192.0.2.25@zen.test"
    assert ticks.tick(SPF_OK) == []


def test_a_listing_on_the_first_run_is_raised() -> None:
    ticks = Ticks()
    assert types(ticks.tick(SPF_OK, LISTED)) == [EventType.DOMAIN_BLOCKLISTED]
    # While unknown from the start, nothing is said either way.
    assert Ticks().tick(SPF_OK, UNKNOWN) == []


def test_a_change_and_a_listing_in_one_run() -> None:
    ticks = Ticks()
    ticks.tick(SPF_OK, DMARC_OK)
    assert types(ticks.tick(SPF_OK, DMARC_NONE, LISTED)) == [
        EventType.DOMAIN_POSTURE_CHANGED, EventType.DOMAIN_BLOCKLISTED]
