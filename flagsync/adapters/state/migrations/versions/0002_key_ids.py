"""Key ids: every stored pseudonym names the key that made it, so that the key can be rotated.

Rows already there were made with the key configured when this runs (no earlier key could be
configured before this revision), so they get its id. Needs the keyring in `config.attributes`.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flagsync.core.pseudonym import Keyring

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TABLES = ("pending_removals", "audit_events", "report_rows")


def upgrade() -> None:
    config = op.get_context().config
    assert config is not None  # run through flagsync.adapters.state.migrate, which always gives one
    keys: Keyring = config.attributes["keyring"]
    for name in _TABLES:
        op.add_column(name, sa.Column("key_id", sa.String(8), nullable=True))
        table = sa.table(name, sa.column("key_id", sa.String(8)))
        op.execute(table.update().values(key_id=keys.current.key_id))
        with op.batch_alter_table(name) as batch:
            batch.alter_column("key_id", existing_type=sa.String(8), nullable=False)
    kv = sa.table("kv", sa.column("key", sa.String(64)), sa.column("value", sa.Text))
    op.execute(kv.update().where(kv.c.key == "schema_version").values(value="2"))


def downgrade() -> None:
    raise NotImplementedError("flagsync does not migrate down: restore the backup taken before `flagsync migrate`")
