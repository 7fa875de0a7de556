"""People One refused: the back-off before flagsync asks One for them again, kept across runs and processes.

A one-off `flagsync sync` and `flagsync plan` honour it too (they list such people as skipped).
Pseudonymous: a row names a person only by the pseudonym of its key.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flagsync.adapters.state.schema import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "person_refusals",
        sa.Column("person", sa.Text, primary_key=True),
        sa.Column("key_id", sa.String(8), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("retry_at", UtcDateTime, nullable=False, index=True),
    )
    kv = sa.table("kv", sa.column("key", sa.String(64)), sa.column("value", sa.Text))
    op.execute(kv.update().where(kv.c.key == "schema_version").values(value="4"))


def downgrade() -> None:
    raise NotImplementedError("flagsync does not migrate down: restore the backup taken before `flagsync migrate`")
