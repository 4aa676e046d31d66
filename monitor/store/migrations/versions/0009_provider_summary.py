"""the last run in brief beside each provider's state, for provider lists

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 23:50:00

`GET /v1/providers` read every provider's whole last result (about 2.4 KB
each) to show a few fields of it; it now reads this summary. Existing rows
get theirs from the run their state points at.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from monitor.probe.result import ProbeResult
from monitor.probe.summary import summarize

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
        "SELECT s.provider, r.result FROM provider_state s JOIN run r ON r.id = s.last_run_id"))
    for provider, stored in rows.all():
        # Through sa.text SQLite hands JSON back as text, PostgreSQL as a dict.
        result = (ProbeResult.model_validate_json(stored) if isinstance(stored, str)
                  else ProbeResult.model_validate(stored))
        bind.execute(state.update().where(state.c.provider == provider).values(
            summary=summarize(result).model_dump(mode="json")))


def downgrade() -> None:
    with op.batch_alter_table("provider_state") as batch:
        batch.drop_column("summary")
