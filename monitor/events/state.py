"""What the monitor remembers about a provider between runs.

Persisted as JSON with each run, so a restart resumes exactly where it left
off: thresholds keep counting, an open alert stays open (no re-alert), and a
certificate threshold already announced is not announced again.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Health(StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


class ProviderState(BaseModel):
    model_config = ConfigDict(frozen=True)

    health: Health = Health.UNKNOWN
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    # "step" or "rcpt:<address>" -> [code, enhanced code] of the last run that reached it.
    codes: dict[str, tuple[int | None, str | None]] = {}
    capabilities: tuple[str, ...] | None = None
    degraded: bool = False
    certificate_fingerprint: str | None = None
    certificate_alerted: tuple[int, ...] = ()  # expiry thresholds (days) already announced
    delivery: Health = Health.UNKNOWN
    # Latest verdict per seed mailbox: delivery is up only when every one is good, so
    # one mailbox filing to junk while another receives fine doesn't flap the alert.
    mailboxes: dict[str, bool] = {}
    last_run_id: str | None = None


def brief(state: ProviderState) -> dict[str, object]:
    """The state as a provider list shows it (the API's ProviderSummary fields)."""
    return {"health": state.health.value, "delivery": state.delivery.value,
            "degraded": state.degraded, "consecutive_failures": state.consecutive_failures,
            "codes": {key: code for key, (code, _) in state.codes.items()}}
