"""Badges from the seeded database: SVG and shields.io JSON, cacheable with ETags."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from monitor.status.badges import GREEN, RED, Badge
from tests.unit.status.conftest import READ, Site

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


async def test_status_badges_say_up_and_down(site: Site) -> None:
    async with site(status_page="public") as client:
        good = await client.get("/badge/good/status.svg")
        broken = await client.get("/badge/broken/status.svg")
        junky = await client.get("/badge/junky/status.json")
    assert good.status_code == 200 and good.headers["content-type"] == "image/svg+xml"
    assert texts(good.text) == ["good", "up"] and GREEN in good.text
    assert texts(broken.text) == ["broken", "down"] and RED in broken.text
    assert good.headers["cache-control"] == "public, max-age=60"
    assert good.headers["content-security-policy"].startswith("default-src 'none'")
    assert junky.json() == {"schemaVersion": 1, "label": "junky",
                            "message": "delivery failing", "color": "orange"}


@pytest.mark.parametrize("window", ["24h", "7d", "30d", "90d", "1y"])
async def test_uptime_badges_for_every_window(site: Site, window: str) -> None:
    # broken: 6 failed runs of 48 over two days (42/48), 3 of them in the last day (21/24).
    message = "87.50%"
    async with site(status_page="public") as client:
        response = await client.get(f"/badge/broken/uptime/{window}.svg")
        shields = await client.get(f"/badge/broken/uptime/{window}.json")
    assert response.status_code == 200
    assert texts(response.text) == [f"broken uptime {window}", message]
    assert shields.json()["message"] == message and shields.json()["color"] == "red"


async def test_unknown_windows_providers_and_formats_are_404(site: Site) -> None:
    async with site(status_page="public") as client:
        for path in ("/badge/good/uptime/2d.svg", "/badge/nobody/status.svg",
                     "/badge/good/status.png"):
            assert (await client.get(path)).status_code == 404, path


async def test_latency_badge_and_the_shields_endpoint(site: Site) -> None:
    async with site(status_page="public") as client:
        latency = await client.get("/badge/good/latency.svg")
        shields = await client.get("/badge/good/shields.json")
    assert texts(latency.text)[0] == "good p95 24h"
    assert texts(latency.text)[1].endswith(" ms")
    assert 130 <= int(texts(latency.text)[1].split()[0]) <= 150  # runs of 100..140 ms
    assert shields.json() == {"schemaVersion": 1, "label": "good", "message": "up",
                              "color": "brightgreen"}


async def test_etag_and_if_none_match(site: Site) -> None:
    async with site(status_page="token") as client:
        auth = {"Authorization": f"Bearer {READ}"}
        first = await client.get("/badge/good/uptime/7d.svg", headers=auth)
        tag = first.headers["etag"]
        again = await client.get("/badge/good/uptime/7d.svg",
                                 headers={**auth, "If-None-Match": f'"other", {tag}'})
        changed = await client.get("/badge/good/uptime/7d.svg",
                                   headers={**auth, "If-None-Match": '"stale"'})
    assert first.headers["cache-control"] == "private, max-age=60"  # behind a token
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    assert changed.status_code == 200 and changed.headers["etag"] == tag


def test_badge_text_is_escaped() -> None:
    svg = Badge("<x>", '"><script>', GREEN).svg()
    assert "<script>" not in svg and texts(svg) == ["<x>", '"><script>']
