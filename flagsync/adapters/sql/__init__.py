"""The `ConsentSource` over a SQL table or view (any database SQLAlchemy supports).

`source` holds the adapter and its reads, `layout` the table as found and how a person's rows are
found, `changes` change detection (the probe, the change queries, their watermarks), `engine` the
URL, connections and errors that quote nothing.
"""

from flagsync.adapters.sql.source import SqlConsentSource

__all__ = ["SqlConsentSource"]
