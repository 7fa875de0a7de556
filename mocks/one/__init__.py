"""A One-style council database mock server, built independently from the wire contract in docs/one-api.md."""
