"""The status pages from a seeded database: status codes, content types, escaping of
what servers said, no secret anywhere, and the three access modes."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.unit.status.conftest import ADMIN, READ, Site

SECRETS = ("hunter2", "hunter3", "whsec_", "secret-path", READ, ADMIN)


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]


def assert_clean(body: str) -> None:
    """Nothing a server said became markup, and no secret is on the page: the parsed
    document has no script or img element and no event-handler attribute at all."""
    parsed = _Markup()
    parsed.feed(body)
    assert not {"script", "img", "iframe"} & parsed.tags
    assert parsed.handlers == []  # also no <svg onload> from a certificate subject
    for secret in SECRETS:
        assert secret not in body, secret


async def test_the_front_page_lists_every_provider_with_its_state(site: Site) -> None:
    async with site(status_page="public") as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src" not in response.headers["content-security-policy"]  # none at all
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-cache"
    body = response.text
    assert_clean(body)
    rows = dict(re.findall(r'<tr class="provider state-([a-z-]+)" id="provider-(\w+)"', body))
    assert {v: k for k, v in rows.items()} == {
        "good": "up", "broken": "down", "junky": "delivery-failing"}
    # The failing step, code, reply (escaped) and diagnosis of the broken provider.
    broken = body[body.index('id="provider-broken"'):body.index('id="provider-junky"')]
    assert "rcpt 550 5.1.1" in broken and "(permanent)" in broken
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in broken
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in broken
    assert "RCPT rejected with 550 5.1.1" in broken
    # Uptime windows: good is 100 % over the 24 hours it was observed of 24.
    good = body[body.index('id="provider-good"'):body.index('id="provider-broken"')]
    assert good.count(">100%<") == 4
    assert "% observed" in good  # 7 d, 30 d and 90 d saw only two days of runs
    assert 'class="spark"' in good and "<polyline" in good
    assert "42 d" in good  # certificate days left
    # Delivery health per subscription, without its URL or secret.
    assert "ops-hook" in body and "generic" in body
    junky = body[body.index('id="provider-junky"'):]
    assert "the last test message to seed was late, missing or in junk" in junky


async def test_the_provider_page_has_charts_timeline_incidents_and_arrivals(
        site: Site) -> None:
    async with site(status_page="public") as client:
        response = await client.get("/providers/broken")
        junky = await client.get("/providers/junky")
        missing = await client.get("/providers/nobody")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/html")
    body = response.text
    assert_clean(body)
    assert "&lt;script&gt;alert(&#34;banner&#34;)&lt;/script&gt;" in body  # the banner
    assert "CN=&lt;svg onload=alert(5)&gt;,O=&#34;&gt;&lt;script&gt;" in body  # certificate
    charts = re.findall(r'<svg class="chart".*?</svg>', body, re.S)
    assert len(charts) == 3
    points = re.findall(r'<polyline class="series run" points="([^"]+)"', charts[0])
    assert points and len(points[0].split()) >= 20  # a point per run of the last day
    assert 'class="series p95"' in charts[1]
    # Two incidents: one recovered after 3 hours, one still open.
    incidents = body[body.index('<table class="incidents">'):]
    incidents = incidents[:incidents.index("</table>")]
    assert incidents.count('<tr class="open">') == 1
    assert incidents.count('<tr class="closed">') == 1 and "3 h" in incidents
    assert "rcpt" in incidents and "550 5.1.1" in incidents and "permanent" in incidents
    assert junky.status_code == 200
    assert_clean(junky.text)
    assert "Junk&#34;&gt;&lt;img src=x onerror=alert(4)&gt;" in junky.text  # folder name
    assert '<td class="verdict verdict-fail">fail</td>' in junky.text  # DMARC
    assert missing.status_code == 404


async def test_incidents_across_providers(site: Site) -> None:
    async with site(status_page="public") as client:
        response = await client.get("/incidents")
    assert response.status_code == 200
    assert_clean(response.text)
    assert response.text.count('href="/providers/broken"') == 2
    assert response.text.count('href="/providers/junky"') == 1  # delivery, still open


async def test_token_mode_asks_for_a_token_and_takes_bearer_or_cookie(site: Site) -> None:
    async with site(status_page="token") as client:
        anonymous = await client.get("/providers/good")
        wrong = await client.get("/", headers={"Authorization": "Bearer not-a-token-at-all"})
        bearer = await client.get("/", headers={"Authorization": f"Bearer {READ}"})
        badge = await client.get("/badge/good/status.svg")
        refused = await client.post("/status/sign-in", data={"token": "nope", "next": "/"})
        signed = await client.post("/status/sign-in",
                                   data={"token": READ, "next": "/providers/good"})
        with_cookie = await client.get("/providers/good")
        badge_with_cookie = await client.get("/badge/good/status.svg")
    assert anonymous.status_code == 401 and 'name="token"' in anonymous.text
    assert 'name="next" value="/providers/good"' in anonymous.text
    assert wrong.status_code == 401
    assert bearer.status_code == 200 and "provider-good" in bearer.text
    assert bearer.headers["cache-control"] == "private, no-store"
    assert badge.status_code == 401 and badge.headers["www-authenticate"] == "Bearer"
    assert refused.status_code == 401 and "not valid" in refused.text
    assert READ not in refused.text and "nope" not in refused.text
    assert signed.status_code == 303 and signed.headers["location"] == "/providers/good"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # served over http here; https gets Secure
    assert with_cookie.status_code == 200 and "Sign out" in with_cookie.text
    assert_clean(with_cookie.text)
    assert badge_with_cookie.status_code == 200


@pytest.mark.parametrize("target", ["//evil.test/", "https://evil.test/", "/\\evil.test"])
async def test_sign_in_only_returns_to_this_site(site: Site, target: str) -> None:
    async with site(status_page="token") as client:
        response = await client.post("/status/sign-in", data={"token": READ, "next": target})
    assert response.status_code == 303 and response.headers["location"] == "/"


async def test_off_serves_nothing(site: Site) -> None:
    async with site(status_page="off") as client:
        for path in ("/", "/providers/good", "/incidents", "/badge/good/status.svg",
                     "/status/sign-in", "/static/status.css"):
            response = await client.get(path, headers={"Authorization": f"Bearer {READ}"})
            assert response.status_code == 404, path
        assert (await client.get("/healthz")).status_code == 200  # the rest is unchanged


async def test_the_stylesheet_is_package_data(site: Site) -> None:
    async with site(status_page="public") as client:
        response = await client.get("/static/status.css")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/css")
    assert ".state-down" in response.text


async def test_the_default_is_token(site: Site) -> None:
    async with site() as client:
        response = await client.get("/")
    assert response.status_code == 401


def test_autoescape_is_on_for_every_template_name() -> None:
    from monitor.status.routes import environment

    env = environment()
    assert env.autoescape is True  # not select_autoescape: no extension escapes it off
    assert set(env.list_templates()) >= {"index.html", "provider.html", "incidents.html"}


async def test_a_provider_without_any_run_yet(site: Site) -> None:
    async with site(status_page="public", extra=("fresh",)) as client:
        front = await client.get("/")
        page = await client.get("/providers/fresh")
        badge = await client.get("/badge/fresh/uptime/30d.json")
        latency = await client.get("/badge/fresh/latency.json")
    row = front.text[front.text.index('id="provider-fresh"'):]
    assert 'data-state="unknown"' in front.text and "never" in row[:2000]
    assert page.status_code == 200 and "No runs recorded yet." in page.text
    assert page.text.count(">no data</text>") == 3  # the three charts
    assert badge.json()["message"] == "no data" and badge.json()["color"] == "lightgrey"
    assert latency.json()["message"] == "no data"
