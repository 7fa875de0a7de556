"""The one typed settings object, read once at start-up (the only module that reads the environment).

Where settings come from, highest precedence first (`load_settings`):

1. explicit overrides (command-line options), as ``{"log.level": "DEBUG"}`` or ``{"log": {"level": "DEBUG"}}``;
2. environment variables ``FLAGSYNC_<SECTION>__<KEY>`` (case-insensitive), e.g. ``FLAGSYNC_ONE__CLIENT_SECRET``;
3. a ``.env`` file in the current directory, holding the same ``FLAGSYNC_...`` names (other names are ignored);
4. a secrets directory: ``FLAGSYNC_SECRETS_DIR``, else ``/run/secrets`` if it exists. Each file is one setting,
   named like the environment variable (``FLAGSYNC_ONE__CLIENT_SECRET``, ``FLAGSYNC_AUDIT__HMAC_KEY``; any case),
   holding the value (surrounding whitespace stripped). Files without the ``FLAGSYNC_`` prefix are ignored, so the
   directory may be shared with other programs;
5. the TOML file: ``--config``, else ``FLAGSYNC_CONFIG``, else ``config/flagsync.toml`` if present;
6. the defaults below.

``FLAGSYNC_CONFIG`` and ``FLAGSYNC_SECRETS_DIR`` are read from the environment or the ``.env`` file. A key that
does not exist, a bad value or a missing required setting raises `ConfigError` naming every bad key and never
echoing a value. Constructing `Settings(...)` directly reads nothing but its arguments (handy in tests).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
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
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import URL, make_url
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

    @model_validator(mode="after")
    def _check_kind(self) -> SourceSettings:
        if self.kind == "csv" and self.path is None:
            raise _rule_errors("SourceSettings", [("path", "csv_path", "required when source.kind is 'csv'")])
        return self

    def column(self, contract_name: str) -> str:
        """The source column that holds the contract column `contract_name`."""
        return self.columns.get(contract_name, contract_name)


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
    change_poll_interval: StrictNumber = Field(30.0, gt=0)  # seconds
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


#: The sources `load_settings` has prepared for the `Settings` being built (lowest last); None: arguments only.
_active_sources: ContextVar[tuple[PydanticBaseSettingsSource, ...] | None] = ContextVar("flagsync_settings_sources", default=None)


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
        # Only load_settings reads the outside world; it hands over the sources it prepared and checked.
        return (init_settings, *(_active_sources.get() or ()))


class _MappingEnvSettingsSource(EnvSettingsSource):
    """pydantic-settings' environment source reading a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls, case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}


@contextmanager
def _sources_for(sources: tuple[PydanticBaseSettingsSource, ...]) -> Iterator[None]:
    token = _active_sources.set(sources)
    try:
        yield
    finally:
        _active_sources.reset(token)


def _unknown_setting_name(name: str) -> bool:
    """Whether `name` (an env var or secret file name, prefix included) names no setting."""
    parts = name.lower().removeprefix(ENV_PREFIX.lower()).split(NESTED_DELIMITER)
    section_field = Settings.model_fields.get(parts[0])
    if section_field is None:
        return True
    if len(parts) == 1:
        return False  # the whole section as JSON
    section = section_field.annotation
    assert isinstance(section, type) and issubclass(section, BaseModel)  # every top-level field is a section
    field = section.model_fields.get(parts[1])
    if field is None:
        return True
    # A deeper name is only meaningful inside a mapping (source.columns.<contract name>).
    return len(parts) > 2 and not (len(parts) == 3 and parts[1] == "columns")


def _dotted(name: str) -> str:
    """``FLAGSYNC_ONE__BASE_URL`` (or ``one.base_url``) as ``one.base_url``."""
    return ".".join(name.lower().removeprefix(ENV_PREFIX.lower()).split(NESTED_DELIMITER))


def _unknown_keys_in(data: Mapping[str, Any]) -> list[str]:
    """Dotted names of keys in a settings tree (TOML or overrides) that are not settings."""
    unknown: list[str] = []
    for section_name, section_value in data.items():
        section_field = Settings.model_fields.get(section_name)
        if section_field is None:
            unknown.append(section_name)
            continue
        section = section_field.annotation
        assert isinstance(section, type) and issubclass(section, BaseModel)  # every top-level field is a section
        if isinstance(section_value, Mapping):
            unknown.extend(f"{section_name}.{key}" for key in section_value if key not in section.model_fields)
    return unknown


def _nest_overrides(overrides: Mapping[str, object]) -> tuple[dict[str, Any], list[str]]:
    """Turn ``{"one.page_size": 50}`` or ``{"one": {"page_size": 50}}`` into a tree; None means "not given"."""
    tree: dict[str, Any] = {}
    malformed: list[str] = []
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            tree.setdefault(key, {}).update({k: v for k, v in value.items() if v is not None})
            continue
        section, dot, name = key.partition(".")
        if not dot or not name or "." in name:
            malformed.append(key)
            continue
        tree.setdefault(section, {})[name] = value
    return tree, malformed


def _deep_merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(low)
    for key, value in high.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _is_present(tree: Mapping[str, Any], section: str, key: str) -> bool:
    section_value = tree.get(section)
    if isinstance(section_value, BaseModel):
        value = getattr(section_value, key, None)
    elif isinstance(section_value, Mapping):
        value = section_value.get(key)
    else:
        return False
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is not None and value != ""


_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown key",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number (not true/false, not a decimal)",
    "float_parsing": "must be a number",
    "float_type": "must be a number (not true/false)",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false (not a number)",
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "string_type": "must be a string",
    "model_type": "must be a table of settings",
    "model_attributes_type": "must be a table of settings",
    "dict_type": "must be a table",
    "list_type": "must be a list",
}


def _describe_error(error: Mapping[str, Any]) -> str:
    """One "key: problem" line for a pydantic error, built from its type, location and limits, never its input."""
    location = ".".join(str(part) for part in error["loc"])
    template = _MESSAGES.get(error["type"])
    context = error.get("ctx") or {}
    if template is not None:
        message = template.format(**{k: v for k, v in context.items() if k in ("gt", "ge", "lt", "le")})
    else:
        message = str(error["msg"]).replace("Input should", "must", 1).removeprefix("Value error, ")
    return f"{location}: {message}"


def _resolve_config_file(config_file: Path | None, env: Mapping[str, str], dotenv: Mapping[str, str | None]) -> Path | None:
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file not found: {config_file}")
        return config_file
    named = env.get(CONFIG_ENV_VAR) or dotenv.get(CONFIG_ENV_VAR.lower())
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"config file named by {CONFIG_ENV_VAR} not found: {path}")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _resolve_secrets_dir(env: Mapping[str, str], dotenv: Mapping[str, str | None]) -> Path | None:
    named = env.get(SECRETS_DIR_ENV_VAR) or dotenv.get(SECRETS_DIR_ENV_VAR.lower())
    if named:
        path = Path(named)
        if not path.is_dir():
            raise ConfigError(f"secrets directory named by {SECRETS_DIR_ENV_VAR} not found: {path}")
        return path
    return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None


def _secret_file_names(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir() if not entry.name.startswith(".") and entry.is_file())


_SOURCE_NAMES = {
    _MappingEnvSettingsSource.__name__: "the environment",
    DotEnvSettingsSource.__name__: f"the {DOTENV_FILE} file",
    NestedSecretsSettingsSource.__name__: "the secrets directory",
}


def _describe_settings_error(exc: SettingsError) -> str:
    # pydantic-settings names the field and the source, never the value; say it in an operator's words.
    match = re.fullmatch(r'error (?:parsing|getting) value for field "(\w+)" from source "(\w+)"', str(exc))
    if match is None:
        return f"invalid configuration: {exc}"
    section, source = match.groups()
    where = _SOURCE_NAMES.get(source, source)
    return f"invalid configuration: cannot parse a {section}.* value from {where} (tables and lists must be written as JSON)"


def load_settings(
    *,
    config_file: Path | None = None,
    overrides: Mapping[str, object] | None = None,
    required: Iterable[tuple[str, str]] = REQUIRED_SETTINGS,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Read the settings from every source (see the module docstring) and check them.

    `env` replaces the process environment (tests); `required` names the (section, key) settings that
    must be present: all of `REQUIRED_SETTINGS` by default, `STATE_READER_SETTINGS` for commands that
    only read the state store, nothing for tests of the loading itself.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    problems: list[str] = []
    try:
        dotenv_source = DotEnvSettingsSource(Settings, env_file=DOTENV_FILE, dotenv_filtering="only_existing")
        dotenv_vars = {name: value for name, value in dotenv_source.env_vars.items()}
        toml_path = _resolve_config_file(config_file, environ, dotenv_vars)
        secrets_dir = _resolve_secrets_dir(environ, dotenv_vars)
        try:
            toml_source = TomlConfigSettingsSource(Settings, toml_file=toml_path)
        except tomllib.TOMLDecodeError as exc:
            # tomllib's message gives only the position of the fault, never the text around it.
            raise ConfigError(f"{toml_path} is not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {toml_path}: {type(exc).__name__}") from None
        env_source = _MappingEnvSettingsSource(Settings, environ)
        secrets_source = NestedSecretsSettingsSource(
            SecretsSettingsSource(Settings),
            secrets_dir=secrets_dir,
            secrets_dir_missing="ok",
            secrets_prefix=ENV_PREFIX,
            secrets_nested_delimiter=NESTED_DELIMITER,
        )
        override_tree, malformed = _nest_overrides(overrides or {})

        unknown: list[tuple[str, str]] = [("command-line setting", key) for key in _unknown_keys_in(override_tree)]
        unknown += [
            ("environment variable", name)
            for name in sorted(environ)
            if name.upper().startswith(ENV_PREFIX) and name.lower() not in _LOCATOR_ENV_VARS and _unknown_setting_name(name)
        ]
        unknown += [
            (f"key in {DOTENV_FILE}", name.upper())
            for name in sorted(dotenv_vars)
            if name.startswith(ENV_PREFIX.lower()) and name not in _LOCATOR_ENV_VARS and _unknown_setting_name(name)
        ]
        if secrets_dir is not None:
            unknown += [
                (f"secret file in {secrets_dir}", name)
                for name in _secret_file_names(secrets_dir)
                if name.upper().startswith(ENV_PREFIX) and _unknown_setting_name(name)
            ]
        if toml_path is not None:
            unknown += [(f"key in {toml_path}", key) for key in _unknown_keys_in(toml_source.toml_data)]
        problems.extend(f"malformed command-line setting name: {key}" for key in malformed)
        problems.extend(f"unknown {where}: {name}" for where, name in unknown)
        reported = {_dotted(name) for _, name in unknown}

        merged: dict[str, Any] = {}
        for source in (toml_source, secrets_source, dotenv_source, env_source):
            merged = _deep_merge(merged, source())
        merged = _deep_merge(merged, override_tree)
        problems.extend(
            f"missing required setting {section}.{key} (set {ENV_PREFIX}{section.upper()}{NESTED_DELIMITER}{key.upper()}"
            f" or a secret file of that name, or {key} in the [{section}] table of the config file)"
            for section, key in required
            if not _is_present(merged, section, key)
        )

        settings: Settings | None = None
        with _sources_for((env_source, dotenv_source, secrets_source, toml_source)):
            try:
                settings = Settings(**override_tree)
            except ValidationError as exc:
                problems.extend(
                    _describe_error(error)
                    for error in exc.errors(include_url=False, include_input=False)
                    if not (error["type"] == "extra_forbidden" and ".".join(map(str, error["loc"])) in reported)
                )
    except SettingsError as exc:
        raise ConfigError(_describe_settings_error(exc)) from None
    if problems or settings is None:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return settings


def _describe_database_url(value: SecretStr) -> str:
    url: URL = make_url(value.get_secret_value())
    # The query may carry credentials too (sslpassword, ...): show only that there is one.
    rendered = url.set(query={}).render_as_string(hide_password=True)
    return rendered + ("?" + SECRET_MASK if url.query else "")


def describe_settings(s: Settings) -> dict[str, object]:
    """The effective settings as plain data for `flagsync check`, every secret shown as "***"."""
    described: dict[str, object] = {}
    for section_name in Settings.model_fields:
        section: BaseModel = getattr(s, section_name)
        values: dict[str, object] = {}
        for name in type(section).model_fields:
            value = getattr(section, name)
            if name == "url" and isinstance(value, SecretStr):
                values[name] = _describe_database_url(value)
            elif isinstance(value, SecretStr):
                values[name] = SECRET_MASK
            elif isinstance(value, list) and any(isinstance(item, SecretStr) for item in value):
                values[name] = [SECRET_MASK for _ in value]
            elif isinstance(value, Path):
                values[name] = str(value)
            elif isinstance(value, dict | list):
                values[name] = value.copy()
            else:
                values[name] = value
        described[section_name] = values
    one = described["one"]
    assert isinstance(one, dict)
    if s.one.base_url is not None or s.one.token_url is not None:
        one["token_url"] = s.one.effective_token_url
    return described


def secret_values(s: Settings) -> tuple[str, ...]:
    """Every secret the settings hold, for `flagsync.logs.register_secret` to scrub from log lines."""
    found: list[str] = []
    for secret in (s.one.client_secret, s.audit.hmac_key, *s.audit.previous_hmac_keys):
        if secret is not None:
            found.append(secret.get_secret_value())
    for database in (s.source.url, s.state.url):
        url = make_url(database.get_secret_value())
        if url.password:
            found.append(str(url.password))
    return tuple(found)
