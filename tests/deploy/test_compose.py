"""deploy/compose.yaml, checked offline: its references resolve, its settings load, and its sample consent data is valid."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from flagsync.adapters.sql import SqlConsentSource
from flagsync.core.model import CONTRACT_COLUMNS, ConsentRecord, Decision
from flagsync.settings import REQUIRED_SETTINGS, load_settings
from tests.deploy.settings_names import ROOT, dockerfile_env, setting_for, unknown_names
from tests.postgres import SERVER, unavailable

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def secret_targets(service: dict[str, Any]) -> dict[str, str]:
    """target file name -> compose secret, for a service's `secrets:` (short or long form)."""
    targets = {}
    for entry in service.get("secrets", []):
        source = entry if isinstance(entry, str) else entry["source"]
        target = entry if isinstance(entry, str) else entry.get("target", source)
        targets[target] = source
    return targets


def test_the_three_services_and_their_references_exist(compose: dict[str, Any]) -> None:
    """The daemon, PostgreSQL and the mock; every secret, volume, dependency and build file named exists."""
    services = compose["services"]
    assert set(services) == {"flagsync", "postgres", "mock"}
    declared_secrets = set(compose["secrets"])
    used_secrets = {source for service in services.values() for source in secret_targets(service).values()}
    assert used_secrets == declared_secrets
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
            else:
                assert source in compose["volumes"], f"{name}: {source}"
        if "build" in service:
            context = DEPLOY / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name


def test_secrets_are_files_that_make_secrets_writes(compose: dict[str, Any], tmp_path: Path) -> None:
    """deploy/compose/make-secrets writes every secret file compose mounts, and the database URLs hold the passwords."""
    shutil.copytree(DEPLOY / "compose", tmp_path / "compose")
    subprocess.run([str(tmp_path / "compose" / "make-secrets")], check=True, capture_output=True, timeout=60)
    for name, secret in compose["secrets"].items():
        assert (tmp_path / secret["file"]).is_file(), name
        assert secret["file"].startswith("./secrets/")
    read = {path.name: path.read_text(encoding="utf-8").strip() for path in (tmp_path / "secrets").iterdir()}
    assert make_url(read["source_url"]).password == read["consent_reader_password"]
    assert make_url(read["state_url"]).password == read["state_password"]
    assert make_url(read["state_url"]).get_backend_name() == "postgresql"  # the advisory lock needs PostgreSQL
    first = dict(read)
    subprocess.run([str(tmp_path / "compose" / "make-secrets")], check=True, capture_output=True, timeout=60)
    assert {path.name: path.read_text(encoding="utf-8").strip() for path in (tmp_path / "secrets").iterdir()} == first


def test_the_daemon_is_configured_with_real_settings_and_file_secrets(compose: dict[str, Any]) -> None:
    """Every FLAGSYNC_ variable and secret target names a setting, the secrets go to /run/secrets, the required ones are there."""
    daemon = compose["services"]["flagsync"]
    environment = daemon["environment"]
    targets = secret_targets(daemon)
    assert not unknown_names(list(environment)), "unknown settings in the environment"
    assert not unknown_names(list(targets)), "unknown settings as secret files"
    provided = {setting_for(n) for n in [*environment, *targets]}
    assert set(REQUIRED_SETTINGS) <= provided
    secret_settings = {setting_for(t) for t in targets}
    assert {("one", "client_secret"), ("audit", "hmac_key"), ("source", "url"), ("state", "url")} <= secret_settings
    assert not {("one", "client_secret"), ("audit", "hmac_key")} & {setting_for(n) for n in environment}


def test_the_daemon_runs_locked_down_and_publishes_its_metrics_port(compose: dict[str, Any]) -> None:
    """`flagsync daemon` as uid 10001, read-only, no capabilities; the published port is daemon.http_port on all interfaces."""
    daemon = compose["services"]["flagsync"]
    assert daemon["command"] == ["daemon"]
    assert (
        dockerfile_env(ROOT / "Dockerfile")["FLAGSYNC_DAEMON__HTTP_PORT"] == daemon["environment"]["FLAGSYNC_DAEMON__HTTP_PORT"]
    )
    assert daemon["read_only"] is True
    assert daemon["cap_drop"] == ["ALL"]
    assert daemon["user"] == "10001:10001"
    assert "no-new-privileges:true" in daemon["security_opt"]
    assert daemon["environment"]["FLAGSYNC_DAEMON__HTTP_HOST"] == "0.0.0.0"  # noqa: S104 - the value checked, not a bind
    (published,) = daemon["ports"]
    assert published.split(":")[-1] == daemon["environment"]["FLAGSYNC_DAEMON__HTTP_PORT"]
    assert daemon["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_mock_accepts_the_daemons_client(compose: dict[str, Any]) -> None:
    """The mock is started with the daemon's client id and reads the same secret file the daemon does."""
    daemon, mock = compose["services"]["flagsync"], compose["services"]["mock"]
    command = " ".join(mock["entrypoint"])
    client_id = daemon["environment"]["FLAGSYNC_ONE__CLIENT_ID"]
    assert f"--client {client_id}:$$(cat /run/secrets/one_client_secret)" in command
    assert secret_targets(daemon)["FLAGSYNC_ONE__CLIENT_SECRET"] == secret_targets(mock)["one_client_secret"]
    assert daemon["environment"]["FLAGSYNC_ONE__BASE_URL"] == "http://mock:8080"


def test_the_composed_settings_load(compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What compose hands the container (its environment, the image's, and the secret files) is a valid configuration."""
    shutil.copytree(DEPLOY / "compose", tmp_path / "compose")
    subprocess.run([str(tmp_path / "compose" / "make-secrets")], check=True, capture_output=True, timeout=60)
    daemon = compose["services"]["flagsync"]
    run_secrets = tmp_path / "run-secrets"
    run_secrets.mkdir()
    for target, source in secret_targets(daemon).items():
        shutil.copy(tmp_path / compose["secrets"][source]["file"], run_secrets / target)
    env = {**dockerfile_env(ROOT / "Dockerfile"), **daemon["environment"], "FLAGSYNC_SECRETS_DIR": str(run_secrets)}
    monkeypatch.chdir(tmp_path)  # no .env or config/flagsync.toml of the developer's
    settings = load_settings(env=env)
    assert settings.one.base_url == "http://mock:8080"
    assert settings.daemon.http_host == "0.0.0.0"  # noqa: S104 - the value checked, not a bind
    assert make_url(settings.state.url.get_secret_value()).host == "postgres"
    assert make_url(settings.source.url.get_secret_value()).database == "consent"


@pytest.mark.postgres
def test_the_sample_consent_table_is_read_by_the_sql_source() -> None:
    """deploy/compose's consent.sql makes a table flagsync's SQL source reads: two grants and a refusal, none quarantined."""
    name = f"flagsync_compose_{datetime.now(UTC).strftime('%H%M%S%f')}"
    admin = sa.create_engine(f"{SERVER}/postgres", poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        unavailable()
    url = f"{SERVER}/{name}"
    try:
        engine = sa.create_engine(url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql((DEPLOY / "compose/initdb/consent/consent.sql").read_text(encoding="utf-8"))
            columns = [
                row[0]
                for row in conn.execute(
                    sa.text("SELECT column_name FROM information_schema.columns WHERE table_name = 'consent_records'")
                )
            ]
        engine.dispose()
        assert sorted(columns) == sorted(CONTRACT_COLUMNS)
        source = SqlConsentSource(url, "consent_records", {}, UTC)
        try:
            items = list(source.read_all(datetime.now(UTC)))
        finally:
            source.close()
        assert all(isinstance(item, ConsentRecord) for item in items), items
        decisions = {item.person_id: item.decision for item in items if isinstance(item, ConsentRecord)}
        assert decisions == {"PDEMO0001": Decision.GRANTED, "PDEMO0002": Decision.GRANTED, "PDEMO0003": Decision.REFUSED}
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
