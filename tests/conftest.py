"""Fixtures for every test: the secret key every test database is encrypted with."""

from __future__ import annotations

import pytest

# A fixed Fernet key: PostgreSQL needs MONITOR_SECRET_KEY, as in production, and
# replicas under test must share it.
TEST_SECRET_KEY = "dGVzdC1rZXktZm9yLWRlbGl2ZXJ5LW1vbml0b3IhISE="


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test's databases use TEST_SECRET_KEY; tests of the key file unset it."""
    monkeypatch.setenv("MONITOR_SECRET_KEY", TEST_SECRET_KEY)
    return TEST_SECRET_KEY
