"""The composition root: the one place that turns settings into concrete adapters and a service."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from flagsync.adapters.csv import SAVED_INDEX_SUFFIX, CsvConsentSource, SavedIndex, derive_index_key
from flagsync.adapters.one.endpoint import OneEndpoint
from flagsync.adapters.one.gateway import HttpFlagGateway
from flagsync.adapters.run_lock import RunLock
from flagsync.adapters.sql import SqlConsentSource
from flagsync.adapters.state import SqlStateStore
from flagsync.adapters.state.engine import parse_state_url, sqlite_file_path
from flagsync.core.model import Rules
from flagsync.core.pseudonym import Keyring, Pseudonymizer
from flagsync.errors import ConfigError, RunInProgressError, StateError
from flagsync.metrics import Metrics
from flagsync.ports import ConsentSource, FlagGateway, RunFence, StateStore, Telemetry
from flagsync.service import SyncService
from flagsync.settings import Settings


@dataclass
class App:
    """Everything a command needs, built from one Settings object."""

    settings: Settings
    pseudonymizer: Pseudonymizer
    source: ConsentSource
    gateway: FlagGateway
    state: StateStore
    metrics: Metrics
    service: SyncService
    lock: Callable[[], AbstractContextManager[RunFence]]
    leader_lock: RunLock  # the daemon's: held by the one active replica
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def build_pseudonymizer(settings: Settings) -> Pseudonymizer:
    """The pseudonymizer for logs and the state store; there is no fallback key (a missing key is a ConfigError)."""
    key = settings.audit.hmac_key
    if key is None:
        raise ConfigError("missing required setting audit.hmac_key")
    return Pseudonymizer(key.get_secret_value().encode())


def build_keyring(settings: Settings) -> Keyring:
    """The current pseudonym key (writes) and the previous ones (`audit.previous_hmac_keys`, read only)."""
    previous = [Pseudonymizer(key.get_secret_value().encode()) for key in settings.audit.previous_hmac_keys]
    try:
        return Keyring(build_pseudonymizer(settings), previous)
    except ValueError as exc:
        raise ConfigError(f"audit.previous_hmac_keys: {exc}") from None


def open_state(settings: Settings, *, read_only: bool) -> SqlStateStore:
    """The state store; read-only for commands that only look (they never create, migrate or write it)."""
    return SqlStateStore(settings.state.url.get_secret_value(), build_keyring(settings), read_only=read_only)


def check_state_schema(settings: Settings) -> None:
    """Raise StateError unless the state store is at this flagsync's schema (an empty one is created at it)."""
    state = open_state(settings, read_only=False)
    try:
        state.check_schema()
    finally:
        state.close()


def migrate_state(settings: Settings, *, wait_seconds: float) -> tuple[str, str | None]:
    """Bring the state store to the newest schema while holding the run lock; return (where, revision it was at)."""
    state = open_state(settings, read_only=False)
    try:
        with RunLock(settings.state.url.get_secret_value(), wait_seconds=wait_seconds):
            found = state.migrate()
        return state.describe(), found.revision
    finally:
        state.close()


def build_source(settings: Settings, *, index_save_wait_seconds: float = 60.0) -> SqlConsentSource | CsvConsentSource:
    """The consent source; a CSV source's `close` waits up to `index_save_wait_seconds` for its person index to be saved."""
    src = settings.source
    zone = ZoneInfo(src.timezone)
    if src.kind == "csv":
        assert src.path is not None  # the settings require source.path for a csv source
        saved = saved_person_index(settings)
        return CsvConsentSource(src.path, src.column_map, zone, saved=saved, save_wait_seconds=index_save_wait_seconds)
    return SqlConsentSource(src.url.get_secret_value(), src.table, src.column_map, zone)


def saved_person_index(settings: Settings) -> SavedIndex | None:
    """Where a csv source saves its person index: `source.index_path`, else beside a SQLite state file; None otherwise.

    Keyed by a key derived from `audit.hmac_key` (none without it: nothing is saved).
    """
    path = settings.source.index_path
    if path is None:
        url = parse_state_url(settings.state.url.get_secret_value())
        state_file = sqlite_file_path(url) if url.get_backend_name() == "sqlite" else None
        if state_file is None:
            return None
        path = state_file.with_name(state_file.name + SAVED_INDEX_SUFFIX)
    key = settings.audit.hmac_key
    if key is None:
        return None
    pseudonymizer = build_pseudonymizer(settings)
    return SavedIndex(path, derive_index_key(key.get_secret_value().encode()), pseudonymizer.key_id)


def one_endpoint(settings: Settings) -> OneEndpoint:
    """One's address and credentials as the settings checked them (they are required, so present unless a test skipped that)."""
    one = settings.one
    if one.base_url is None or one.client_id is None or one.client_secret is None:
        raise ConfigError("missing required setting one.base_url, one.client_id or one.client_secret")
    return OneEndpoint(
        base_url=one.base_url,
        token_url=one.effective_token_url,
        client_id=one.client_id,
        client_secret=one.client_secret,
        ca_bundle=one.ca_bundle,
        proxy=one.proxy,
        connect_timeout=one.connect_timeout,
        read_timeout=one.read_timeout,
    )


def build_gateway(settings: Settings, telemetry: Telemetry) -> HttpFlagGateway:
    one = settings.one
    return HttpFlagGateway(
        one_endpoint(settings),
        max_concurrency=one.max_concurrency,
        max_requests_per_second=one.max_requests_per_second,
        page_size=one.page_size,
        retry_attempts=settings.sync.retry_attempts,
        retry_max_delay=settings.sync.retry_max_delay,
        telemetry=telemetry,
    )


def build_rules(settings: Settings) -> Rules:
    return Rules(
        accepted_versions=frozenset(settings.source.accepted_consent_versions),
        max_removals=settings.sync.max_removals,
        max_removal_fraction=settings.sync.max_removal_fraction,
    )


def run_in_progress(settings: Settings) -> bool | None:
    """Whether some run holds the single-run lock right now (takes it for an instant if it is free); None: cannot tell.

    None when the lock cannot be taken at all (a read-only state directory, where `status` still reads).
    """
    lock = RunLock(settings.state.url.get_secret_value(), wait_seconds=0)
    try:
        lock.acquire()
    except RunInProgressError:
        return True
    except StateError:
        return None
    lock.release()
    return False


def build_app(settings: Settings, *, lock_wait_seconds: float = 5.0, index_save_wait_seconds: float = 60.0) -> App:
    """Build every component; nothing connects until it is first used.

    `close` waits up to `index_save_wait_seconds` for a CSV source's person index to be saved: a one-off
    command can afford to (the next command then reads a few rows instead of the file), the daemon's exit not.
    """
    pseudonymizer = build_pseudonymizer(settings)
    metrics = Metrics()
    source = build_source(settings, index_save_wait_seconds=index_save_wait_seconds)
    gateway = build_gateway(settings, metrics)
    state_url = settings.state.url.get_secret_value()
    state = SqlStateStore(state_url, build_keyring(settings))

    def lock() -> AbstractContextManager[RunFence]:
        return RunLock(state_url, wait_seconds=lock_wait_seconds)

    service = SyncService(
        source=source,
        gateway=gateway,
        state=state,
        rules=build_rules(settings),
        max_concurrency=settings.one.max_concurrency,
        lock=lock,
        telemetry=metrics,
    )
    app = App(
        settings, pseudonymizer, source, gateway, state, metrics, service, lock, RunLock(state_url, wait_seconds=0, role="leader")
    )
    app.closers += [gateway.close, state.close, source.close]
    return app
