"""GET /v1/providers: a summary per provider, pages by name, ETag and 304."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from monitor.api import EXCEPTION_HANDLERS, Tokens, api_routes
from monitor.api.schemas import ProviderList
from monitor.config import Config
from monitor.ids import new_id
from monitor.probe.result import Certificate, Diagnosis, ProbeResult, Step, StepResult, TlsInfo
from monitor.receive import ReceiveOptions
from monitor.results import FailureClass
from monitor.service.app import create_app
from monitor.service.context import AppContext
from monitor.service.probing import record
from monitor.store.db import migrate
from tests.unit.test_detect import NOW

READ = "read-token-provider-list-0123456789"
PROVIDERS = 120


def _result(name: str, ok: bool) -> ProbeResult:
    steps = [StepResult(step=Step.CONNECT, command="connect", code=220, text="x" * 2000),
             StepResult(step=Step.EHLO, command="EHLO t.test", code=250, text="y" * 3000)]
    if not ok:
        steps.append(StepResult(step=Step.MAIL, command="MAIL FROM:<a@t.test>", code=451,
                                enhanced_code="4.7.1", ok=False, text="z" * 4000,
                                failure_class=FailureClass.TRANSIENT))
    return ProbeResult(
        run_id=new_id("r"), provider=name, host="127.0.0.1", port=25, tls_mode="none",
        mode="send", started_at=NOW, duration_ms=42.123, ok=ok, steps=tuple(steps),
        tls=TlsInfo(verified=True, certificate=Certificate(
            subject="CN=x", issuer="CN=ca", not_after=NOW + timedelta(days=30))),
        failed_step=None if ok else Step.MAIL,
        failure_class=None if ok else FailureClass.TRANSIENT,
        diagnosis=None if ok else Diagnosis(summary="greylisted " + "w" * 500,
                                            action="wait", retry=True))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    config = Config.model_validate({"providers": [
        {"name": f"p{i:04d}", "host": "127.0.0.1", "port": 25, "helo": "t.test"}
        for i in reversed(range(PROVIDERS))]})
    ctx = AppContext.create(config, f"sqlite+aiosqlite:///{tmp_path / 'db'}")
    await migrate(ctx.engine)
    for i, provider in enumerate(config.providers):
        if i % 5:  # one in five never ran
            await record(ctx, provider, _result(provider.name, ok=i % 7 != 0))
    app = create_app(ctx, routes=api_routes(ctx, Tokens.parse(f"{READ}:read", "test"),
                                            ReceiveOptions()), schedule=False,
                     exception_handlers=EXCEPTION_HANDLERS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"Authorization": f"Bearer {READ}"}) as client:
        yield client
    await ctx.close()


async def test_pages_list_every_provider_once_by_name_in_under_a_kilobyte_each(
        client: httpx.AsyncClient) -> None:
    names: list[str] = []
    cursor = None
    pages = 0
    while True:
        response = await client.get("/v1/providers", params={
            "limit": 50, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        ProviderList.model_validate(body)  # the documented shape, no key more or less
        pages += 1
        for item in body["items"]:
            assert len(json.dumps(item)) <= 1024, item
        names += [item["name"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3  # 120 / 50
    assert names == sorted(f"p{i:04d}" for i in range(PROVIDERS))


async def test_a_summary_carries_state_codes_and_the_failing_step(
        client: httpx.AsyncClient) -> None:
    items = {i["name"]: i for i in (await client.get("/v1/providers?limit=1000")).json()["items"]}
    never = items[f"p{PROVIDERS - 1:04d}"]  # config index 0 never ran
    assert never["health"] == "unknown" and never["last_run"] is None and never["codes"] == {}
    failing = items[f"p{PROVIDERS - 1 - 7:04d}"]  # config index 7
    assert failing["health"] != "up"
    last = failing["last_run"]
    assert (last["failed_step"], last["code"], last["enhanced_code"]) == ("mail", 451, "4.7.1")
    assert last["failure_class"] == "transient"
    assert last["diagnosis"].startswith("greylisted") and len(last["diagnosis"]) <= 160
    assert failing["codes"]["connect"] == 220 and failing["codes"]["mail"] == 451
    good = items[f"p{PROVIDERS - 2:04d}"]
    assert good["health"] == "up" and good["last_run"]["ok"] is True
    assert good["last_run"]["certificate_not_after"].startswith(
        (NOW + timedelta(days=30)).date().isoformat())
    # The whole result, with every step's text, is one provider's own page.
    full = (await client.get(f"/v1/providers/{failing['name']}")).json()
    assert len(full["last_result"]["steps"]) == 3


async def test_an_etag_answers_304_until_something_changes(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/providers?limit=10")
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = await client.get("/v1/providers?limit=10", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    listed = await client.get("/v1/providers?limit=10",
                              headers={"If-None-Match": f'"other", W/{tag}'})
    assert listed.status_code == 304
    other_page = await client.get("/v1/providers?limit=11", headers={"If-None-Match": tag})
    assert other_page.status_code == 200 and other_page.headers["etag"] != tag


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "cursor=%%%"])
async def test_bad_paging_is_400(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/v1/providers?{query}")
    assert response.status_code == 400
