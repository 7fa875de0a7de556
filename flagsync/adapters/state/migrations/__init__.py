"""Alembic revisions of the state store, run by `flagsync.adapters.state.migrate` (no alembic.ini needed)."""
