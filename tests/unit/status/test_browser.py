"""The status page in a real browser: Debian's headless chromium driven by selenium
through Debian's chromedriver (both from apt: nothing is downloaded at run time, so
selenium-manager is never asked), against the service served by uvicorn.

Checks what only a browser can: the page renders with its stylesheet, the chart's
SVG has points, the failing provider is visibly marked (its computed colours), the
hostile banner ran no script, and the console has no error (CSP violations, a
missing resource). Screenshots are kept under test-artifacts/ (TEST_ARTIFACTS).

Without chromium the test skips on a developer's machine and fails under CI=true.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.receive import ReceiveOptions
from monitor.service.context import AppContext
from monitor.service.serve import service_app
from tests.asgi_server import serve_app
from tests.unit.status.conftest import PROVIDERS, READ, TOKENS
from tests.unit.status.seed import NOW, config

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[3] / "test-artifacts"))
# Ports chromium refuses as unsafe (net/base/port_util.cc) include 10080 and 6000-6669;
# serve_app binds port 0, which Linux picks from the ephemeral range (32768 and up).
LOWEST_SAFE_EPHEMERAL = 32768


def _driver() -> Any:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = ("the browser test needs Debian's chromium and chromium-driver "
                   "(scripts/install-system-deps.sh test installs them)")
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1200",
                     "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium-manager (which would download one) is not run.
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                            options=options)


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # Should selenium consult selenium-manager anyway, it may not download anything.
    monkeypatch.setenv("SE_OFFLINE", "true")
    driver = _driver()
    try:
        yield driver
    finally:
        driver.quit()


def _console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def _screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height, 600), 4000))
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), path
    return path


def _front_page(driver: Any, base: str) -> dict[str, Any]:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/")
    assert driver.title == "Delivery Monitor — status"
    rows = {r.get_attribute("id"): r for r in
            driver.find_elements(By.CSS_SELECTOR, "table.providers tr.provider")}
    assert set(rows) == {f"provider-{name}" for name in PROVIDERS}
    broken, good = rows["provider-broken"], rows["provider-good"]
    label = broken.find_element(By.CSS_SELECTOR, ".state")
    seen = {
        "broken_label": label.text,
        "broken_label_colour": label.value_of_css_property("background-color"),
        "broken_row": broken.value_of_css_property("background-color"),
        "good_row": good.value_of_css_property("background-color"),
        "broken_reply": broken.find_element(By.CSS_SELECTOR, ".reply").text,
        "sparklines": len(driver.find_elements(By.CSS_SELECTOR, "svg.spark polyline")),
    }
    try:
        driver.switch_to.alert  # noqa: B018 - raises when no script ran alert()
        seen["alert"] = True
    except NoAlertPresentException:
        seen["alert"] = False
    seen["errors"] = _console_errors(driver)
    seen["screenshot"] = _screenshot(driver, "status-front-page")
    return seen


def _provider_page(driver: Any, base: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    driver.set_window_size(1400, 1200)
    driver.get(f"{base}/providers/broken")
    lines = driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline.series")
    points = [len((line.get_attribute("points") or "").split()) for line in lines]
    chart = driver.find_element(By.CSS_SELECTOR, "svg.chart")
    return {
        "heading": driver.find_element(By.TAG_NAME, "h1").text,
        "points": points,
        "chart_size": (chart.size["width"], chart.size["height"]),
        "banner": driver.find_element(By.CSS_SELECTOR, ".banner code").text,
        "open_incidents": len(driver.find_elements(By.CSS_SELECTOR, "table.incidents tr.open")),
        "errors": _console_errors(driver),
        "screenshot": _screenshot(driver, "status-provider-page"),
    }


async def _serve(tmp_path: Path, seeded_db: str, status_page: str) -> tuple[Any, AppContext]:
    copy = tmp_path / "browser.db"
    shutil.copy(seeded_db, copy)
    ctx = AppContext.create(config(*PROVIDERS, status_page=status_page),
                            f"sqlite+aiosqlite:///{copy}")
    ctx.clock = lambda: NOW
    return service_app(ctx, TOKENS, ReceiveOptions(data_dir=tmp_path)), ctx


async def test_the_pages_in_headless_chromium(browser: Any, seeded_db: str,
                                              tmp_path: Path) -> None:
    app, ctx = await _serve(tmp_path, seeded_db, "public")
    try:
        async with serve_app(app) as base:
            assert int(base.rsplit(":", 1)[1]) >= LOWEST_SAFE_EPHEMERAL
            front = await asyncio.to_thread(_front_page, browser, base)
            provider = await asyncio.to_thread(_provider_page, browser, base)
    finally:
        await ctx.close()
    assert front["errors"] == [] and provider["errors"] == []
    assert front["alert"] is False  # the <script> in the banner and reply stayed text
    assert front["broken_label"] == "down"
    assert front["broken_label_colour"] == "rgba(198, 40, 40, 1)"  # --down
    assert front["broken_row"] == "rgba(253, 236, 234, 1)"  # the failing row is tinted
    assert front["good_row"] == "rgba(0, 0, 0, 0)"
    assert "<script>alert(3)</script>" in front["broken_reply"]  # shown, as text
    assert front["sparklines"] == len(PROVIDERS)
    assert provider["heading"] == "broken down"
    assert len(provider["points"]) >= 3 and min(provider["points"]) >= 1
    assert max(provider["points"]) >= 20  # the 24-hour chart: a point per run
    assert provider["chart_size"][0] > 300 and provider["chart_size"][1] > 100
    assert provider["banner"].startswith('<script>alert("banner")</script>')
    assert provider["open_incidents"] == 1
    for shot in (front["screenshot"], provider["screenshot"]):
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _sign_in(driver: Any, base: str) -> tuple[str, str, list[str]]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.wait import WebDriverWait

    driver.get(f"{base}/providers/good")
    heading = driver.find_element(By.TAG_NAME, "h1")
    asked = heading.text
    driver.find_element(By.NAME, "token").send_keys(READ)
    driver.find_element(By.CSS_SELECTOR, "form button").click()
    # The sign-in page's heading goes with it: read the next page's, not that one.
    WebDriverWait(driver, 10).until(staleness_of(heading))
    return asked, driver.find_element(By.TAG_NAME, "h1").text, _console_errors(driver)


async def test_signing_in_with_a_read_token_in_the_browser(browser: Any, seeded_db: str,
                                                           tmp_path: Path) -> None:
    app, ctx = await _serve(tmp_path, seeded_db, "token")
    try:
        async with serve_app(app) as base:
            asked, landed, errors = await asyncio.to_thread(_sign_in, browser, base)
    finally:
        await ctx.close()
    assert asked == "Sign in"
    assert landed == "good up"  # back on the page it asked for, with the cookie
    # The 401 of the first load is the only console line chromium writes.
    assert all("401" in e for e in errors), errors
