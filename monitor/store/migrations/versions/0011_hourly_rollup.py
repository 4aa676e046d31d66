"""hourly rollups per provider, for the status page and its badges

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 23:30:00

One row per provider and hour: runs, ok, failed, failures by class, latency
histograms (fixed log-spaced buckets, so hours add up) and delivery outcomes.
Kept 400 days; uptime over any window is computed from these rows alone. Hours
before this migration have no row, so they show as unknown, not as downtime.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hourly_rollup",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("probe_ms", sa.JSON(), nullable=False),
        sa.Column("receive_ms", sa.JSON(), nullable=False),
        sa.Column("delivery", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "hour"),
    )
    op.create_index("ix_hourly_rollup_hour", "hourly_rollup", ["hour"])


def downgrade() -> None:
    op.drop_index("ix_hourly_rollup_hour", table_name="hourly_rollup")
    op.drop_table("hourly_rollup")
