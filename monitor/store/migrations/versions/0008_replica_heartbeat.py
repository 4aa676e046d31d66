"""replicas announce themselves, so they can share the providers out

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 21:10:00

Each replica writes `last_seen` every few seconds; the live ones divide the
providers among themselves by rendezvous hashing, so a slot is claimed by the
one replica it falls to rather than raced for by all.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replica",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("replica")
