"""Adapters: the technologies behind the ports (SQL, CSV, HTTP, the state store)."""
