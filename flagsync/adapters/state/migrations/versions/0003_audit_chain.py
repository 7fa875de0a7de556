"""The audit chain: a signed hash on every event, and the chain's head and anchor records.

The events already there are signed into the chain now, in id order, with the current key: from
this revision on, an edit, removal or insertion of any of them shows in `flagsync audit --verify`
(what was done to them before it cannot be seen). Signing uses the chain module of the running
code, whose canonical form is versioned ("flagsync-audit-v1"). Needs the keyring in `config.attributes`.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from flagsync.adapters.state.chain import ANCHOR, GENESIS, HEAD, ChainRow, link, sign_marker
from flagsync.adapters.state.schema import UtcDateTime
from flagsync.core.pseudonym import Keyring

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_BATCH = 1000


def upgrade() -> None:
    config = op.get_context().config
    assert config is not None  # run through flagsync.adapters.state.migrate, which always gives one
    keys: Keyring = config.attributes["keyring"]
    key = keys.current
    op.add_column("audit_events", sa.Column("chain_hash", sa.String(64), nullable=True))
    chain = op.create_table(
        "audit_chain",
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("event_id", _ID, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    events = sa.table(
        "audit_events",
        sa.column("id", _ID),
        sa.column("at", UtcDateTime),
        sa.column("day", sa.String(10)),
        sa.column("run_id", sa.Text),
        sa.column("action", sa.Text),
        sa.column("person", sa.Text),
        sa.column("outcome", sa.Text),
        sa.column("reason", sa.Text),
        sa.column("key_id", sa.String(8)),
        sa.column("chain_hash", sa.String(64)),
    )
    bind = op.get_bind()
    previous, first_id, last_id = GENESIS, None, 0
    update = events.update().where(events.c.id == sa.bindparam("b_id")).values(chain_hash=sa.bindparam("b_hash"))
    while True:  # keyset pages: a long trail is never held in memory whole
        page = bind.execute(sa.select(events).where(events.c.id > last_id).order_by(events.c.id).limit(_BATCH)).all()
        if not page:
            break
        signed: list[dict[str, object]] = []
        for row in page:
            signer = keys.get(row.key_id)
            if signer is None:
                raise RuntimeError(f"audit events carry key id {row.key_id}, which is not configured")
            fields = (row.id, row.at, row.day, row.run_id, row.action, row.person, row.outcome, row.reason, row.key_id)
            previous = link(signer, previous, ChainRow(*fields, chain_hash=""))
            first_id = row.id if first_id is None else first_id
            last_id = row.id
            signed.append({"b_id": row.id, "b_hash": previous})
        bind.execute(update, signed)
    anchor_id = first_id if first_id is not None else last_id + 1
    markers = [sign_marker(key, ANCHOR, anchor_id, GENESIS), sign_marker(key, HEAD, last_id, previous)]
    op.bulk_insert(
        chain, [{"name": m.name, "event_id": m.event_id, "hash": m.hash, "key_id": m.key_id, "mac": m.mac} for m in markers]
    )
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("chain_hash", existing_type=sa.String(64), nullable=False)
    kv = sa.table("kv", sa.column("key", sa.String(64)), sa.column("value", sa.Text))
    op.execute(kv.update().where(kv.c.key == "schema_version").values(value="3"))


def downgrade() -> None:
    raise NotImplementedError("flagsync does not migrate down: restore the backup taken before `flagsync migrate`")
