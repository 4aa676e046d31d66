"""sending-domain posture, watched on a schedule

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 23:40:00

One row per watched domain: the findings of its last posture check, compared
with the next check's to raise domain.posture_changed, domain.blocklisted and
domain.delisted. `version` makes each update a compare-and-set.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_posture",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain"),
    )


def downgrade() -> None:
    op.drop_table("domain_posture")
