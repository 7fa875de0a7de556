"""The state store: runs, pending removals, the audit chain, the watermark and the report, on SQLite or PostgreSQL.

`schema` holds the tables, `store` the adapter, `chain` the audit chain's signing and checking,
`migrate` and `migrations/` the Alembic revisions, `engine` connections and safe errors, `db` row helpers.
"""

from flagsync.adapters.state.store import NO_SUBJECT, SqlStateStore

__all__ = ["NO_SUBJECT", "SqlStateStore"]
