"""The Dockerfile (read as text; scripts/image-test builds and runs it): base argument, user, command, settings, probe."""

from __future__ import annotations

import re

from tests.deploy.settings_names import ROOT, dockerfile_env, dockerfile_instructions, exec_form, final_stage, unknown_names

DOCKERFILE = ROOT / "Dockerfile"


def test_the_base_image_is_an_argument_pinned_by_digest() -> None:
    """Every stage builds FROM ${BASE_IMAGE}, whose default is an official python slim image pinned by digest."""
    instructions = dockerfile_instructions(DOCKERFILE)
    (arg,) = [rest for name, rest in instructions if name == "ARG" and rest.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"BASE_IMAGE=docker\.io/library/python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", arg)
    froms = [rest for name, rest in instructions if name == "FROM"]
    assert len(froms) == 2
    assert all(rest.split()[0] == "${BASE_IMAGE}" for rest in froms)


def test_the_image_runs_the_daemon_as_a_non_root_user() -> None:
    """The final stage runs `flagsync daemon` (exec form) as uid 10001, and deletes the mock's console script."""
    stage = final_stage(DOCKERFILE)
    (user,) = [rest for name, rest in stage if name == "USER"]
    assert user == "10001:10001"
    (entrypoint,) = [exec_form(rest) for name, rest in stage if name == "ENTRYPOINT"]
    (cmd,) = [exec_form(rest) for name, rest in stage if name == "CMD"]
    assert entrypoint == ["/opt/flagsync/bin/flagsync"]
    assert cmd == ["daemon"]
    assert "rm -f /opt/flagsync/bin/flagsync-mock" in DOCKERFILE.read_text(encoding="utf-8")


def test_the_image_listens_beyond_loopback_on_a_real_setting() -> None:
    """The image sets daemon.http_host to 0.0.0.0 (the default is loopback) and every FLAGSYNC_ name it sets is a setting."""
    env = dockerfile_env(DOCKERFILE)
    assert env["FLAGSYNC_DAEMON__HTTP_HOST"] == "0.0.0.0"  # noqa: S104 - the value checked, not a bind
    assert env["FLAGSYNC_DAEMON__HTTP_PORT"] == "9108"
    assert env["FLAGSYNC_LOG__FORMAT"] == "json"
    assert not unknown_names(list(env))


def test_the_healthcheck_probes_healthz_on_the_configured_port() -> None:
    """The HEALTHCHECK asks /healthz on FLAGSYNC_DAEMON__HTTP_PORT from inside the container (exec form, no shell)."""
    (healthcheck,) = [rest for name, rest in final_stage(DOCKERFILE) if name == "HEALTHCHECK"]
    command = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["/opt/flagsync/bin/python", "-c"]
    assert "FLAGSYNC_DAEMON__HTTP_PORT" in command[2]
    assert "/healthz" in command[2]


def test_the_build_context_keeps_tests_and_local_state_out() -> None:
    """.dockerignore excludes tests, the venv, git history and local state; the daemon image copies flagsync/ alone."""
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {"tests", ".venv", ".git", "var", "secrets", "*.db", ".env"} <= ignored
    copies = [rest for name, rest in dockerfile_instructions(DOCKERFILE) if name == "COPY" and "--from" not in rest]
    sources = {source for rest in copies for source in rest.split()[:-1]}
    assert sources == {"requirements/runtime.txt", "requirements/build.txt", "pyproject.toml", "README.md", "flagsync"}
