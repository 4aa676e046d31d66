"""What the probe and the receive side share: the frozen model base, the failure
classes, a diagnosis, and the header the probe's token travels in.

Small on purpose: `monitor.probe` and `monitor.receive` both import it, and
neither imports the other (ids are in `monitor.ids`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

# The probe message carries its token here and in its body; the receive side matches it.
TOKEN_HEADER = "X-Delivery-Monitor-Token"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FailureClass(StrEnum):
    """Why a step failed, and so whether retrying can help (DESIGN.md table)."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    AUTH = "auth"
    TLS = "tls"
    NETWORK = "network"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    DELIVERY = "delivery"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {FailureClass.TRANSIENT, FailureClass.NETWORK, FailureClass.TIMEOUT, FailureClass.DELIVERY}
)


class Diagnosis(Frozen):
    """One line on what went wrong, and one on what to do about it."""

    summary: str
    action: str
    retry: bool
