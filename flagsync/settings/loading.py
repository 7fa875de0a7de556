"""Reading the settings: where values come from, in which order, and how a problem is worded (never with a value).

Where settings come from, highest precedence first (`load_settings`):

1. explicit overrides (command-line options), as ``{"log.level": "DEBUG"}`` or ``{"log": {"level": "DEBUG"}}``;
2. environment variables ``FLAGSYNC_<SECTION>__<KEY>`` (case-insensitive), e.g. ``FLAGSYNC_ONE__CLIENT_SECRET``;
3. a ``.env`` file in the current directory, holding the same ``FLAGSYNC_...`` names (other names are ignored);
4. a secrets directory: ``FLAGSYNC_SECRETS_DIR``, else ``/run/secrets`` if it exists. Each file is one setting,
   named like the environment variable (``FLAGSYNC_ONE__CLIENT_SECRET``, ``FLAGSYNC_AUDIT__HMAC_KEY``; any case),
   holding the value (surrounding whitespace stripped). Files without the ``FLAGSYNC_`` prefix are ignored, so the
   directory may be shared with other programs;
5. the TOML file: ``--config``, else ``FLAGSYNC_CONFIG``, else ``config/flagsync.toml`` if present. Relative paths
   in it (``source.path``, ``one.ca_bundle``, SQLite files in ``source.url`` and ``state.url``) are relative to the
   file's own directory; relative paths from anywhere else are relative to the working directory;
6. the defaults (flagsync.settings.schema).

pydantic-settings reads each source; the sources are merged here, key by key, and the merged tree is validated
once as `Settings(...)`. ``FLAGSYNC_CONFIG`` and ``FLAGSYNC_SECRETS_DIR`` are read from the environment or the
``.env`` file. A key that does not exist, a bad value or a missing required setting raises `ConfigError`
naming every bad key and never echoing a value.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NestedSecretsSettingsSource,
    SecretsSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from flagsync.errors import ConfigError
from flagsync.settings.schema import (
    _LOCATOR_ENV_VARS,
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_FILE,
    DEFAULT_SECRETS_DIR,
    DOTENV_FILE,
    ENV_PREFIX,
    NESTED_DELIMITER,
    REQUIRED_SETTINGS,
    SECRET_MASK,
    SECRETS_DIR_ENV_VAR,
    Settings,
)


class _MappingEnvSettingsSource(EnvSettingsSource):
    """pydantic-settings' environment source reading a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls, case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._environ.items()}


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


def _is_complex(name: str) -> bool:
    """Whether a known setting's env/secret name targets a table or list (which pydantic-settings reads as JSON)."""
    parts = name.lower().removeprefix(ENV_PREFIX.lower()).split(NESTED_DELIMITER)
    if len(parts) == 1:
        return True  # a whole section
    if len(parts) > 2:
        return False  # one key inside source.columns
    section = Settings.model_fields[parts[0]].annotation
    assert isinstance(section, type) and issubclass(section, BaseModel)  # every top-level field is a section
    annotation = section.model_fields[parts[1]].annotation
    return getattr(annotation, "__origin__", annotation) in (dict, list)


def _json_problems(named: Iterable[tuple[str, str, str | None]]) -> list[str]:
    """A problem for every table or list given as text (environment, .env, secret file) that is not valid JSON.

    Checked here, before pydantic-settings decodes them, so the message can name the key (and never the value).
    """
    problems = []
    for where, name, value in named:
        if value is None or not name.upper().startswith(ENV_PREFIX) or _unknown_setting_name(name) or not _is_complex(name):
            continue
        try:
            json.loads(value)
        except ValueError:
            problems.append(f"{_dotted(name)}: cannot be read from {where} (tables and lists must be written as JSON)")
    return problems


#: Settings holding a file path, and settings holding a database URL whose SQLite file is a path.
_PATH_SETTINGS = (("source", "path"), ("source", "index_path"), ("one", "ca_bundle"))
_DATABASE_URL_SETTINGS = (("source", "url"), ("state", "url"))


def _anchored(tree: Mapping[str, Any], directory: Path) -> dict[str, Any]:
    """The TOML tree with its relative paths made absolute against `directory` (the file's own directory).

    `check` run from elsewhere once silently created a new, empty state database: a relative path in a
    config file means "next to this file", wherever the command runs.
    """
    anchored = {key: dict(value) if isinstance(value, Mapping) else value for key, value in tree.items()}
    for section, key in _PATH_SETTINGS:
        table = anchored.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str) and table[key] and not Path(table[key]).is_absolute():
            table[key] = os.path.normpath(directory / table[key])
    for section, key in _DATABASE_URL_SETTINGS:
        table = anchored.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str):
            table[key] = _anchored_sqlite_url(table[key], directory)
    return anchored


def _anchored_sqlite_url(value: str, directory: Path) -> str:
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        return value  # the schema reports it, without the value
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return value
    if Path(database).is_absolute():
        return value
    return url.set(database=os.path.normpath(directory / database)).render_as_string(hide_password=False)


def _where_looked(environ: Mapping[str, str]) -> str:
    return (
        f"no configuration file was read: none given with --config or {CONFIG_ENV_VAR}, "
        f"and no {DEFAULT_CONFIG_FILE} in {Path.cwd()}"
    )


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
    dotenv_source = DotEnvSettingsSource(Settings, env_file=DOTENV_FILE, dotenv_filtering="only_existing")
    dotenv_vars = dict(dotenv_source.env_vars.items())
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
    secret_files = _secret_files(secrets_dir)

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
    unknown += [
        (f"secret file in {secrets_dir}", name)
        for name in sorted(secret_files)
        if name.upper().startswith(ENV_PREFIX) and _unknown_setting_name(name)
    ]
    if toml_path is not None:
        unknown += [(f"key in {toml_path}", key) for key in _unknown_keys_in(toml_source.toml_data)]
    problems.extend(f"malformed command-line setting name: {key}" for key in malformed)
    problems.extend(f"unknown {where}: {name}" for where, name in unknown)
    unreadable = _json_problems(
        [("the environment", name, value) for name, value in environ.items() if name.lower() not in _LOCATOR_ENV_VARS]
        + [(f"the {DOTENV_FILE} file", name, value) for name, value in dotenv_vars.items() if name not in _LOCATOR_ENV_VARS]
        + [("the secrets directory", name, value) for name, value in secret_files.items()]
    )
    if unreadable:  # the sources cannot be read at all: report what is known so far
        raise ConfigError("invalid configuration: " + "; ".join([*problems, *unreadable]))
    reported = {_dotted(name) for _, name in unknown}

    merged: dict[str, Any] = {}
    for source, where in (
        (toml_source, str(toml_path)),
        (secrets_source, "the secrets directory"),
        (dotenv_source, f"the {DOTENV_FILE} file"),
        (env_source, "the environment"),
    ):
        try:
            values = source()
        except SettingsError:
            # Every known table or list was checked above; this is a value pydantic-settings could not take for another reason.
            raise ConfigError(f"invalid configuration: a value in {where} could not be read") from None
        if source is toml_source and toml_path is not None:
            values = _anchored(values, toml_path.resolve().parent)
        merged = _deep_merge(merged, values)
    merged = _deep_merge(merged, override_tree)
    problems.extend(
        f"missing required setting {section}.{key} (set {ENV_PREFIX}{section.upper()}{NESTED_DELIMITER}{key.upper()}"
        f" or a secret file of that name, or {key} in the [{section}] table of the config file)"
        for section, key in required
        if not _is_present(merged, section, key)
    )

    settings: Settings | None = None
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        problems.extend(
            _describe_error(error)
            for error in exc.errors(include_url=False, include_input=False)
            if not (error["type"] == "extra_forbidden" and ".".join(map(str, error["loc"])) in reported)
        )
    if problems or settings is None:
        where = f"; {_where_looked(environ)}" if toml_path is None else ""
        raise ConfigError("invalid configuration: " + "; ".join(problems) + where)
    return settings


def _secret_files(directory: Path | None) -> dict[str, str]:
    """The secret files with the prefix in `directory`, by name, with their values (to check tables and lists)."""
    if directory is None:
        return {}
    files = {}
    for name in _secret_file_names(directory):
        if name.upper().startswith(ENV_PREFIX):
            try:
                files[name] = (directory / name).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                files[name] = ""
    return files


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
