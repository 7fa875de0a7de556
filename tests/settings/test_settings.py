"""Tests for loading, checking and describing flagsync's settings."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from pydantic import BaseModel

from flagsync.bootstrap import saved_person_index
from flagsync.errors import ConfigError
from flagsync.settings import (
    REQUIRED_SETTINGS,
    OneSettings,
    Settings,
    describe_settings,
    load_settings,
    secret_values,
)

REPO = Path(__file__).resolve().parents[2]
CANARY = "CANARY-s3cr3t-7f1d"
GOOD_KEY = "0123456789abcdef-test-key"

Loader = Callable[..., Settings]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, so no stray .env or config/flagsync.toml is read."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secrets").mkdir()
    return tmp_path


@pytest.fixture
def load(workdir: Path) -> Loader:
    """load_settings with a private secrets directory and only the given environment."""

    def _load(*, env: Mapping[str, str] | None = None, **kwargs: object) -> Settings:
        environ = {"FLAGSYNC_SECRETS_DIR": str(workdir / "secrets"), **(env or {})}
        return load_settings(env=environ, **kwargs)  # type: ignore[arg-type]  # kwargs are load_settings' own

    return _load


def required_env() -> dict[str, str]:
    return {
        "FLAGSYNC_ONE__BASE_URL": "https://one.example.gov.uk",
        "FLAGSYNC_ONE__CLIENT_ID": "flagsync",
        "FLAGSYNC_ONE__CLIENT_SECRET": "client-secret-value",
        "FLAGSYNC_AUDIT__HMAC_KEY": GOOD_KEY,
    }


def config_error(loader: Callable[[], object]) -> str:
    with pytest.raises(ConfigError) as caught:
        loader()
    return str(caught.value)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- sources and precedence -----------------------------------------------------------------------------------------


def test_defaults_apply_when_nothing_is_configured(load: Loader) -> None:
    """With no source at all, every setting has its documented default."""
    settings = load(required=())
    assert settings == Settings()
    assert settings.source.kind == "sql"
    assert settings.source.url.get_secret_value() == "sqlite:///var/consent.db"
    assert settings.one.page_size == 100
    assert settings.sync.max_removal_fraction == 0.10
    assert settings.daemon.http_port == 9108


LAYERS = ("toml", "secrets", "dotenv", "env", "override")


@pytest.mark.parametrize("highest", LAYERS)
def test_the_highest_source_present_wins(load: Loader, workdir: Path, highest: str) -> None:
    """Overrides beat the environment, which beats .env, which beats secret files, which beat the TOML file."""
    value = {layer: str(10 + i) for i, layer in enumerate(LAYERS)}
    present = LAYERS[: LAYERS.index(highest) + 1]
    env: dict[str, str] = {}
    overrides: dict[str, object] = {}
    if "toml" in present:
        write(workdir / "config" / "flagsync.toml", f"[one]\npage_size = {value['toml']}\n")
    if "secrets" in present:
        write(workdir / "secrets" / "FLAGSYNC_ONE__PAGE_SIZE", value["secrets"] + "\n")
    if "dotenv" in present:
        write(workdir / ".env", f"FLAGSYNC_ONE__PAGE_SIZE={value['dotenv']}\n")
    if "env" in present:
        env["FLAGSYNC_ONE__PAGE_SIZE"] = value["env"]
    if "override" in present:
        overrides["one.page_size"] = int(value["override"])
    settings = load(env=env, overrides=overrides, required=())
    assert settings.one.page_size == int(value[highest])


def test_sources_merge_key_by_key(load: Loader, workdir: Path) -> None:
    """Different keys of one section may come from different sources."""
    write(workdir / "config" / "flagsync.toml", '[one]\nbase_url = "https://one.example"\npage_size = 20\n')
    write(workdir / "secrets" / "FLAGSYNC_ONE__CLIENT_SECRET", "from-a-file\n")
    settings = load(env={"FLAGSYNC_ONE__CLIENT_ID": "env-client"}, overrides={"one": {"read_timeout": 5}}, required=())
    assert settings.one.base_url == "https://one.example"
    assert settings.one.page_size == 20
    assert settings.one.client_secret is not None
    assert settings.one.client_secret.get_secret_value() == "from-a-file"
    assert settings.one.client_id == "env-client"
    assert settings.one.read_timeout == 5


def test_secret_file_names_are_case_insensitive_and_values_stripped(load: Loader, workdir: Path) -> None:
    """A secret file may be named in lower case, and its trailing newline is not part of the secret."""
    write(workdir / "secrets" / "flagsync_audit__hmac_key", f"  {GOOD_KEY}\n")
    settings = load(required=())
    assert settings.audit.hmac_key is not None
    assert settings.audit.hmac_key.get_secret_value() == GOOD_KEY


def test_files_without_the_prefix_in_the_secrets_directory_are_ignored(load: Loader, workdir: Path) -> None:
    """The secrets directory may hold other programs' secrets."""
    write(workdir / "secrets" / "postgres_password", "whatever\n")
    assert load(required=()) == Settings()


def test_missing_named_secrets_directory_is_an_error(workdir: Path) -> None:
    """FLAGSYNC_SECRETS_DIR naming a directory that does not exist stops start-up."""
    message = config_error(lambda: load_settings(env={"FLAGSYNC_SECRETS_DIR": str(workdir / "nope")}, required=()))
    assert "FLAGSYNC_SECRETS_DIR" in message


def test_tables_and_lists_come_from_the_environment_as_json(load: Loader) -> None:
    """source.columns and source.accepted_consent_versions can be set as JSON in the environment."""
    settings = load(
        env={
            "FLAGSYNC_SOURCE__COLUMNS": '{"person_id": "one_id"}',
            "FLAGSYNC_SOURCE__ACCEPTED_CONSENT_VERSIONS": '["v3", "v4"]',
        },
        required=(),
    )
    assert settings.source.columns == {"person_id": "one_id"}
    assert settings.source.column_map["person_id"] == "one_id"
    assert settings.source.column_map["decision"] == "decision"
    assert settings.source.accepted_consent_versions == ["v3", "v4"]


def test_dotenv_entries_without_the_prefix_are_ignored(load: Loader, workdir: Path) -> None:
    """A .env shared with other tools may hold their variables."""
    write(workdir / ".env", "COMPOSE_PROJECT_NAME=x\nFLAGSYNC_LOG__LEVEL=DEBUG\n")
    assert load(required=()).log.level == "DEBUG"


def test_overrides_given_as_none_are_ignored(load: Loader) -> None:
    """A command-line option that was not given (None) does not override anything."""
    settings = load(env={"FLAGSYNC_LOG__FORMAT": "json"}, overrides={"log.format": None}, required=())
    assert settings.log.format == "json"


def test_log_level_is_case_insensitive(load: Loader) -> None:
    """log.level accepts "debug" as well as "DEBUG"."""
    assert load(env={"FLAGSYNC_LOG__LEVEL": "debug"}, required=()).log.level == "DEBUG"


def test_settings_built_directly_read_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings(...) uses only its arguments and the defaults, never the environment."""
    monkeypatch.setenv("FLAGSYNC_ONE__PAGE_SIZE", "7")
    assert Settings().one.page_size == 100


# --- which TOML file ------------------------------------------------------------------------------------------------


def test_explicit_config_file_beats_flagsync_config_and_the_default(load: Loader, workdir: Path) -> None:
    """--config wins over FLAGSYNC_CONFIG, which wins over config/flagsync.toml."""
    write(workdir / "config" / "flagsync.toml", "[one]\npage_size = 1\n")
    named = write(workdir / "named.toml", "[one]\npage_size = 2\n")
    explicit = write(workdir / "explicit.toml", "[one]\npage_size = 3\n")
    assert load(required=()).one.page_size == 1
    assert load(env={"FLAGSYNC_CONFIG": str(named)}, required=()).one.page_size == 2
    assert load(env={"FLAGSYNC_CONFIG": str(named)}, config_file=explicit, required=()).one.page_size == 3


def test_flagsync_config_may_come_from_the_dotenv_file(load: Loader, workdir: Path) -> None:
    """FLAGSYNC_CONFIG in .env names the TOML file too."""
    named = write(workdir / "named.toml", "[one]\npage_size = 2\n")
    write(workdir / ".env", f"FLAGSYNC_CONFIG={named}\n")
    assert load(required=()).one.page_size == 2


@pytest.mark.parametrize("how", ["explicit", "env"])
def test_a_named_config_file_that_does_not_exist_is_an_error(load: Loader, workdir: Path, how: str) -> None:
    """A config file that was asked for but is missing stops start-up with its name."""
    missing = workdir / "missing.toml"
    if how == "explicit":
        message = config_error(lambda: load(config_file=missing, required=()))
    else:
        message = config_error(lambda: load(env={"FLAGSYNC_CONFIG": str(missing)}, required=()))
    assert "missing.toml" in message


# --- unknown keys ---------------------------------------------------------------------------------------------------


def test_unknown_toml_key_is_named_with_its_file(load: Loader, workdir: Path) -> None:
    """A misspelt key in the TOML file stops start-up naming the file and the key."""
    path = write(workdir / "x.toml", '[one]\nbase_ulr = "https://one.example"\n[nope]\na = 1\n')
    message = config_error(lambda: load(config_file=path, required=()))
    assert f"unknown key in {path}: one.base_ulr" in message
    assert f"unknown key in {path}: nope" in message
    assert message.count("base_ulr") == 1


@pytest.mark.parametrize(
    "name",
    ["FLAGSYNC_ONE__BASE_ULR", "FLAGSYNC_NOPE__X", "FLAGSYNC_ONE", "flagsync_one__base_ulr", "FLAGSYNC_ONE__PAGE_SIZE__X"],
)
def test_unknown_environment_variable_is_named(load: Loader, name: str) -> None:
    """An environment variable with the prefix that names no setting stops start-up naming it."""
    value = "{}" if name == "FLAGSYNC_ONE" else "1"
    if name == "FLAGSYNC_ONE":
        # The whole section as JSON is a legitimate form: not unknown.
        assert load(env={name: value}, required=()) == Settings()
        return
    message = config_error(lambda: load(env={name: value}, required=()))
    assert f"unknown environment variable: {name}" in message


def test_locator_variables_and_other_programs_variables_are_not_unknown(load: Loader, workdir: Path) -> None:
    """FLAGSYNC_CONFIG, FLAGSYNC_SECRETS_DIR and variables without the prefix are accepted."""
    config = write(workdir / "c.toml", "")
    assert load(env={"FLAGSYNC_CONFIG": str(config), "PATH": "/bin", "HOME": "/root"}, required=()) == Settings()


def test_unknown_dotenv_key_is_named(load: Loader, workdir: Path) -> None:
    """A misspelt FLAGSYNC_ name in .env stops start-up naming it."""
    write(workdir / ".env", "FLAGSYNC_LOG__LEVLE=DEBUG\n")
    assert "unknown key in .env: FLAGSYNC_LOG__LEVLE" in config_error(lambda: load(required=()))


def test_unknown_secret_file_is_named(load: Loader, workdir: Path) -> None:
    """A misspelt FLAGSYNC_ secret file name stops start-up naming it."""
    write(workdir / "secrets" / "FLAGSYNC_ONE__CLIENT_SECRT", "x\n")
    assert "FLAGSYNC_ONE__CLIENT_SECRT" in config_error(lambda: load(required=()))


@pytest.mark.parametrize("overrides", [{"one.base_ulr": "x"}, {"one": {"base_ulr": "x"}}, {"nope.x": 1}])
def test_unknown_override_is_named(load: Loader, overrides: dict[str, object]) -> None:
    """A command-line override naming no setting is reported."""
    assert "unknown command-line setting" in config_error(lambda: load(overrides=overrides, required=()))


def test_malformed_override_name_is_reported(load: Loader) -> None:
    """An override key that is not section.key is reported."""
    assert "malformed command-line setting name: page_size" in config_error(lambda: load(overrides={"page_size": 3}, required=()))


# --- required settings ----------------------------------------------------------------------------------------------


def test_every_missing_required_setting_is_named_with_how_to_set_it(load: Loader) -> None:
    """Without credentials, start-up stops naming each missing setting and its variable."""
    message = config_error(load)
    for section, key in REQUIRED_SETTINGS:
        assert f"missing required setting {section}.{key}" in message
        assert f"FLAGSYNC_{section.upper()}__{key.upper()}" in message


def test_required_settings_are_satisfied_from_any_source(load: Loader, workdir: Path) -> None:
    """Required settings may come from the environment, secret files and the TOML file together."""
    write(workdir / "config" / "flagsync.toml", '[one]\nbase_url = "https://one.example"\nclient_id = "c"\n')
    write(workdir / "secrets" / "FLAGSYNC_ONE__CLIENT_SECRET", "s\n")
    settings = load(env={"FLAGSYNC_AUDIT__HMAC_KEY": GOOD_KEY})
    assert settings.one.client_id == "c"


def test_an_empty_required_value_counts_as_missing(load: Loader) -> None:
    """FLAGSYNC_ONE__CLIENT_SECRET= (empty) does not satisfy the requirement."""
    env = required_env() | {"FLAGSYNC_ONE__CLIENT_SECRET": ""}
    assert "missing required setting one.client_secret" in config_error(lambda: load(env=env))


def test_the_demo_may_run_without_credentials(load: Loader) -> None:
    """required=() accepts missing One credentials and pseudonym key."""
    settings = load(required=())
    assert settings.one.base_url is None
    assert settings.audit.hmac_key is None


# --- value rules ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FLAGSYNC_ONE__PAGE_SIZE": "101"}, "one.page_size: must be <= 100"),
        ({"FLAGSYNC_ONE__PAGE_SIZE": "0"}, "one.page_size: must be >= 1"),
        ({"FLAGSYNC_ONE__CONNECT_TIMEOUT": "0"}, "one.connect_timeout: must be > 0"),
        ({"FLAGSYNC_SYNC__MAX_REMOVAL_FRACTION": "1.5"}, "sync.max_removal_fraction: must be <= 1"),
        ({"FLAGSYNC_SYNC__MAX_REMOVALS": "many"}, "sync.max_removals: must be a whole number"),
        ({"FLAGSYNC_ONE__ALLOW_INSECURE_HTTP": "perhaps"}, "one.allow_insecure_http: must be true or false"),
        ({"FLAGSYNC_SOURCE__KIND": "excel"}, "source.kind: must be 'sql' or 'csv'"),
        ({"FLAGSYNC_SOURCE__KIND": "csv"}, "source.path: required when source.kind is 'csv'"),
        ({"FLAGSYNC_SOURCE__TIMEZONE": "Mars/Olympus_Mons"}, "source.timezone: must be an IANA time zone"),
        ({"FLAGSYNC_SOURCE__COLUMNS": '{"person": "p"}'}, "source.columns: unknown contract column person"),
        ({"FLAGSYNC_SOURCE__URL": "not a url"}, "source.url: must be a SQLAlchemy database URL"),
        ({"FLAGSYNC_STATE__URL": "::"}, "state.url: must be a SQLAlchemy database URL"),
        ({"FLAGSYNC_AUDIT__HMAC_KEY": "short"}, "audit.hmac_key: must be at least 16 characters"),
        ({"FLAGSYNC_ONE__CA_BUNDLE": "/nonexistent/ca.pem"}, "one.ca_bundle: file not found"),
        ({"FLAGSYNC_LOG__FORMAT": "xml"}, "log.format: must be 'auto', 'json' or 'console'"),
    ],
)
def test_bad_values_are_named(load: Loader, env: dict[str, str], expected: str) -> None:
    """Each rule's breach is reported as "<section>.<key>: <problem>"."""
    assert expected in config_error(lambda: load(env=env, required=()))


# --- strict types (issue 6: `max_removal_fraction = true` silently switched the mass-removal guard off) -------------

#: Every setting whose type is a number or a boolean, as (section, key, kind).
NUMERIC_SETTINGS = [
    (section, key, kind)
    for section, field in Settings.model_fields.items()
    for key, sub in field.annotation.model_fields.items()  # type: ignore[union-attr]  # every section is a model
    for kind in [getattr(sub.annotation, "__name__", "")]
    if kind in ("int", "float", "bool")
]


def test_the_numeric_and_boolean_settings_are_the_expected_ones() -> None:
    """The strictness tests below cover every number and switch there is (a new one is covered automatically)."""
    assert ("sync", "max_removal_fraction", "float") in NUMERIC_SETTINGS
    assert ("one", "max_concurrency", "int") in NUMERIC_SETTINGS
    assert ("one", "allow_insecure_http", "bool") in NUMERIC_SETTINGS
    assert len(NUMERIC_SETTINGS) >= 14


@pytest.mark.parametrize(("section", "key", "kind"), NUMERIC_SETTINGS)
@pytest.mark.parametrize("value", ["true", "false", "1.5", "1e400", "nan", "[1]"])
def test_toml_values_of_the_wrong_type_are_refused(  # noqa: PLR0917 - pytest passes parameters positionally
    load: Loader, workdir: Path, section: str, key: str, kind: str, value: str
) -> None:
    """A boolean for a number, a number for a boolean, a fraction for a whole number, infinity or a list is refused by name."""
    if (kind == "bool" and value in ("true", "false")) or (kind == "float" and value == "1.5"):
        return  # the right type: covered by the acceptance test below
    path = write(workdir / "strict.toml", f"[{section}]\n{key} = {value}\n")
    message = config_error(lambda: load(config_file=path, required=()))
    assert f"{section}.{key}: must be" in message


@pytest.mark.parametrize(("section", "key", "kind"), NUMERIC_SETTINGS)
@pytest.mark.parametrize("text", ["true", "yes", "1.0", "0x10", "1_000", "nan", "inf", ""])
def test_environment_text_must_spell_the_value_exactly(load: Loader, section: str, key: str, kind: str, text: str) -> None:
    """From the environment, a number must be written as digits and a switch as true/false; nothing else is guessed."""
    acceptable = {"bool": {"true"}, "float": {"1.0"}, "int": set()}[kind]
    env = {f"FLAGSYNC_{section.upper()}__{key.upper()}": text}
    if text in acceptable:
        load(env=env, required=())
        return
    message = config_error(lambda: load(env=env, required=()))
    assert f"{section}.{key}: must be" in message


def test_max_removal_fraction_true_is_refused_not_read_as_one(load: Loader, workdir: Path) -> None:
    """The reproduced case: `max_removal_fraction = true` stops start-up instead of disabling the guard."""
    path = write(workdir / "guard.toml", "[sync]\nmax_removal_fraction = true\nmax_removals = 50\n")
    assert "sync.max_removal_fraction: must be a number (not true/false)" in config_error(
        lambda: load(config_file=path, required=())
    )


def test_max_concurrency_true_is_refused_not_read_as_one(load: Loader, workdir: Path) -> None:
    """The reproduced case: `max_concurrency = true` is an error, not 1."""
    path = write(workdir / "conc.toml", "[one]\nmax_concurrency = true\n")
    assert "one.max_concurrency: must be a whole number" in config_error(lambda: load(config_file=path, required=()))


def test_well_typed_values_load_from_toml_and_text(load: Loader, workdir: Path) -> None:
    """Right-typed TOML values and exactly spelt text load; an int is fine where a number is wanted."""
    path = write(workdir / "ok.toml", "[sync]\nmax_removal_fraction = 1\nmax_removals = 3\n[one]\nallow_insecure_http = true\n")
    settings = load(config_file=path, env={"FLAGSYNC_ONE__PAGE_SIZE": " 50 ", "FLAGSYNC_ONE__READ_TIMEOUT": "2.5"}, required=())
    assert settings.sync.max_removal_fraction == 1.0
    assert settings.sync.max_removals == 3
    assert settings.one.allow_insecure_http is True
    assert settings.one.page_size == 50
    assert settings.one.read_timeout == 2.5


def test_the_daemon_port_is_private_by_default() -> None:
    """daemon.http_host defaults to loopback: /healthz and /metrics are not reachable from other machines."""
    assert Settings().daemon.http_host == "127.0.0.1"


@pytest.mark.parametrize(
    ("proxy", "ok"),
    [
        ("https://proxy.example.org:3128", True),
        ("http://127.0.0.1:3128", True),
        ("http://proxy.example.org:3128", False),
        ("http://user:pw@127.0.0.1:3128", False),
        ("socks5://127.0.0.1:1080", False),
    ],
)
def test_one_proxy_follows_the_https_rule(load: Loader, proxy: str, ok: bool) -> None:
    """one.proxy must be https, or plain http to loopback, with no credentials in the URL."""
    env = {"FLAGSYNC_ONE__PROXY": proxy}
    if ok:
        assert load(env=env, required=()).one.proxy == proxy
    else:
        message = config_error(lambda: load(env=env, required=()))
        assert "one.proxy:" in message
        assert "pw" not in message


def test_a_dot_localhost_name_is_not_loopback(load: Loader) -> None:
    """http://api.localhost is refused like any other host name: settings and gateway agree on what loopback is."""
    message = config_error(lambda: load(env={"FLAGSYNC_ONE__BASE_URL": "http://api.localhost:8080"}, required=()))
    assert "one.base_url: plain http" in message


def test_a_csv_source_with_a_path_is_accepted(load: Loader) -> None:
    """source.kind csv with source.path loads."""
    settings = load(env={"FLAGSYNC_SOURCE__KIND": "csv", "FLAGSYNC_SOURCE__PATH": "export.csv"}, required=())
    assert settings.source.path == Path("export.csv")


def test_every_problem_is_reported_at_once(load: Loader, workdir: Path) -> None:
    """Unknown keys, bad values and missing settings from several sources are reported in one message."""
    path = write(workdir / "x.toml", "[one]\nbase_ulr = 1\npage_size = 500\n")
    message = config_error(lambda: load(config_file=path, env={"FLAGSYNC_SYNC__RETRY_ATTEMPTS": "0", "FLAGSYNC_LOG__LEVLE": "x"}))
    for expected in (
        "one.base_ulr",
        "one.page_size: must be <= 100",
        "sync.retry_attempts: must be >= 1",
        "FLAGSYNC_LOG__LEVLE",
        "missing required setting audit.hmac_key",
    ):
        assert expected in message


@pytest.mark.parametrize(
    "url",
    [
        "https://one.example.gov.uk",
        "https://one.example.gov.uk/base/",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
        "http://127.0.0.2",
    ],
)
def test_https_anywhere_and_http_to_loopback_are_accepted(load: Loader, url: str) -> None:
    """one.base_url may be https, or plain http to a loopback address; a trailing slash is dropped."""
    settings = load(env={"FLAGSYNC_ONE__BASE_URL": url}, required=())
    assert settings.one.base_url == url.rstrip("/")


@pytest.mark.parametrize("key", ["BASE_URL", "TOKEN_URL"])
def test_plain_http_to_another_host_needs_allow_insecure_http(load: Loader, key: str) -> None:
    """Plain http off the machine is refused naming the key and the switch, and accepted with the switch."""
    env = {"FLAGSYNC_ONE__BASE_URL": "https://one.example", f"FLAGSYNC_ONE__{key}": "http://one.example"}
    message = config_error(lambda: load(env=env, required=()))
    assert f"one.{key.lower()}: plain http" in message
    assert "one.allow_insecure_http" in message
    allowed = load(env=env | {"FLAGSYNC_ONE__ALLOW_INSECURE_HTTP": "true"}, required=())
    assert allowed.one.allow_insecure_http


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://one.example", "must be an http:// or https:// URL"),
        ("one.example", "must be an http:// or https:// URL"),
        ("https://", "must be an http:// or https:// URL"),
        ("https://user:pw@one.example", "must not contain credentials"),
        ("https://one.example/?x=1", "must not contain a query"),
    ],
)
def test_malformed_one_urls_are_refused(load: Loader, url: str, problem: str) -> None:
    """one.base_url must be an http(s) URL with a host and without credentials or a query."""
    assert f"one.base_url: {problem}" in config_error(lambda: load(env={"FLAGSYNC_ONE__BASE_URL": url}, required=()))


def test_effective_token_url_defaults_to_connect_token_under_the_base_url() -> None:
    """Without one.token_url, the token endpoint is <base_url>/connect/token."""
    assert OneSettings(base_url="https://one.example/base/").effective_token_url == "https://one.example/base/connect/token"
    explicit = OneSettings(base_url="https://one.example", token_url="https://login.example/token")
    assert explicit.effective_token_url == "https://login.example/token"
    with pytest.raises(ConfigError):
        _ = OneSettings().effective_token_url


# --- never a value --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"FLAGSYNC_AUDIT__HMAC_KEY": CANARY},  # too short
        {"FLAGSYNC_ONE__CLIENT_SECRET": '{"a": "' + CANARY + '"}', "FLAGSYNC_ONE__PAGE_SIZE": CANARY},
        {"FLAGSYNC_ONE__BASE_URL": f"ftp://{CANARY}.example/"},
        {"FLAGSYNC_ONE__BASE_URL": f"https://user:{CANARY}@one.example"},
        {"FLAGSYNC_ONE__BASE_URL": f"http://{CANARY}.example"},
        {"FLAGSYNC_SOURCE__COLUMNS": "{" + CANARY},
        {"FLAGSYNC_SOURCE__URL": f"postgresql://u:{CANARY}@h:notaport/db"},
        {"FLAGSYNC_SOURCE__TIMEZONE": CANARY},
        {"FLAGSYNC_LOG__LEVEL": CANARY},
        {"FLAGSYNC_ONE__CA_BUNDLE": f"/nonexistent/{CANARY}"},
    ],
)
def test_error_messages_never_echo_a_value(load: Loader, env: dict[str, str]) -> None:
    """Whatever is wrong, the message names keys but never shows the value given (a secret, perhaps)."""
    message = config_error(lambda: load(env=env))
    assert CANARY not in message


def test_toml_syntax_errors_do_not_echo_the_line(load: Loader, workdir: Path) -> None:
    """A broken TOML file is reported by position, without the text around the fault."""
    path = write(workdir / "broken.toml", f'[one]\nclient_secret: "{CANARY}"\n')
    message = config_error(lambda: load(config_file=path, required=()))
    assert "broken.toml is not valid TOML" in message
    assert CANARY not in message


def test_wrongly_typed_secret_in_toml_is_not_echoed(load: Loader, workdir: Path) -> None:
    """A secret given as a table or number is reported by key only."""
    path = write(workdir / "c.toml", f'[one.client_secret]\nvalue = "{CANARY}"\n[audit]\nhmac_key = 12345\n')
    message = config_error(lambda: load(config_file=path, required=()))
    assert "one.client_secret" in message
    assert "audit.hmac_key" in message
    assert CANARY not in message


# --- describing -----------------------------------------------------------------------------------------------------


def test_describe_settings_masks_every_secret(load: Loader) -> None:
    """The description shows every setting but secrets as "***" and database passwords masked."""
    env = required_env() | {
        "FLAGSYNC_ONE__CLIENT_SECRET": CANARY + "-client",
        "FLAGSYNC_AUDIT__HMAC_KEY": CANARY + "-hmac-key",
        "FLAGSYNC_AUDIT__PREVIOUS_HMAC_KEYS": json.dumps([CANARY + "-previous-key"]),
        "FLAGSYNC_STATE__URL": f"postgresql://flagsync:{CANARY}@db:5432/state?sslpassword={CANARY}",
    }
    described = describe_settings(load(env=env))
    text = json.dumps(described)
    assert CANARY not in text
    one = described["one"]
    assert isinstance(one, dict)
    assert one["client_secret"] == "***"
    assert one["token_url"] == "https://one.example.gov.uk/connect/token"
    assert described["audit"] == {"hmac_key": "***", "previous_hmac_keys": ["***"], "retention_days": 730}
    assert described["state"] == {"url": "postgresql://flagsync:***@db:5432/state?***"}
    assert set(described) == set(Settings.model_fields)


def test_secret_values_lists_what_logs_must_scrub(load: Loader) -> None:
    """secret_values returns the client secret, the pseudonym key and any database password."""
    env = required_env() | {"FLAGSYNC_SOURCE__URL": "postgresql://u:db-password@h/consent"}
    assert set(secret_values(load(env=env))) == {"client-secret-value", GOOD_KEY, "db-password"}


# --- the shipped configuration files --------------------------------------------------------------------------------


def test_local_mock_configuration_loads_with_everything_required(load: Loader) -> None:
    """config/local-mock.toml is a complete configuration for the local mock server."""
    settings = load(config_file=REPO / "config" / "local-mock.toml")
    assert settings.one.base_url == "http://127.0.0.1:8080"
    assert settings.one.client_id == "flagsync-local"
    assert settings.one.client_secret is not None
    assert settings.one.client_secret.get_secret_value() == "local-secret"
    # Relative to the file (config/), so the same files whatever the working directory.
    assert settings.source.url.get_secret_value() == f"sqlite:///{REPO / 'var' / 'demo' / 'demo-consent.db'}"
    # Its state is apart from both the demo's and the production default.
    assert settings.state.url.get_secret_value() == f"sqlite:///{REPO / 'var' / 'local-mock' / 'flagsync-state.db'}"


# --- relative paths and where the file was looked for (issue 10) ----------------------------------------------------


def test_relative_paths_in_a_config_file_are_relative_to_that_file(load: Loader, workdir: Path) -> None:
    """SQLite files, source.path and one.ca_bundle written relative in a TOML file resolve against the file's directory."""
    folder = workdir / "etc" / "flagsync"
    (folder / "certs").mkdir(parents=True)
    (folder / "certs" / "ca.pem").write_text("x")
    path = write(
        folder / "flagsync.toml",
        '[source]\nurl = "sqlite:///data/consent.db"\npath = "export.csv"\nindex_path = "cache/person-index"\n'
        '[state]\nurl = "sqlite:///../state/s.db"\n[one]\nca_bundle = "certs/ca.pem"\n',
    )
    settings = load(config_file=path, required=())
    assert settings.source.url.get_secret_value() == f"sqlite:///{folder / 'data' / 'consent.db'}"
    assert settings.state.url.get_secret_value() == f"sqlite:///{workdir / 'etc' / 'state' / 's.db'}"
    assert settings.source.path == folder / "export.csv"
    assert settings.source.index_path == folder / "cache" / "person-index"
    assert settings.one.ca_bundle == folder / "certs" / "ca.pem"


def test_relative_paths_from_the_environment_stay_relative_to_the_working_directory(load: Loader, workdir: Path) -> None:
    """A relative path given in the environment is left as it is (the working directory's)."""
    settings = load(env={"FLAGSYNC_STATE__URL": "sqlite:///var/s.db", "FLAGSYNC_SOURCE__PATH": "x.csv"}, required=())
    assert settings.state.url.get_secret_value() == "sqlite:///var/s.db"
    assert settings.source.path == Path("x.csv")


def test_absolute_and_in_memory_urls_are_left_alone(load: Loader, workdir: Path) -> None:
    """Absolute SQLite paths, in-memory SQLite and other databases are not touched."""
    path = write(
        workdir / "sub" / "f.toml",
        '[source]\nurl = "postgresql://u@db/consent"\n[state]\nurl = "sqlite://"\n',
    )
    settings = load(config_file=path, required=())
    assert settings.source.url.get_secret_value() == "postgresql://u@db/consent"
    assert settings.state.url.get_secret_value() == "sqlite://"


def test_a_failed_load_without_a_config_file_says_where_it_looked(load: Loader, workdir: Path) -> None:
    """With no config file found, the error says which places were tried."""
    message = config_error(load)
    assert "no configuration file was read" in message
    assert "--config" in message and "FLAGSYNC_CONFIG" in message
    assert str(workdir) in message


def test_a_bad_json_table_in_the_environment_is_named(load: Loader) -> None:
    """A table given as text that is not JSON names its key and where it came from, never the value."""
    message = config_error(lambda: load(env={"FLAGSYNC_SOURCE__COLUMNS": "{person_id: CANARY-s3cr3t-7f1d}"}, required=()))
    assert "source.columns: cannot be read from the environment (tables and lists must be written as JSON)" in message
    assert CANARY not in message


def test_example_configuration_loads_and_states_the_defaults(load: Loader) -> None:
    """config/flagsync.example.toml loads, and every value it sets is the default."""
    settings = load(config_file=REPO / "config" / "flagsync.example.toml", required=())
    assert settings == Settings()


def test_example_configuration_mentions_every_key() -> None:
    """Every setting appears in the example file, set or commented out, under its section."""
    text = (REPO / "config" / "flagsync.example.toml").read_text(encoding="utf-8")
    tomllib.loads(text)
    sections: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        header = re.fullmatch(r"\[(\w+)(?:\.\w+)?\]", line.strip())
        if header:
            current = header.group(1)
            if line.strip() == "[source.columns]":
                sections.setdefault("source", set()).add("columns")
            continue
        key = re.match(r"#?\s?(\w+) = ", line)
        if key and current:
            sections.setdefault(current, set()).add(key.group(1))
    for section_name, field in Settings.model_fields.items():
        annotation = field.annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        missing = set(annotation.model_fields) - sections.get(section_name, set())
        assert not missing, f"[{section_name}] lacks {sorted(missing)}"


def test_a_csv_source_saves_its_person_index_beside_a_sqlite_state_file(load: Loader, workdir: Path) -> None:
    """By default beside the SQLite state file; where `source.index_path` says; nowhere with PostgreSQL state unless set."""
    csv_source = {**required_env(), "FLAGSYNC_SOURCE__KIND": "csv", "FLAGSYNC_SOURCE__PATH": str(workdir / "c.csv")}
    beside = saved_person_index(load(env={**csv_source, "FLAGSYNC_STATE__URL": f"sqlite:///{workdir / 'var' / 's.db'}"}))
    assert beside is not None and beside.path == workdir / "var" / "s.db-csv-person-index"
    postgres = {**csv_source, "FLAGSYNC_STATE__URL": "postgresql+psycopg://flagsync@db/state"}
    assert saved_person_index(load(env=postgres)) is None
    named = saved_person_index(load(env={**postgres, "FLAGSYNC_SOURCE__INDEX_PATH": str(workdir / "idx")}))
    assert named is not None and named.path == workdir / "idx"
    keyless = {name: value for name, value in csv_source.items() if name != "FLAGSYNC_AUDIT__HMAC_KEY"}
    assert saved_person_index(load(env=keyless, required=())) is None
    other_key = saved_person_index(load(env={**csv_source, "FLAGSYNC_AUDIT__HMAC_KEY": GOOD_KEY + "-2"}))
    assert beside.person_hash("P1") != other_key.person_hash("P1")  # type: ignore[union-attr]


def test_the_index_path_must_not_be_the_consent_file(load: Loader, workdir: Path) -> None:
    env = {**required_env(), "FLAGSYNC_SOURCE__KIND": "csv", "FLAGSYNC_SOURCE__PATH": str(workdir / "c.csv")}
    message = config_error(lambda: load(env={**env, "FLAGSYNC_SOURCE__INDEX_PATH": str(workdir / "." / "c.csv")}))
    assert "source.index_path" in message and "consent CSV file itself" in message
