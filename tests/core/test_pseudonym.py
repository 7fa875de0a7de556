"""Keyed pseudonyms, key ids, chain signatures and the keyring: what each is computed from, and the refusals."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from flagsync.core.pseudonym import CHAIN_KEY_LABEL, KEY_ID_LABEL, Keyring, Pseudonymizer

KEY = b"k" * 32
OTHER = b"o" * 32


def _hmac_hex(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def test_person_pseudonym_is_16_hex_of_hmac_sha256_over_person_label_and_id() -> None:
    """A person's pseudonym is p_ + the first 16 hex of HMAC-SHA256(key, "person:" + id)."""
    assert Pseudonymizer(KEY).person("P1001") == "p_" + _hmac_hex(KEY, b"person:P1001")[:16]


def test_record_pseudonym_uses_its_own_label() -> None:
    """A record id is pseudonymised under "record:", so the same text as a person and a record never match."""
    keys = Pseudonymizer(KEY)
    assert keys.record("P1001") == "r_" + _hmac_hex(KEY, b"record:P1001")[:16]
    assert keys.record("P1001")[2:] != keys.person("P1001")[2:]


def test_pseudonyms_of_non_ascii_ids_hash_their_utf8_bytes() -> None:
    """Ids are hashed as UTF-8, so any text has a pseudonym and equal text always has the same one."""
    assert Pseudonymizer(KEY).person("Zoë") == "p_" + _hmac_hex(KEY, "person:Zoë".encode())[:16]


def test_key_id_is_8_hex_of_the_key_over_its_label() -> None:
    """The key id is HMAC(key, KEY_ID_LABEL), 8 hex: it names the key and differs between keys."""
    assert Pseudonymizer(KEY).key_id == _hmac_hex(KEY, KEY_ID_LABEL)[:8]
    assert Pseudonymizer(KEY).key_id != Pseudonymizer(OTHER).key_id


def test_chain_mac_signs_under_a_derived_key_never_the_raw_key() -> None:
    """Chain links are HMAC-SHA256 under HMAC(key, CHAIN_KEY_LABEL), all 64 hex characters."""
    chain_key = hmac.new(KEY, CHAIN_KEY_LABEL, hashlib.sha256).digest()
    mac = Pseudonymizer(KEY).chain_mac(b"link")
    assert mac == _hmac_hex(chain_key, b"link")
    assert mac != _hmac_hex(KEY, b"link")
    assert len(mac) == 64


def test_an_empty_key_is_refused_with_a_message_naming_the_problem() -> None:
    """An empty key would make every pseudonym guessable: it is refused, saying so."""
    with pytest.raises(ValueError, match=r"^the pseudonym key must not be empty$"):
        Pseudonymizer(b"")


def test_repr_shows_the_key_id_and_never_the_key() -> None:
    """The repr names the key by its id only."""
    keys = Pseudonymizer(KEY)
    assert repr(keys) == f"Pseudonymizer(key_id={keys.key_id!r})"
    assert "kkkk" not in repr(keys)


def test_keyring_lists_the_current_key_first_then_previous_in_order() -> None:
    """key_ids: the current key's id, then each previous key's, as configured."""
    current, old1, old2 = Pseudonymizer(KEY), Pseudonymizer(OTHER), Pseudonymizer(b"x" * 32)
    ring = Keyring(current, [old1, old2])
    assert ring.key_ids == (current.key_id, old1.key_id, old2.key_id)
    assert ring.current is current
    assert ring.previous == (old1, old2)


def test_keyring_finds_each_configured_key_by_id_and_nothing_else() -> None:
    """get() returns the configured key with that id, or None for an id not configured."""
    current, old = Pseudonymizer(KEY), Pseudonymizer(OTHER)
    ring = Keyring(current, [old])
    assert ring.get(current.key_id) is current
    assert ring.get(old.key_id) is old
    assert ring.get("00000000") is None


def test_keyring_refuses_the_same_key_twice_naming_its_id() -> None:
    """Two keys with one id (the same key configured twice) is a configuration error that names the id."""
    keys = Pseudonymizer(KEY)
    with pytest.raises(ValueError, match=f"share the key id {keys.key_id}"):
        Keyring(keys, [Pseudonymizer(KEY)])


def test_keyring_of_wraps_a_single_key_and_passes_a_keyring_through() -> None:
    """Keyring.of: a pseudonymizer becomes a keyring without previous keys; a keyring is returned as is."""
    keys = Pseudonymizer(KEY)
    ring = Keyring.of(keys)
    assert ring.current is keys
    assert ring.previous == ()
    assert Keyring.of(ring) is ring


def test_person_pseudonyms_gives_the_person_under_every_configured_key() -> None:
    """To match data written before a rotation, a person's pseudonym under each configured key, by key id."""
    current, old = Pseudonymizer(KEY), Pseudonymizer(OTHER)
    assert Keyring(current, [old]).person_pseudonyms("P1") == {
        current.key_id: current.person("P1"),
        old.key_id: old.person("P1"),
    }
