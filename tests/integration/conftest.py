"""Fixtures for the integration tests: a real postfix + dovecot on loopback.

Every test under tests/integration is marked ``integration``, so
``pytest -m "not integration"`` runs the unit tests alone.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest

from tests.databases import postgres_database
from tests.integration.mailstack import MailStack, MailStackError, log_tail, missing_binaries

HERE = Path(__file__).parent
_LOG_TAIL_LINES = 40


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The hook sees the whole session's items; mark only the ones below here.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # The daemons' own logs usually explain a failure better than the client does.
    stack = getattr(item, "funcargs", {}).get("mailstack")
    if report.failed and isinstance(stack, MailStack):
        for log in (stack.postfix_log, stack.dovecot_log):
            report.sections.append(
                (f"{log.name} (last {_LOG_TAIL_LINES} lines)", log_tail(log, _LOG_TAIL_LINES))
            )
    return report


@pytest.fixture(scope="session")
def mailstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailStack]:
    """One postfix + dovecot stack shared by the whole session.

    Tests that change it (users, access map, stopping postfix) must put it back.
    """
    missing = missing_binaries()
    if missing:
        pytest.fail(
            f"integration tests need postfix and dovecot ({', '.join(missing)} not found): "
            "run scripts/install-system-deps.sh",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail(
            "integration tests start postfix and dovecot and must run as root", pytrace=False
        )
    stack = MailStack(tmp_path_factory.mktemp("mailstack"))
    try:
        stack.start()
    except MailStackError as exc:
        stack.cleanup()
        pytest.fail(f"could not start the mail stack: {exc}", pytrace=False)
    try:
        yield stack
    finally:
        try:
            stack.stop()
        finally:
            stack.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database: a SQLite file, then a PostgreSQL database (the store's two)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}"
    else:
        async with postgres_database() as pg_url:
            yield pg_url

