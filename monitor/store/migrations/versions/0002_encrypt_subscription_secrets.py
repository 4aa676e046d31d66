"""encrypt subscription secrets at rest

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00

A subscription's url, secrets and routing_key were plaintext; from here on they
are Fernet tokens (monitor.store.crypto), under the key bound to the engine that
migrates. The columns keep their types: url and routing_key are unbounded
strings, secrets a JSON list (of tokens now). The revision also keeps an older
Delivery Monitor, which would read tokens as URLs, off this database.
Downgrading decrypts them again.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from monitor.store.crypto import Cipher, cipher_for

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The columns as this revision knows them, read and written without the model's
# encrypting types.
subscription = sa.table("subscription", sa.column("id", sa.String),
                        sa.column("url", sa.String), sa.column("routing_key", sa.String),
                        sa.column("secrets", sa.JSON))


def _rewrite(change: Callable[[Cipher, str], str]) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(subscription)).all()
    if not rows:
        return  # a new database needs no key here (nor does `alembic revision`)
    cipher = cipher_for(bind.dialect)
    # SQLite leaves a rewritten cell's old bytes in the page (and so in the WAL and the
    # file) unless told to zero them: the plaintext would survive its encryption.
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        secure_delete = bind.exec_driver_sql("PRAGMA secure_delete").scalar()
        bind.exec_driver_sql("PRAGMA secure_delete = ON")

    def one(value: str | None) -> str | None:
        return None if value is None else change(cipher, value)

    for row in rows:
        bind.execute(sa.update(subscription).where(subscription.c.id == row.id).values(
            url=one(row.url), routing_key=one(row.routing_key),
            secrets=[change(cipher, s) for s in row.secrets or []]))
    if sqlite:
        bind.exec_driver_sql(f"PRAGMA secure_delete = {int(secure_delete or 0)}")


def upgrade() -> None:
    _rewrite(Cipher.rotate)


def downgrade() -> None:
    _rewrite(Cipher.decrypt)
