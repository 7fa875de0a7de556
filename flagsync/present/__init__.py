"""How flagsync shows things to people: tables, documents and reports."""
