"""drop the unread step_result table; index the columns retention filters on

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:30:00

Every run's steps are in `run.result` (the API, the CLI and events read them
there); `step_result` was written, one row per step, and never read. Retention
deletes by `delivery.created_at`, `slot_claim.claimed_at` and
`campaign_check.created_at`: without an index each prune scans the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_INDEXES = (("delivery", "ix_delivery_created_at", "created_at"),
            ("slot_claim", "ix_slot_claim_claimed_at", "claimed_at"),
            ("campaign_check", "ix_campaign_check_created_at", "created_at"))


def upgrade() -> None:
    op.drop_table("step_result")
    for table, name, column in _INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for table, name, _ in _INDEXES:
        op.drop_index(name, table_name=table)
    op.create_table(
        "step_result",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(), nullable=True),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("enhanced_code", sa.String(length=16), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("failure_class", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "seq"),
    )
