"""Helpers for the deployment tests: which FLAGSYNC_* names are settings, and the Dockerfile's instructions."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel

from flagsync.settings import Settings
from flagsync.settings.schema import CONFIG_ENV_VAR, ENV_PREFIX, NESTED_DELIMITER, SECRETS_DIR_ENV_VAR

ROOT = Path(__file__).resolve().parents[2]


def setting_for(name: str) -> tuple[str, str] | None:
    """(section, key) of a ``FLAGSYNC_<SECTION>__<KEY>`` name (any case), or None when it names no setting."""
    if not name.upper().startswith(ENV_PREFIX):
        return None
    parts = name[len(ENV_PREFIX) :].lower().split(NESTED_DELIMITER)
    if len(parts) != 2:
        return None
    field = Settings.model_fields.get(parts[0])
    section = field.annotation if field is not None else None
    if not (isinstance(section, type) and issubclass(section, BaseModel)) or parts[1] not in section.model_fields:
        return None
    return parts[0], parts[1]


def unknown_names(names: list[str]) -> list[str]:
    """The FLAGSYNC_* names in `names` that are neither settings nor the config/secrets locators."""
    locators = {CONFIG_ENV_VAR, SECRETS_DIR_ENV_VAR}
    return [n for n in names if n.startswith(ENV_PREFIX) and n not in locators and setting_for(n) is None]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))
    )
    pairs = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def final_stage(path: Path) -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage."""
    instructions = dockerfile_instructions(path)
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT/CMD (a shell form fails the test that calls this)."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def dockerfile_env(path: Path) -> dict[str, str]:
    """The ENV of the final stage (KEY=VALUE form)."""
    env: dict[str, str] = {}
    for name, rest in final_stage(path):
        if name == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return env
