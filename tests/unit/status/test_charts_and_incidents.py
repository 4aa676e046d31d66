"""The pure parts of the pages: incidents from literal event sequences, SVG from numbers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from monitor.status import svg
from monitor.status.incidents import EventFact, human_duration, incidents

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def fact(kind: str, minutes: int, provider: str = "p", **data: object) -> EventFact:
    return EventFact(type=kind, provider=provider, timestamp=T0 + timedelta(minutes=minutes),
                     data=dict(data))


def test_failed_then_recovered_is_one_incident_and_an_open_one_stays_open() -> None:
    found = incidents([
        fact("probe.recovered", 0),  # its failure is past retention: dropped
        fact("probe.failed", 10, step="rcpt", code=451, enhanced_code="4.3.0",
             **{"class": "transient"}, message="try later",
             diagnosis={"summary": "greylisted", "action": "wait"}),
        fact("probe.failed", 12, step="mail"),  # while open: the first one stands
        fact("probe.recovered", 40),
        fact("delivery.failed", 50, provider="q", step="delivery", message="landed in junk"),
        fact("probe.code_changed", 55),  # not an incident
        fact("probe.failed", 60, step="connect", **{"class": "network"}),
    ])
    assert [(i.provider, i.kind, i.started.minute, i.ended) for i in found] == [
        ("p", "probe", 0, None), ("q", "delivery", 50, None), ("p", "probe", 10, found[2].ended)]
    closed = found[2]
    assert closed.ended == T0 + timedelta(minutes=40)
    assert (closed.step, closed.code, closed.failure_class) == ("rcpt", "451 4.3.0", "transient")
    assert (closed.message, closed.diagnosis) == ("try later", "greylisted")
    assert closed.duration(T0) == timedelta(minutes=30)
    assert found[0].duration(T0 + timedelta(minutes=75)) == timedelta(minutes=15)


def test_human_durations() -> None:
    assert [human_duration(timedelta(seconds=s)) for s in (45, 720, 3600, 12000, 187200)] == [
        "45 s", "12 min", "1 h", "3 h 20 min", "2 d 4 h"]


def test_a_gap_breaks_the_chart_line_and_every_observation_is_a_point() -> None:
    points: list[svg.Point] = [(T0 + timedelta(hours=h), v) for h, v in
                               enumerate([100.0, 120.0, None, None, 300.0, 310.0, 305.0])]
    markup = str(svg.chart([svg.Series("p50", "p50", points)], T0, T0 + timedelta(hours=6),
                           title='a <"title">'))
    lines = re.findall(r'<polyline class="series p50" points="([^"]+)"', markup)
    assert [len(line.split()) for line in lines] == [2, 3]
    assert markup.count('<circle class="point p50"') == 5
    assert '<title>a &lt;&#34;title&#34;&gt;</title>' in markup
    # Higher latency is drawn higher (smaller y).
    ys = [float(p.split(",")[1]) for line in lines for p in line.split()]
    assert ys[0] > ys[2]


def test_a_chart_and_a_sparkline_without_data_say_so() -> None:
    empty = str(svg.chart([svg.Series("p50", "p50", [(T0, None)])], T0, T0 + timedelta(hours=1),
                          title="t"))
    assert "no data" in empty and "<polyline" not in empty
    assert 'class="spark empty"' in str(svg.sparkline([None, None]))
    single = str(svg.sparkline([None, 40.0, None]))
    assert "<circle" in single and "<polyline" not in single  # one point: a dot
