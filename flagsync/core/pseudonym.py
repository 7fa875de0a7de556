"""Keyed pseudonyms: the only form in which person and record ids leave memory."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    """Turns ids into `p_`/`r_` + 16 hex chars of HMAC-SHA256 under a secret key."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the pseudonym key must not be empty")
        self._key = key

    def _digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def person(self, person_id: str) -> str:
        return "p_" + self._digest("person:" + person_id)

    def record(self, record_id: str) -> str:
        return "r_" + self._digest("record:" + record_id)
