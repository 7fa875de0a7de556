"""A state store that cannot be written: reading commands still work, writing ones name the path and the cause.

Two real read-only directories, since chmod alone does not stop root (these tests run as root in CI):
a read-only bind mount in a private mount namespace (`unshare --mount`; the file system says EROFS
even to root), and a directory without write permission, read by a root that has given up
CAP_DAC_OVERRIDE (`setpriv --bounding-set`), so that permissions apply to it as to anyone. Plus
SQLite's own `mode=ro`: a reading store never writes a byte of the database, nor creates a table.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from flagsync.adapters.state import SqlStateStore
from flagsync.adapters.state.engine import create_reader_engine, parse_state_url
from flagsync.cli import main
from flagsync.core.model import Flag, RunOutcome, RunTrigger
from flagsync.core.pseudonym import Pseudonymizer
from flagsync.errors import StateError
from flagsync.ports import AuditEntry
from tests.state.conftest import CLI_KEY
from tests.state.release_0_1 import T0

KEY = Pseudonymizer(CLI_KEY.encode())
DB_NAME = "flagsync-state.db"


def _fill(url: str) -> None:
    store = SqlStateStore(url, KEY)
    run_id = store.start_run(RunTrigger.OPERATOR, T0)
    store.record_events(run_id, [AuditEntry("add", "P1", "ok"), AuditEntry("remove", "P2", "failed", "SERVER_ERROR")], T0)
    store.mark_pending(Flag("INV-2", "P2", 1), T0)
    store.finish_run(run_id, RunOutcome.CHANGES_FAILED, {"adds": 1, "failed": 1}, T0)
    store.close()


def test_a_read_only_store_reads_and_refuses_every_write(state_url: str) -> None:
    """A store opened read-only reads runs, removals and the chain, and refuses each kind of write with a StateError."""
    _fill(state_url)
    store = SqlStateStore(state_url, KEY, read_only=True)

    assert [r.outcome for r in store.recent_runs()] == [RunOutcome.CHANGES_FAILED]
    assert [p.involvement_id for p in store.pending_removals()] == ["INV-2"]
    assert store.verify_audit().intact
    writes = [
        lambda: store.start_run(RunTrigger.OPERATOR, T0),
        lambda: store.mark_pending(Flag("INV-9", "P9", 1), T0),
        lambda: store.record_events("r", [AuditEntry("add", "P9", "ok")], T0),
        lambda: store.purge_audit(T0),
        lambda: store.set_watermark("w"),
        store.migrate,
    ]
    for write in writes:
        with pytest.raises(StateError, match="read-only"):
            write()
    store.close()


def test_the_reader_session_itself_cannot_write(state_url: str) -> None:
    """Below flagsync's own refusal, the database session of a reading store is read-only: an INSERT fails in the driver."""
    _fill(state_url)
    engine = create_reader_engine(parse_state_url(state_url))
    try:
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text("INSERT INTO kv (key, value) VALUES ('x', 'y')"))
    finally:
        engine.dispose()


def test_reading_an_sqlite_file_changes_no_byte_and_leaves_no_companion(tmp_path: Path) -> None:
    """Reads of an SQLite store leave the database file byte for byte as it was, and write nothing to a WAL."""
    url = f"sqlite:///{tmp_path / DB_NAME}"
    _fill(url)
    before = (tmp_path / DB_NAME).read_bytes()

    store = SqlStateStore(url, KEY, read_only=True)
    store.recent_runs(), store.report(), store.audit_counts(None, None), store.verify_audit()
    store.close()

    assert (tmp_path / DB_NAME).read_bytes() == before
    wal = tmp_path / (DB_NAME + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # SQLite may open an empty WAL beside a WAL database


def test_status_and_audit_on_a_missing_store_create_nothing(
    tmp_path: Path, cli_config: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no state store yet, `status`, `audit` and `audit --verify` exit 0, say so, and create no file (nor directory)."""
    path = tmp_path / "nowhere" / DB_NAME
    config = cli_config(f"sqlite:///{path}")  # type: ignore[operator]

    assert main(["status", "--config", str(config)]) == 0
    assert f"(no state store at sqlite:///{path} yet: no run has written to it)" in capsys.readouterr().out
    assert main(["audit", "--config", str(config)]) == 0
    assert main(["audit", "--verify", "--config", str(config)]) == 0
    assert "audit trail intact: 0 events checked" in capsys.readouterr().out
    assert not path.parent.exists()


def test_a_read_only_command_on_an_empty_file_creates_no_table(
    tmp_path: Path, cli_config: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty database file (no run has written it) reads as empty and stays empty: reading never creates the schema."""
    path = tmp_path / DB_NAME
    path.touch()
    config = cli_config(f"sqlite:///{path}")  # type: ignore[operator]

    assert main(["status", "--config", str(config)]) == 0
    assert path.stat().st_size == 0


# --------------------------------------------------------------------------------------------
# Real read-only directories, through the command line in a child process


def _config(directory: Path, url: str) -> Path:
    path = directory / "flagsync.toml"
    path.write_text(
        f'[state]\nurl = "{url}"\n\n[audit]\nhmac_key = "{CLI_KEY}"\n\n'
        '[one]\nbase_url = "http://127.0.0.1:9"\nclient_id = "c"\nclient_secret = "s-0123456789"\n\n'
        '[log]\nformat = "json"\n',
        encoding="utf-8",
    )
    path.chmod(0o644)
    return path


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory outside pytest's private temp root, so that the user `nobody` can reach it."""
    root = Path(tempfile.mkdtemp(prefix="flagsync-ro-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(root)


def _commands(config: Path) -> str:
    """A shell script running the reading commands (each must exit 0) and then the writing ones (each must fail)."""
    cli = f"{sys.executable} -m flagsync.cli"
    writer = (
        f"{sys.executable} -c 'import sys; from flagsync.adapters.state import SqlStateStore; "
        "from flagsync.core.pseudonym import Pseudonymizer; from flagsync.errors import StateError\n"
        "try:\n"
        f'    SqlStateStore(sys.argv[1], Pseudonymizer(sys.argv[2].encode())).set_watermark("w")\n'
        "except StateError as exc:\n"
        '    print("writer:", exc)\' '
    )
    return (
        "set -e\n"
        f"{cli} status --config {config} > status.out\n"
        f"{cli} audit --config {config} > audit.out\n"
        f"{cli} audit --verify --config {config} > verify.out\n"
        "set +e\n"
        f"{cli} sync --config {config} 2> sync.err; echo $? > sync.code\n"
        f"{cli} migrate --config {config} 2> migrate.err; echo $? > migrate.code\n"
    ), writer


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSYNC_")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_read_only_mount_keeps_status_and_audit_working_and_names_the_cause(shared_dir: Path) -> None:
    """On a read-only bind mount (EROFS, even for root): status, audit and verify work; writes say "read-only file system"."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to make a private read-only bind mount")
    state = shared_dir / "state"
    url = f"sqlite:///{state / DB_NAME}"
    _fill(url)
    config = _config(shared_dir, url)
    out = shared_dir / "out"
    out.mkdir()
    script, writer = _commands(config)
    script = (
        f"mount --bind {state} {state} && mount -o remount,bind,ro {state}\n"
        f"touch {state}/probe 2>/dev/null && echo 'the mount is writable' && exit 99\n"
        + script
        + f"{writer} {url} {CLI_KEY} > writer.out\n"
    )

    done = _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], out)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Pending removals (retried every cycle): 1" in (out / "status.out").read_text()
    assert "audit trail intact: 2 events checked" in (out / "verify.out").read_text()
    assert "day,action,outcome,count" in (out / "audit.out").read_text()
    lock = state / (DB_NAME + ".lock")
    for name in ("sync", "migrate"):
        assert (out / f"{name}.code").read_text().strip() == "1"
        assert f"cannot write the run lock file {lock}: read-only file system" in (out / f"{name}.err").read_text()
    assert f"writer: cannot write the state store {state / DB_NAME}: read-only file system" in (out / "writer.out").read_text()
    assert not (state / "probe").exists()


def test_a_directory_without_write_permission_names_the_cause(shared_dir: Path) -> None:
    """For a user who may read but not write the state directory: status and audit work; writes say "permission denied (...)"."""
    state = shared_dir / "state"
    url = f"sqlite:///{state / DB_NAME}"
    _fill(url)
    (state / (DB_NAME + ".lock")).unlink(missing_ok=True)
    config = _config(shared_dir, url)
    out = shared_dir / "out"
    out.mkdir()
    bound: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv(1) to give up root's power to ignore permissions")
        bound = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    (state / DB_NAME).chmod(0o400)
    state.chmod(0o500)
    script, writer = _commands(config)

    done = _run([*bound, "sh", "-c", script + f"{writer} {url} {CLI_KEY} > writer.out\n"], out)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Pending removals (retried every cycle): 1" in (out / "status.out").read_text()
    assert "audit trail intact: 2 events checked" in (out / "verify.out").read_text()
    lock = state / (DB_NAME + ".lock")
    for name in ("sync", "migrate"):
        assert (out / f"{name}.code").read_text().strip() == "1"
        assert (
            f"cannot write the run lock file {lock}: permission denied (read-only directory)" in (out / f"{name}.err").read_text()
        )
    expected = f"writer: cannot write the state store {state / DB_NAME}: permission denied (read-only directory)"
    assert expected in (out / "writer.out").read_text()
