"""Test doubles for flagsync: the One-style mock server. Must never import flagsync."""
