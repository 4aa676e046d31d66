"""the outbox's due index ends with the delivery id, as the claim orders

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 13:05:00

The claim takes the oldest due deliveries by (next_attempt_at, id). With the
index on (status, next_attempt_at) alone, deliveries due at the same moment —
every subscriber of one event, or a backlog after an outage — were sorted whole
on every claim: a claim of five cost 9 ms on SQLite and 15 ms on PostgreSQL
with 6,000 pending. With id in the index the claim reads five index entries.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_index("ix_delivery_due")
        batch.create_index("ix_delivery_due", ["status", "next_attempt_at", "id"])


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_index("ix_delivery_due")
        batch.create_index("ix_delivery_due", ["status", "next_attempt_at"])
