"""The settings schema: every key flagsync has, its type, default and rule, and the cross-key rules.

Values are strictly typed (`StrictInteger`, `StrictNumber`, `StrictBoolean`): a number must be a number
(`true` is not 1), a switch must be true or false; text from the environment, a .env file or a secret
file must spell the value exactly. `Settings(...)` reads nothing but its arguments; `load_settings`
(flagsync.settings.loading) reads every source and builds it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from flagsync.core.model import CONTRACT_COLUMNS
from flagsync.errors import ConfigError

ENV_PREFIX = "FLAGSYNC_"
NESTED_DELIMITER = "__"
CONFIG_ENV_VAR = "FLAGSYNC_CONFIG"
SECRETS_DIR_ENV_VAR = "FLAGSYNC_SECRETS_DIR"
DEFAULT_CONFIG_FILE = Path("config/flagsync.toml")
DEFAULT_SECRETS_DIR = Path("/run/secrets")
DOTENV_FILE = Path(".env")
MIN_HMAC_KEY_LENGTH = 16
SECRET_MASK = "***"  # noqa: S105 - the mask shown in place of a secret, not a secret

#: Settings a command that talks to One must have (`load_settings(required=...)` names others).
REQUIRED_SETTINGS: tuple[tuple[str, str], ...] = (
    ("one", "base_url"),
    ("one", "client_id"),
    ("one", "client_secret"),
    ("audit", "hmac_key"),
)

#: What a command that only reads the state store (status, audit) must have: the pseudonym key.
STATE_READER_SETTINGS: tuple[tuple[str, str], ...] = (("audit", "hmac_key"),)

#: Pseudonym keys printed in this repository (the local-mock configuration, the demo). Pseudonyms made with
#: a published key can be reversed by trying every person id, so such a key is refused unless One is local.
PUBLISHED_HMAC_KEYS: frozenset[str] = frozenset(
    {
        "demo-only-not-a-secret-key-0000",  # config/local-mock.toml
        "demo-pseudonym-key-not-for-production",  # flagsync demo
    }
)

#: Variables with the prefix that locate other settings rather than being settings themselves.
_LOCATOR_ENV_VARS = frozenset({CONFIG_ENV_VAR.lower(), SECRETS_DIR_ENV_VAR.lower()})


# --------------------------------------------------------------------------------------------
# Strict scalar types. A TOML value must already have the right type (`max_concurrency = true` is not 1, and
# `max_removal_fraction = true` is not 1.0 - that silently switched the mass-removal guard off); text (from the
# environment, a .env file or a secret file) must spell the value exactly. Nothing is coerced lossily.

_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_BOOLEAN_TEXT = {"true": True, "false": False}


def _integer_from_text(value: object) -> object:
    if not isinstance(value, str):
        return value
    if not _INTEGER_TEXT.fullmatch(value.strip()):
        raise PydanticCustomError("int_parsing", "must be a whole number")
    return int(value.strip())


def _number_from_text(value: object) -> object:
    if not isinstance(value, str):
        return value
    if not _NUMBER_TEXT.fullmatch(value.strip()):
        raise PydanticCustomError("float_parsing", "must be a number")
    return float(value.strip())


def _boolean_from_text(value: object) -> object:
    if not isinstance(value, str):
        return value
    if value.strip().lower() not in _BOOLEAN_TEXT:
        raise PydanticCustomError("bool_parsing", "must be true or false")
    return _BOOLEAN_TEXT[value.strip().lower()]


#: An int that is not a bool or a float; text only as digits.
StrictInteger = Annotated[int, BeforeValidator(_integer_from_text), Strict()]
#: A float (an int is fine: 1 is exactly 1.0) that is not a bool; text only as a decimal number.
StrictNumber = Annotated[float, BeforeValidator(_number_from_text), Strict(), AllowInfNan(False)]
#: A bool that is not a number; text only as true or false.
StrictBoolean = Annotated[bool, BeforeValidator(_boolean_from_text), Strict()]


def _rule_errors(title: str, problems: list[tuple[str, str, str]]) -> ValidationError:
    """A ValidationError with one entry per (field, error type, message), never carrying an input value."""
    return ValidationError.from_exception_data(
        title,
        [
            InitErrorDetails(type=PydanticCustomError(kind, message), loc=tuple(field.split(".")), input=None)
            for field, kind, message in problems
        ],
        hide_input=True,
    )


def _url_problem(value: str) -> str | None:
    """Why `value` is not an acceptable http(s) URL for One, or None when it is."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (use one.client_id and one.client_secret)"
    if parts.query or parts.fragment:
        return "must not contain a query or fragment"
    return None


def _is_loopback(url: str) -> bool:
    """Whether the URL's host is a loopback address or the name ``localhost`` (the same rule as the gateway's)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _database_url_problem(value: SecretStr) -> None:
    try:
        make_url(value.get_secret_value())
    except (ArgumentError, ValueError) as exc:
        # SQLAlchemy's message quotes the URL, which may hold a password: never pass it on.
        raise PydanticCustomError("database_url", "must be a SQLAlchemy database URL such as sqlite:///var/file.db") from exc


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class SourceSettings(_Section):
    kind: Literal["sql", "csv"] = "sql"
    url: SecretStr = SecretStr("sqlite:///var/consent.db")  # may hold a database password
    table: str = "consent_records"
    path: Path | None = None
    # Where a csv source saves its person index between processes; default: beside a SQLite state database.
    index_path: Path | None = None
    columns: dict[str, str] = Field(default_factory=dict)  # contract name -> source column
    timezone: str = "Europe/London"
    accepted_consent_versions: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        _database_url_problem(value)
        return value

    @field_validator("table")
    @classmethod
    def _check_table(cls, value: str) -> str:
        if not value.strip():
            raise PydanticCustomError("empty", "must not be empty")
        return value

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(name for name in value if name not in CONTRACT_COLUMNS)
        if unknown:
            raise PydanticCustomError(
                "unknown_column",
                "unknown contract column {unknown} (the contract columns are {expected})",
                {"unknown": ", ".join(unknown), "expected": ", ".join(CONTRACT_COLUMNS)},
            )
        if any(not column.strip() for column in value.values()):
            raise PydanticCustomError("empty", "a source column name must not be empty")
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise PydanticCustomError("timezone", "must be an IANA time zone such as Europe/London") from exc
        return value

    @property
    def column_map(self) -> dict[str, str]:
        """Every contract column with the source column that holds it (the name itself unless `columns` renames it)."""
        return {name: self.columns.get(name, name).strip() for name in CONTRACT_COLUMNS}  # the one place names are trimmed

    @model_validator(mode="after")
    def _check_kind(self) -> SourceSettings:
        if self.kind == "csv" and self.path is None:
            raise _rule_errors("SourceSettings", [("path", "csv_path", "required when source.kind is 'csv'")])
        index, csv_file = self.index_path, self.path
        if index is not None and csv_file is not None and os.path.abspath(index) == os.path.abspath(csv_file):
            raise _rule_errors("SourceSettings", [("index_path", "index_is_source", "must not be the consent CSV file itself")])
        return self


class OneSettings(_Section):
    base_url: str | None = None  # required; checked at load; stored without a trailing slash
    token_url: str | None = None  # default: <base_url>/connect/token
    client_id: str | None = None
    client_secret: SecretStr | None = None
    ca_bundle: Path | None = None
    proxy: str | None = None  # explicit proxy; the environment's proxy variables are never used
    connect_timeout: StrictNumber = Field(3.05, gt=0)
    read_timeout: StrictNumber = Field(30.0, gt=0)
    max_concurrency: StrictInteger = Field(8, ge=1, le=64)
    max_requests_per_second: StrictNumber = Field(0.0, ge=0)
    page_size: StrictInteger = Field(100, ge=1, le=100)
    allow_insecure_http: StrictBoolean = False

    @field_validator("base_url", "token_url", "proxy")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = _url_problem(value)
        if problem is not None:
            raise PydanticCustomError("url", problem)
        return value.rstrip("/")

    @field_validator("ca_bundle")
    @classmethod
    def _check_ca_bundle(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise PydanticCustomError("file", "file not found")
        return value

    @model_validator(mode="after")
    def _check_transport(self) -> OneSettings:
        # The token request carries the client secret and every call a bearer token: plain http leaves the
        # machine only when an operator has said so explicitly.
        problems = [
            (name, "insecure_url", "plain http is allowed only to a loopback address unless one.allow_insecure_http is true")
            for name, url in (("base_url", self.base_url), ("token_url", self.token_url), ("proxy", self.proxy))
            if url is not None and urlsplit(url).scheme == "http" and not _is_loopback(url) and not self.allow_insecure_http
        ]
        if problems:
            raise _rule_errors("OneSettings", problems)
        return self

    @property
    def effective_token_url(self) -> str:
        """`token_url`, or `<base_url>/connect/token` when it is not set."""
        if self.token_url is not None:
            return self.token_url
        if self.base_url is None:
            raise ConfigError("missing required setting one.base_url")
        return self.base_url + "/connect/token"


class SyncSettings(_Section):
    max_removals: StrictInteger = Field(50, ge=0)
    max_removal_fraction: StrictNumber = Field(0.10, ge=0, le=1)
    change_poll_interval: StrictNumber = Field(1.0, gt=0)  # seconds; withdrawal p95 <= 2 s (benchmarks/README.md)
    full_reconcile_interval: StrictNumber = Field(3600.0, gt=0)  # seconds
    retry_attempts: StrictInteger = Field(5, ge=1)
    retry_max_delay: StrictNumber = Field(300.0, gt=0)  # seconds


class StateSettings(_Section):
    url: SecretStr = SecretStr("sqlite:///var/flagsync-state.db")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr) -> SecretStr:
        _database_url_problem(value)
        return value


class AuditSettings(_Section):
    hmac_key: SecretStr | None = None  # required except in the demo
    # Keys that were hmac_key before a rotation: never written with, only read with (verifying the audit chain,
    # matching pseudonyms made before the rotation). A JSON list in the environment or a secret file.
    previous_hmac_keys: list[SecretStr] = Field(default_factory=list)
    retention_days: StrictInteger = Field(730, ge=1)

    @field_validator("hmac_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_HMAC_KEY_LENGTH:
            raise PydanticCustomError("key_length", "must be at least {n} characters", {"n": MIN_HMAC_KEY_LENGTH})
        return value

    @field_validator("previous_hmac_keys")
    @classmethod
    def _check_previous(cls, value: list[SecretStr]) -> list[SecretStr]:
        texts = [key.get_secret_value() for key in value]
        if any(len(text) < MIN_HMAC_KEY_LENGTH for text in texts):
            raise PydanticCustomError("key_length", "each key must be at least {n} characters", {"n": MIN_HMAC_KEY_LENGTH})
        if len(set(texts)) != len(texts):
            raise PydanticCustomError("duplicate_key", "lists the same key twice")
        return value

    @model_validator(mode="after")
    def _current_is_not_previous(self) -> AuditSettings:
        current = self.hmac_key.get_secret_value() if self.hmac_key is not None else None
        if current is not None and any(key.get_secret_value() == current for key in self.previous_hmac_keys):
            raise PydanticCustomError("key_reused", "previous_hmac_keys must not hold the current audit.hmac_key")
        return self


class LogSettings(_Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class DaemonSettings(_Section):
    http_port: StrictInteger = Field(9108, ge=0, le=65535)
    # Private by default; the container sets 0.0.0.0 explicitly so that its probe and scraper can reach it.
    http_host: str = "127.0.0.1"


class Settings(BaseSettings):
    """Everything flagsync can be configured with; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
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

    @model_validator(mode="after")
    def _check_published_key(self) -> Settings:
        key = self.audit.hmac_key
        published = key is not None and key.get_secret_value() in PUBLISHED_HMAC_KEYS
        if published and (self.one.base_url is None or not _is_loopback(self.one.base_url)):
            message = "is a published example key; it may be used only with one.base_url on loopback (the local mock)"
            raise _rule_errors("Settings", [("audit.hmac_key", "published_key", message)])
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only `load_settings` reads the outside world: it merges the sources it checked and passes the result
        # in as arguments. Settings built directly read nothing else (not even the demo's).
        return (init_settings,)
