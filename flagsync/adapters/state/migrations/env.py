"""Alembic's environment for flagsync: runs on the connection (and inside the transaction) the caller hands over.

`flagsync.adapters.state.migrate` puts the connection and the keyring into `config.attributes`; there
is no URL here, so nothing can print it, and no logging set-up: Alembic's records go through
flagsync's logging chain like any library's.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():  # the caller's transaction is open already: this one is only logical
    context.run_migrations()
