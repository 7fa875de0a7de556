"""Keyed pseudonyms, key ids and the audit chain's signatures: the only forms in which ids and keys leave memory.

One secret (`audit.hmac_key`) serves three purposes, each under its own label so that no output of
one can stand in for another: pseudonyms (HMAC of ``person:<id>`` / ``record:<id>`` under the key
itself, as since the first release), the key id (HMAC of a constant label: names the key, reveals
nothing about any id) and the audit chain's signing key (HMAC of another constant label, so the
chain never signs with the raw pseudonym key). A `Keyring` holds the current key and the previous
ones an operator keeps configured after a rotation, so that data written under them can still be
read, matched and verified.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

#: Labels of the derived values. Never equal to a "person:" or "record:" message, so never a pseudonym's input.
KEY_ID_LABEL = b"flagsync:key-id:v1"
CHAIN_KEY_LABEL = b"flagsync:audit-chain:v1"

#: Hex characters of a key id (32 bits: enough to tell a handful of configured keys apart).
KEY_ID_LENGTH = 8


class Pseudonymizer:
    """Turns ids into `p_`/`r_` + 16 hex chars of HMAC-SHA256 under a secret key; names the key and signs chain links."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the pseudonym key must not be empty")
        self._key = key
        self._key_id = hmac.new(key, KEY_ID_LABEL, hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]
        self._chain_key = hmac.new(key, CHAIN_KEY_LABEL, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self._key_id!r})"

    @property
    def key_id(self) -> str:
        """8 hex chars of HMAC(key, KEY_ID_LABEL): stored beside each pseudonym, safe to show; never the key."""
        return self._key_id

    def _digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def person(self, person_id: str) -> str:
        return "p_" + self._digest("person:" + person_id)

    def record(self, record_id: str) -> str:
        return "r_" + self._digest("record:" + record_id)

    def chain_mac(self, message: bytes) -> str:
        """HMAC-SHA256 (64 hex chars) of `message` under the chain key derived from this key."""
        return hmac.new(self._chain_key, message, hashlib.sha256).hexdigest()


class Keyring:
    """The current pseudonym key, which writes, and the previous keys, which are kept for reading only."""

    def __init__(self, current: Pseudonymizer, previous: Iterable[Pseudonymizer] = ()) -> None:
        self.current = current
        self.previous = tuple(previous)
        by_id: dict[str, Pseudonymizer] = {}
        for key in (current, *self.previous):
            if key.key_id in by_id:
                raise ValueError(f"two configured pseudonym keys share the key id {key.key_id} (the same key twice?)")
            by_id[key.key_id] = key
        self._by_id: Mapping[str, Pseudonymizer] = by_id

    @classmethod
    def of(cls, keys: Pseudonymizer | Keyring) -> Keyring:
        """A keyring as given, or a single pseudonymizer as a keyring with no previous keys."""
        return keys if isinstance(keys, Keyring) else cls(keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The current key's id first, then the previous keys' in the configured order."""
        return tuple(self._by_id)

    def get(self, key_id: str) -> Pseudonymizer | None:
        """The configured key with this id, or None when it is not (or no longer) configured."""
        return self._by_id.get(key_id)

    def person_pseudonyms(self, person_id: str) -> dict[str, str]:
        """This person's pseudonym under every configured key, by key id: to match data written before a rotation."""
        return {key_id: key.person(person_id) for key_id, key in self._by_id.items()}
