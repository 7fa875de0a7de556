"""The one typed settings object, read once at start-up: the schema (`schema`) and how it is read (`loading`).

This package is the only place that reads the environment. Import from here: `Settings`, `load_settings`.
"""

from flagsync.settings.loading import describe_settings, load_settings, secret_values
from flagsync.settings.schema import (
    PUBLISHED_HMAC_KEYS,
    REQUIRED_SETTINGS,
    STATE_READER_SETTINGS,
    AuditSettings,
    DaemonSettings,
    LogSettings,
    OneSettings,
    Settings,
    SourceSettings,
    StateSettings,
    SyncSettings,
)

__all__ = [
    "PUBLISHED_HMAC_KEYS",
    "REQUIRED_SETTINGS",
    "STATE_READER_SETTINGS",
    "AuditSettings",
    "DaemonSettings",
    "LogSettings",
    "OneSettings",
    "Settings",
    "SourceSettings",
    "StateSettings",
    "SyncSettings",
    "describe_settings",
    "load_settings",
    "secret_values",
]
