"""SQLModel tables: provider state, runs and their steps, receive results,
pending tokens, events, the webhook outbox, and slot claims.

Rich documents (a whole ProbeResult, an event's data) are JSON columns; the
columns beside them are what queries filter and sort on. Time columns are
timezone-aware UTC. A subscription's url, secrets and routing key are encrypted
at rest (monitor.store.crypto) and read back as plaintext; nothing filters on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from monitor.store.crypto import EncryptedString, EncryptedStringList


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC in and out. SQLite keeps no offset and hands back naive values;
    storing UTC and re-attaching it on read makes both databases behave alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store keeps aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None,
                             dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class EncodedJSON(sa.TypeDecorator[str]):
    """A JSON column's value bound already encoded, for a statement's bindparam.

    A run's stored result is its largest document: pydantic encodes it to JSON text
    in one call (model_dump_json, in Rust), where `sa.JSON` would json.dumps the dict
    of a model_dump, about a sixth of the writer's CPU a run. Read back as JSON.
    """

    impl = sa.JSON
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> None:
        return None  # the text goes to the driver as it is (asyncpg's json codec takes str)


def _ts(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


def _json(**kwargs: Any) -> Any:
    return Field(sa_type=sa.JSON, **kwargs)


class ProviderStateRow(SQLModel, table=True):
    __tablename__ = "provider_state"

    provider: str = Field(primary_key=True, max_length=64)
    state: dict[str, Any] = _json(default_factory=dict)
    last_run_id: str | None = Field(default=None, max_length=32)
    # The provider's list entry, kept ready (store.runs.save_state): the state in brief
    # and the last run in brief (monitor.probe.summary.RunSummary).
    summary: dict[str, Any] | None = _json(default=None)
    updated_at: datetime = _ts()


class RunRow(SQLModel, table=True):
    __tablename__ = "run"
    # (provider, id): a provider's newest runs, in id (= time) order, without a sort.
    __table_args__ = (sa.Index("ix_run_provider_id", "provider", "id"),
                      sa.Index("ix_run_started", "started_at"))

    id: str = Field(primary_key=True, max_length=32)
    provider: str = Field(max_length=64)
    started_at: datetime = _ts()
    duration_ms: float
    ok: bool
    failed_step: str | None = Field(default=None, max_length=16)
    failure_class: str | None = Field(default=None, max_length=16)
    slot: int | None = Field(default=None, sa_type=sa.BigInteger)  # None: run on demand
    result: dict[str, Any] = _json()


class PendingTokenRow(SQLModel, table=True):
    """A sent message the receive side has not resolved yet."""

    __tablename__ = "pending_token"

    token: str = Field(primary_key=True, max_length=64)
    mailbox: str = Field(primary_key=True, max_length=64)
    run_id: str = Field(max_length=32)
    provider: str = Field(max_length=64)
    accepted_at: datetime = _ts()
    deadline: datetime = _ts(index=True)
    claimed_until: datetime | None = _ts(default=None)


class ReceiveResultRow(SQLModel, table=True):
    __tablename__ = "receive_result"

    token: str = Field(primary_key=True, max_length=64)
    mailbox: str = Field(primary_key=True, max_length=64)
    run_id: str = Field(max_length=32, index=True)
    provider: str = Field(max_length=64)
    checked_at: datetime = _ts(index=True)
    arrived: bool
    placement: str | None = Field(default=None, max_length=16)
    latency_ms: float | None = None
    result: dict[str, Any] = _json()


class EventRow(SQLModel, table=True):
    __tablename__ = "event"
    __table_args__ = (sa.Index("ix_event_provider_ts", "provider", "timestamp"),)

    id: str = Field(primary_key=True, max_length=32)
    type: str = Field(max_length=40, index=True)
    provider: str | None = Field(default=None, max_length=64)
    timestamp: datetime = _ts(index=True)
    run_id: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = _json(default_factory=dict)


class SubscriptionRow(SQLModel, table=True):
    __tablename__ = "subscription"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=16)
    # A Slack or webhook URL is a credential too: all three are Fernet tokens on disk.
    url: str | None = Field(default=None, sa_type=EncryptedString)
    # Standard Webhooks secrets, newest first; older ones sign until `rotated_until`.
    secrets: list[str] = Field(default_factory=list, sa_type=EncryptedStringList)
    rotated_until: datetime | None = _ts(default=None)
    routing_key: str | None = Field(default=None, sa_type=EncryptedString)
    events: list[str] = _json(default_factory=lambda: ["*"])
    providers: list[str] = _json(default_factory=lambda: ["*"])
    enabled: bool = True
    disabled_reason: str | None = None
    source: str = Field(default="api", max_length=8)  # "config" or "api"
    created_at: datetime = _ts()


class DeliveryRow(SQLModel, table=True):
    """One event for one subscriber: the outbox. Written with the event, claimed by a worker."""

    __tablename__ = "delivery"
    __table_args__ = (sa.Index("ix_delivery_due", "status", "next_attempt_at", "id"),
                      sa.Index("ix_delivery_created_at", "created_at"))

    id: str = Field(primary_key=True, max_length=32)
    event_id: str = Field(
        sa_column=sa.Column(sa.String(32), sa.ForeignKey("event.id"), nullable=False,
                            index=True))
    subscription_id: str = Field(max_length=32, index=True)
    status: str = Field(default="pending", max_length=16)  # pending|delivered|dead|disabled
    attempts: int = 0
    # `attempts` when last replayed: the retry schedule counts from here (history kept).
    schedule_start: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    next_attempt_at: datetime = _ts()
    claimed_until: datetime | None = _ts(default=None)
    claimed_by: str | None = Field(default=None, max_length=64)
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime = _ts()
    delivered_at: datetime | None = _ts(default=None)


class DeliveryAttemptRow(SQLModel, table=True):
    __tablename__ = "delivery_attempt"

    delivery_id: str = Field(
        sa_column=sa.Column(sa.String(32), sa.ForeignKey("delivery.id", ondelete="CASCADE"),
                            primary_key=True))
    attempt: int = Field(primary_key=True)
    at: datetime = _ts()
    status: int | None = None
    latency_ms: float
    outcome: str = Field(max_length=16)
    response: str | None = None  # first KB of the response body, or the error
    worker: str | None = Field(default=None, max_length=64)


class SlotClaimRow(SQLModel, table=True):
    """(provider, slot) inserted by the one replica that runs that slot."""

    __tablename__ = "slot_claim"
    __table_args__ = (sa.Index("ix_slot_claim_claimed_at", "claimed_at"),
                      sa.Index("ix_slot_claim_open", "done", "lease_until"))

    provider: str = Field(primary_key=True, max_length=64)
    slot: int = Field(primary_key=True, sa_type=sa.BigInteger)
    claimed_by: str = Field(max_length=64)
    claimed_at: datetime = _ts()
    # Past this, a claim whose run is not recorded (`done`) may be taken over.
    lease_until: datetime | None = _ts(default=None)
    done: bool = Field(default=False, sa_column_kwargs={"server_default": sa.true()})


class CheckRow(SQLModel, table=True):
    """A pre-campaign check and its report (the API issue fills it in)."""

    __tablename__ = "campaign_check"
    __table_args__ = (sa.Index("ix_campaign_check_created_at", "created_at"),
                      sa.Index("ix_campaign_check_open", "finished_at", "lease_until"))

    id: str = Field(primary_key=True, max_length=32)
    status: str = Field(default="pending", max_length=16)
    created_at: datetime = _ts()
    finished_at: datetime | None = _ts(default=None)
    request: dict[str, Any] = _json(default_factory=dict)
    report: dict[str, Any] = _json(default_factory=dict)
    # The replica running it renews this; past it, another takes the check over.
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = _ts(default=None)


class PaceRow(SQLModel, table=True):
    """When a paced destination (a Slack webhook URL) may next be sent to, by any replica."""

    __tablename__ = "pace"

    key: str = Field(primary_key=True, max_length=64)  # sha256 of the URL: no credential here
    next_at: datetime = _ts()


class InboundMessageRow(SQLModel, table=True):
    """A message posted to /inbound/{mailbox}, kept where every replica's poller sees it."""

    __tablename__ = "inbound_message"
    __table_args__ = (sa.Index("ix_inbound_message_mailbox_token", "mailbox", "token"),
                      sa.Index("ix_inbound_message_received_at", "received_at"))

    id: str = Field(primary_key=True, max_length=32)
    mailbox: str = Field(max_length=64)
    token: str | None = Field(default=None, max_length=64)
    received_at: datetime = _ts()
    raw: bytes = Field(sa_type=sa.LargeBinary)


class ReplicaRow(SQLModel, table=True):
    """A running replica, as of its last heartbeat."""

    __tablename__ = "replica"

    name: str = Field(primary_key=True, max_length=64)
    last_seen: datetime = _ts()


class DomainPostureRow(SQLModel, table=True):
    """A sending domain's posture as of its last check (monitor/events/domain.py's
    PostureState), with a version that each update bumps: the compare-and-set that
    lets only one writer turn one change into events."""

    __tablename__ = "domain_posture"

    domain: str = Field(primary_key=True, max_length=253)
    state: dict[str, Any] = _json(default_factory=dict)
    version: int = 1
    checked_at: datetime = _ts()
class HourlyRollupRow(SQLModel, table=True):
    """One provider's hour: what the status page's uptime, latency and badges read.

    Written in the transaction that records each run or receive result
    (monitor.store.rollups); kept 400 days, longer than the raw runs.
    """

    __tablename__ = "hourly_rollup"
    __table_args__ = (sa.Index("ix_hourly_rollup_hour", "hour"),)

    provider: str = Field(primary_key=True, max_length=64)
    hour: datetime = _ts(primary_key=True)  # the start of the UTC hour
    runs: int = 0
    ok: int = 0
    failed: int = 0
    failures: dict[str, int] = _json(default_factory=dict)  # failure class -> runs
    # Counts over monitor.status.histogram's fixed buckets, sparse ({"index": count}):
    # they add up across hours.
    probe_ms: dict[str, int] = _json(default_factory=dict)
    receive_ms: dict[str, int] = _json(default_factory=dict)
    delivery: dict[str, int] = _json(default_factory=dict)  # ok | late | junk | missing
