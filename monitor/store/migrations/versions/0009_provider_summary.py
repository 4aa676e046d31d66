"""each provider's list entry kept ready beside its state

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 23:50:00

`GET /v1/providers` read every provider's whole last result (about 2.4 KB
each) to show a few fields of it; it now serves this entry as stored: the
state in brief and the last run in brief. Existing rows get theirs from their
state and the run it points at.
"""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import op
from pydantic import BaseModel

from monitor.events.state import ProviderState, brief
from monitor.probe.result import ProbeResult
from monitor.probe.summary import summarize

M = TypeVar("M", bound=BaseModel)

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("provider_state", sa.Column("summary", sa.JSON(), nullable=True))
    state = sa.table("provider_state", sa.column("provider", sa.String),
                     sa.column("summary", sa.JSON))
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT s.provider, s.state, r.result FROM provider_state s "
        "LEFT JOIN run r ON r.id = s.last_run_id"))
    for provider, saved, stored in rows.all():
        result = _parsed(ProbeResult, stored) if stored is not None else None
        entry = {**brief(_parsed(ProviderState, saved or {})),
                 "last_run": summarize(result).model_dump(mode="json") if result else None}
        bind.execute(state.update().where(state.c.provider == provider).values(
            summary=entry))


def _parsed(model: type[M], stored: str | dict[str, Any]) -> M:
    # Through sa.text SQLite hands JSON back as text, PostgreSQL as a dict.
    return (model.model_validate_json(stored) if isinstance(stored, str)
            else model.model_validate(stored))


def downgrade() -> None:
    with op.batch_alter_table("provider_state") as batch:
        batch.drop_column("summary")
