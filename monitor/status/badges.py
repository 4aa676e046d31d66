"""Badges: small flat SVGs for a README or a wiki, and shields.io's endpoint JSON.

The SVG follows the shields.io "flat" look (label on grey, message on a colour).
Text width is estimated from a per-character average for Verdana 11 px, the font
shields uses, since there is no font metrics library at hand and a badge only
needs its boxes roughly the size of their text. The label and message are ours
(provider names are validated config names) and are escaped all the same.

shields.io endpoint badges: https://shields.io/badges/endpoint-badge
(`{"schemaVersion": 1, "label", "message", "color"}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import escape

from monitor.status.rollup import Uptime

GREEN, YELLOW, ORANGE, RED, GREY = "#4c1", "#dfb317", "#fe7d37", "#e05d44", "#9f9f9f"
_SHIELDS = {GREEN: "brightgreen", YELLOW: "yellow", ORANGE: "orange", RED: "red",
            GREY: "lightgrey"}


@dataclass(frozen=True)
class Badge:
    label: str
    message: str
    color: str  # one of the colours above

    def svg(self) -> str:
        lw, mw = _width(self.label), _width(self.message)
        total = lw + mw
        label, message = escape(self.label), escape(self.message)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" '
            f'role="img" aria-label="{label}: {message}"><title>{label}: {message}</title>'
            f'<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
            f'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
            f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/>'
            f'</clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/>'
            f'<rect x="{lw}" width="{mw}" height="20" fill="{self.color}"/>'
            f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
            f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,'
            f'sans-serif" font-size="11">'
            f'<text x="{lw / 2:.1f}" y="14">{label}</text>'
            f'<text x="{lw + mw / 2:.1f}" y="14">{message}</text></g></svg>')

    def shields(self) -> dict[str, Any]:
        return {"schemaVersion": 1, "label": self.label, "message": self.message,
                "color": _SHIELDS.get(self.color, "lightgrey")}


def _width(text: str) -> int:
    return int(len(text) * 6.8) + 12


STATE_COLORS = {"up": GREEN, "degraded": YELLOW, "delivery failing": ORANGE, "down": RED}


def status_badge(provider: str, state: str) -> Badge:
    return Badge(provider, state, STATE_COLORS.get(state, GREY))


def uptime_badge(provider: str, uptime: Uptime) -> Badge:
    ratio = uptime.ratio
    if ratio is None:
        color = GREY
    elif ratio >= 0.999:
        color = GREEN
    elif ratio >= 0.99:
        color = YELLOW
    elif ratio >= 0.95:
        color = ORANGE
    else:
        color = RED
    return Badge(f"{provider} uptime {uptime.window}", uptime.percent(), color)


def latency_badge(provider: str, p95_ms: float | None) -> Badge:
    if p95_ms is None:
        return Badge(f"{provider} p95 24h", "no data", GREY)
    color = GREEN if p95_ms < 1000 else YELLOW if p95_ms < 5000 else RED
    text = f"{p95_ms / 1000:.1f} s" if p95_ms >= 1000 else f"{p95_ms:.0f} ms"
    return Badge(f"{provider} p95 24h", text, color)
