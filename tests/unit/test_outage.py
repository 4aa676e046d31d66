"""DatabaseOutage: one line when the database goes, one a minute while away, one when back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy.exc

from monitor.service.outage import DatabaseOutage, unreachable

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REFUSED = sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused"))


def test_a_long_outage_is_one_line_a_minute_with_counts(
        caplog: pytest.LogCaptureFixture) -> None:
    now = T0
    outage = DatabaseOutage(lambda: now)
    with caplog.at_level(logging.INFO, logger="monitor.database"):
        for second in range(150):  # a slot and an outbox pass each second for 2.5 minutes
            now = T0 + timedelta(seconds=second)
            outage.failed("slot", REFUSED)
            outage.failed("outbox pass", REFUSED)
        assert outage.down
        now = T0 + timedelta(seconds=150)
        outage.reached()
        outage.reached()  # already up: nothing more
    actions = [getattr(r, "action", None) for r in caplog.records]
    assert actions == ["database_down", "database_still_down", "database_still_down",
                       "database_back"]
    assert caplog.records[1].failed == {"slot": 60, "outbox pass": 60}  # type: ignore[attr-defined]
    back = caplog.records[-1]
    assert back.failed == {"slot": 150, "outbox pass": 150}  # type: ignore[attr-defined]
    assert back.down_seconds == 150.0  # type: ignore[attr-defined]
    assert all(r.exc_info is None for r in caplog.records)
    assert "SELECT 1" not in caplog.text or "[SQL" not in caplog.text
    assert not outage.down


def test_only_connection_failures_count_as_an_outage() -> None:
    assert unreachable(REFUSED)
    assert unreachable(ConnectionRefusedError(111, "refused"))
    assert unreachable(sqlalchemy.exc.InterfaceError("x", {}, Exception("connection is closed")))
    assert not unreachable(sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("dup")))
    assert not unreachable(ValueError("a bug"))
    import asyncpg

    starting = asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
    assert unreachable(starting)  # no "Connection" in its name: known by its SQLSTATE 57P03
    assert not unreachable(asyncpg.exceptions.QueryCanceledError("canceled"))
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = ConnectionResetError(104, "reset")
    assert unreachable(wrapped)
