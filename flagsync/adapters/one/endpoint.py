"""Where and how to reach One: resolved and checked by the settings, trusted as it is by the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr


@dataclass(frozen=True, slots=True)
class OneEndpoint:
    """One's address and credentials as the settings resolved them (`flagsync.bootstrap.one_endpoint`).

    `base_url` has no trailing slash; `token_url` is absolute (the default, `<base_url>/connect/token`,
    is filled in by the settings); plain http only where the settings allowed it; `proxy` is the
    explicit proxy, if any (the environment's are never used).
    """

    base_url: str
    token_url: str
    client_id: str
    client_secret: SecretStr
    ca_bundle: Path | None = None
    proxy: str | None = None
    connect_timeout: float = 3.05
    read_timeout: float = 30.0
