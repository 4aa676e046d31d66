"""a replayed delivery restarts its retry schedule

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 20:00:00

`delivery.schedule_start` is the attempt count when the delivery was last
replayed: the retry schedule counts from there, while `attempts` and the
attempt rows keep the whole history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("schedule_start", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("schedule_start")
