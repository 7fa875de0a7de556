"""Rotating the pseudonym key: pending removals, the audit chain, `status` and the audit report all carry on across it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from flagsync.adapters.memory_gateway import InMemoryFlagGateway
from flagsync.adapters.run_lock import RunLock
from flagsync.adapters.state import SqlStateStore
from flagsync.cli import main
from flagsync.core.model import Flag, Rules, RunTrigger
from flagsync.core.pseudonym import KEY_ID_LENGTH, Keyring, Pseudonymizer
from flagsync.errors import ConfigError, RetriableRemoteError
from flagsync.ports import AuditEntry
from flagsync.service import SyncService
from flagsync.settings import load_settings, secret_values
from tests.service.test_service import Clock, ListSource, grant, withdraw
from tests.state.release_0_1 import T0

OLD_KEY = "the-key-before-the-rotation-0001"
NEW_KEY = "the-key-after-the-rotation-00002"
OLD, NEW = Pseudonymizer(OLD_KEY.encode()), Pseudonymizer(NEW_KEY.encode())


def _before_rotation(url: str) -> None:
    """A store written with the old key: events, a failed and a held removal, a report."""
    store = SqlStateStore(url, OLD)
    run_id = store.start_run(RunTrigger.SCHEDULED_FULL, T0)
    store.record_events(run_id, [AuditEntry("add", "P1", "ok"), AuditEntry("remove", "P2", "failed", "SERVER_ERROR")], T0)
    store.mark_pending(Flag("INV-2", "P2", 1), T0)
    store.mark_pending(Flag("INV-3", "P3", 1), T0, held=True)
    store.replace_report([], ["R1"], [], [("P4", "PERSON_ARCHIVED")])
    store.close()


def test_key_ids_name_the_key_and_nothing_else() -> None:
    """A key id is 8 hex chars, the same for the same key, different for another, and no slice of the key or of a pseudonym."""
    assert len(OLD.key_id) == KEY_ID_LENGTH and int(OLD.key_id, 16) >= 0
    assert Pseudonymizer(OLD_KEY.encode()).key_id == OLD.key_id != NEW.key_id
    assert OLD.key_id not in OLD_KEY.encode().hex() and OLD.key_id not in OLD.person("P1")
    assert OLD_KEY not in repr(OLD) and OLD.key_id in repr(OLD)


def test_a_keyring_refuses_the_same_key_twice_and_finds_keys_by_id() -> None:
    """Keyring lists the current key first, finds each by id, gives a person's pseudonym under each, and refuses duplicates."""
    keys = Keyring(NEW, [OLD])

    assert keys.key_ids == (NEW.key_id, OLD.key_id)
    assert keys.get(OLD.key_id) is OLD and keys.get("00000000") is None
    assert keys.person_pseudonyms("P1") == {NEW.key_id: NEW.person("P1"), OLD.key_id: OLD.person("P1")}
    with pytest.raises(ValueError, match="share the key id"):
        Keyring(NEW, [Pseudonymizer(NEW_KEY.encode())])


def test_a_rotation_keeps_pending_removals_and_the_chain_verifies_across_it(state_url: str) -> None:
    """After a rotation every pending and held removal is there; retried, it moves to the new key; the chain spans both keys."""
    _before_rotation(state_url)
    store = SqlStateStore(state_url, Keyring(NEW, [OLD]))

    assert [(p.involvement_id, p.person, p.key_id, p.held) for p in store.pending_removals()] == [
        ("INV-2", OLD.person("P2"), OLD.key_id, False),
        ("INV-3", OLD.person("P3"), OLD.key_id, True),
    ]
    store.mark_pending(Flag("INV-2", "P2", 1), T0 + timedelta(hours=1))  # the retry failed again
    run_id = store.start_run(RunTrigger.SCHEDULED_FULL, T0 + timedelta(hours=1))
    store.record_events(run_id, [AuditEntry("remove", "P2", "failed", "SERVER_ERROR")], T0 + timedelta(hours=1))

    retried = store.pending_removals()[0]
    assert (retried.person, retried.key_id, retried.attempts) == (NEW.person("P2"), NEW.key_id, 2)
    check = store.verify_audit()
    assert (check.intact, check.events, check.key_ids) == (True, 3, (OLD.key_id, NEW.key_id))
    assert store.purge_audit(T0 + timedelta(minutes=30)) == 2  # the anchor is now signed with the new key
    assert store.verify_audit().intact
    store.close()


def test_verifying_without_the_previous_key_names_its_key_id(state_url: str) -> None:
    """Rotated without keeping the old key in previous_hmac_keys, the chain cannot be checked: verify names the missing key id."""
    _before_rotation(state_url)
    store = SqlStateStore(state_url, NEW)

    check = store.verify_audit()

    assert check.broken is not None
    assert OLD.key_id in check.broken.problem and "not configured" in check.broken.problem
    assert [p.involvement_id for p in store.pending_removals()] == ["INV-2", "INV-3"]  # nothing else needs the old key
    store.close()


def test_a_sync_after_a_rotation_honours_a_removal_left_pending_under_the_old_key(tmp_path: Path) -> None:
    """A withdrawal whose removal failed under the old key is removed by the first run after the rotation, and cleared."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    one = InMemoryFlagGateway(any_person=True)
    source = ListSource([grant("P1")])

    def service(keys: Pseudonymizer | Keyring) -> SyncService:
        state = SqlStateStore(url, keys)
        return SyncService(
            source=source, gateway=one, state=state, rules=Rules(), lock=lambda: RunLock(url, wait_seconds=1), clock=Clock()
        )

    service(OLD).sync(trigger=RunTrigger.OPERATOR)
    source.items.append(withdraw("P1"))
    one.fail_next(1, RetriableRemoteError("One unavailable", status=503, code="UPSTREAM_UNAVAILABLE"), operation="remove_flag")
    service(OLD).sync(trigger=RunTrigger.OPERATOR)
    assert [p.key_id for p in SqlStateStore(url, OLD).pending_removals()] == [OLD.key_id]

    rotated = service(Keyring(NEW, [OLD]))
    rotated.sync(trigger=RunTrigger.OPERATOR)

    assert one.flags() == []
    after = SqlStateStore(url, Keyring(NEW, [OLD]))
    assert after.pending_removals() == []
    assert after.verify_audit().intact


def test_status_shows_the_pseudonyms_of_both_keys(
    tmp_path: Path, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` after a rotation lists every pending removal and report row by pseudonym, naming the old key where it applies."""
    url = f"sqlite:///{tmp_path / 'state' / 'flagsync-state.db'}"
    _before_rotation(url)
    config = cli_config(url, key=NEW_KEY, previous=[OLD_KEY])

    assert main(["status", "--json", "--config", str(config)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(p["person"], p["keyId"]) for p in doc["pendingRemovals"]] == [
        (OLD.person("P2"), OLD.key_id),
        (OLD.person("P3"), OLD.key_id),
    ]
    assert main(["status", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert f"{OLD.person('P2')} (key {OLD.key_id})" in text
    assert f"{OLD.record('R1')} (key {OLD.key_id})" in text


def test_the_audit_report_counts_the_same_across_a_rotation(
    tmp_path: Path, cli_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The activity report of the days before a rotation is the same whichever key is configured; verify passes with both keys."""
    url = f"sqlite:///{tmp_path / 'state' / 'flagsync-state.db'}"
    _before_rotation(url)
    args = ["audit", "--exact", "--format", "json", "--since", "2026-03-02", "--until", "2026-03-02"]

    assert main([*args, "--config", str(cli_config(url, key=OLD_KEY))]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main([*args, "--config", str(cli_config(url, key=NEW_KEY, previous=[OLD_KEY]))]) == 0
    after = json.loads(capsys.readouterr().out)

    before.pop("generatedAt"), after.pop("generatedAt")
    assert before["counts"]  # there is something to compare
    assert after == before
    assert main(["audit", "--verify", "--config", str(cli_config(url, key=NEW_KEY, previous=[OLD_KEY]))]) == 0


def test_previous_keys_are_read_from_the_toml_file_and_the_environment(tmp_path: Path) -> None:
    """audit.previous_hmac_keys takes a TOML list or a JSON list in the environment; every key is scrubbed from logs."""
    config = tmp_path / "flagsync.toml"
    config.write_text(f'[audit]\nhmac_key = "{NEW_KEY}"\nprevious_hmac_keys = ["{OLD_KEY}"]\n', encoding="utf-8")

    from_file = load_settings(config_file=config, required=(), env={})
    from_env = load_settings(
        required=(),
        env={"FLAGSYNC_AUDIT__HMAC_KEY": NEW_KEY, "FLAGSYNC_AUDIT__PREVIOUS_HMAC_KEYS": json.dumps([OLD_KEY])},
    )

    for settings in (from_file, from_env):
        assert [k.get_secret_value() for k in settings.audit.previous_hmac_keys] == [OLD_KEY]
        assert OLD_KEY in secret_values(settings)
        assert OLD_KEY not in repr(settings)


@pytest.mark.parametrize(
    ("previous", "message"),
    [
        (["too-short"], "each key must be at least 16 characters"),
        ([OLD_KEY, OLD_KEY], "lists the same key twice"),
        ([NEW_KEY], "must not hold the current audit.hmac_key"),
    ],
)
def test_bad_previous_keys_are_refused_without_echoing_them(tmp_path: Path, previous: list[str], message: str) -> None:
    """A short, repeated or current key among the previous keys stops start-up with a message that quotes no key."""
    config = tmp_path / "flagsync.toml"
    keys = ", ".join(f'"{k}"' for k in previous)
    config.write_text(f'[audit]\nhmac_key = "{NEW_KEY}"\nprevious_hmac_keys = [{keys}]\n', encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=config, required=(), env={})

    assert message in str(caught.value)
    for key in (*previous, NEW_KEY):
        assert key not in str(caught.value)
