"""a running pre-campaign check is leased to the replica running it

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 21:10:00

A replica renews the lease while its check runs; past `lease_until` with no
`finished_at`, another replica takes the check over and finishes it from its
saved report (seeds already sent are waited for, not sent again).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_check") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_campaign_check_open", ["finished_at", "lease_until"])


def downgrade() -> None:
    with op.batch_alter_table("campaign_check") as batch:
        batch.drop_index("ix_campaign_check_open")
        batch.drop_column("lease_until")
        batch.drop_column("claimed_by")
