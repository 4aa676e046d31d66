"""shared pacing per destination; inbound mail in the database

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:00:00

`pace`: when a paced destination (Slack's one message a second per webhook
URL) may next be sent to, claimed atomically so replicas share the pace.
`inbound_message`: mail posted to /inbound/{mailbox}, so the replica whose
poller looks for a token sees a message another replica received.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pace",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "inbound_message",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("mailbox", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_inbound_message_mailbox_token", "inbound_message", ["mailbox", "token"])
    op.create_index("ix_inbound_message_received_at", "inbound_message", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_message_received_at", table_name="inbound_message")
    op.drop_index("ix_inbound_message_mailbox_token", table_name="inbound_message")
    op.drop_table("inbound_message")
    op.drop_table("pace")
