"""The one typed settings object, read once at start-up (the only module that reads the environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class SourceSettings(_Section):
    kind: Literal["sql", "csv"] = "sql"
    url: SecretStr = SecretStr("sqlite:///var/consent.db")  # may hold a database password
    table: str = "consent_records"
    path: Path | None = None
    columns: dict[str, str] = Field(default_factory=dict)  # contract name -> source column
    timezone: str = "Europe/London"
    accepted_consent_versions: list[str] = Field(default_factory=list)


class OneSettings(_Section):
    base_url: str | None = None  # required; checked at load
    token_url: str | None = None  # default: <base_url>/connect/token
    client_id: str | None = None
    client_secret: SecretStr | None = None
    ca_bundle: Path | None = None
    connect_timeout: float = Field(3.05, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    max_concurrency: int = Field(8, ge=1, le=64)
    max_requests_per_second: float = Field(0.0, ge=0)
    page_size: int = Field(100, ge=1, le=100)
    allow_insecure_http: bool = False


class SyncSettings(_Section):
    max_removals: int = Field(50, ge=0)
    max_removal_fraction: float = Field(0.10, ge=0, le=1)
    change_poll_interval: float = Field(30.0, gt=0)  # seconds
    full_reconcile_interval: float = Field(3600.0, gt=0)  # seconds
    retry_attempts: int = Field(5, ge=1)
    retry_max_delay: float = Field(300.0, gt=0)  # seconds


class StateSettings(_Section):
    url: SecretStr = SecretStr("sqlite:///var/flagsync-state.db")


class AuditSettings(_Section):
    hmac_key: SecretStr | None = None  # required except in the demo
    retention_days: int = Field(730, ge=1)


class LogSettings(_Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DaemonSettings(_Section):
    http_port: int = Field(9108, ge=0, le=65535)
    http_host: str = "0.0.0.0"  # noqa: S104 - in a container the probe and scraper come from outside


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLAGSYNC_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    source: SourceSettings = Field(default_factory=SourceSettings)
    one: OneSettings = Field(default_factory=OneSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
