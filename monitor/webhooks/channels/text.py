"""Words for people: the headline, the facts a responder reads first, and the tone.

Shared by every channel so they all say the same thing. Reads only `Event`, its type's
declared attributes and the keys event detection puts in `data`
(monitor/events/detect.py); a key that is absent is left out, never rendered as "None".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from monitor.events.model import Event, Severity, present


def clip(value: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when something was cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def markdown_escaper(anywhere: str, line_start: str) -> Callable[[str], str]:
    """A function that makes Markdown literal with backslash escapes (CommonMark §2.4).

    `anywhere`: the characters escaped wherever they are (a regex character class);
    `line_start`: the markers escaped only at the start of a line (a regex alternation;
    an ordered list's `1.` is escaped on its dot, as a digit cannot be escaped).
    """
    chars = re.compile(f"([{anywhere}])")
    markers = re.compile(rf"^(\s*)({line_start})(?=\s)", re.MULTILINE)

    def marker(found: re.Match[str]) -> str:
        lead, mark = found[1], found[2]
        return f"{lead}{mark[:-1]}\\." if mark.endswith(".") else f"{lead}\\{mark}"

    def escape(value: str) -> str:
        return markers.sub(marker, chars.sub(r"\\\1", value))

    return escape


def clip_escaped(value: str, limit: int, escape: Callable[[str], str]) -> str:
    """`escape(value)` in at most `limit` characters, cut in the text before it is escaped
    so that the cut never splits an escape (a lone backslash would escape the ellipsis)."""
    escaped = escape(value)
    if len(escaped) <= limit:
        return escaped
    keep = limit - 1
    while keep > 0:
        cut = escape(value[:keep])
        if len(cut) <= limit - 1:
            return cut + "…"
        keep -= len(cut) - (limit - 1)
    return "…"


def headline(event: Event) -> str:
    """What happened, in one line that starts with the provider (declared per event type)."""
    return event.headline()


class Tone(StrEnum):
    """How a chat message looks at a glance: Slack's emoji, Teams' and Discord's colour."""

    GOOD = "good"  # resolved
    BAD = "bad"  # a failure, or something that turned out bad (a failed check)
    WARNING = "warning"
    INFO = "info"


def tone(event: Event) -> Tone:
    """From the event type's declared attributes (monitor/events/model.py), never its name.

    A type whose severity goes by the failure's class is a failure: red whatever the
    class. A declared warning stays a warning even when its data makes it an error (a
    certificate expiring within a day); an informational type that turned out bad (a
    failed check) is red.
    """
    declared = event.type.severity
    if event.type.resolves:
        return Tone.GOOD
    if declared is None:
        return Tone.BAD
    if declared is Severity.WARNING:
        return Tone.WARNING
    if event.severity in (Severity.ERROR, Severity.CRITICAL):
        return Tone.BAD
    return Tone.INFO


def facts(event: Event) -> list[tuple[str, str]]:
    """Label/value pairs worth a glance, in reading order; empty values left out."""
    d = event.data
    pairs: list[tuple[str, Any]] = [
        ("Step", present(d, "step")),
        ("Code", present(d, "code")),
        ("Enhanced code", present(d, "enhanced_code")),
        ("Class", present(d, "class")),
        ("Mailbox", present(d, "mailbox")),
        ("Placement", present(d, "placement")),
        ("Slow steps", ", ".join(d.get("slow_steps") or ()) or None),
        ("Certificate", present(d, "subject")),
        ("Expires", present(d, "not_after")),
        ("Verdict", present(d, "verdict")),
    ]
    return [(label, str(value)) for label, value in pairs if value is not None]


def diagnosis(event: Event) -> tuple[str | None, str | None]:
    """(summary, next step) from the probe's diagnosis, when the event carries one."""
    found = event.data.get("diagnosis")
    if not isinstance(found, dict):
        return None, None
    summary, action = found.get("summary"), found.get("action")
    return (str(summary) if summary else None, str(action) if action else None)


def details_link(event: Event, public_url: str | None) -> str | None:
    """A link back to this monitor's API for the provider (or the events list)."""
    if not public_url:
        return None
    base = public_url.rstrip("/")
    if event.provider:
        return f"{base}/v1/providers/{event.provider}"
    return f"{base}/v1/events"
