"""a slot claim is a lease: taken over if its replica never recorded the run

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:30:00

`lease_until` is when the claimant is presumed dead unless it has recorded the
run (`done`). Claims made before this revision count as done: their slots are
long past.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("slot_claim") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("done", sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.create_index("ix_slot_claim_open", ["done", "lease_until"])


def downgrade() -> None:
    with op.batch_alter_table("slot_claim") as batch:
        batch.drop_index("ix_slot_claim_open")
        batch.drop_column("done")
        batch.drop_column("lease_until")
