"""`flagsync demo`: a guided tour for a newcomer against a One-style mock server started in-process.

The demo can only ever talk to its own mock and write its own files: its settings are built from its
own values alone (no environment, .env file, secrets directory or config file is read), they are
checked against the mock's address before the first request, and a `--workdir` that holds files the
demo did not create is refused. Its files carry names no production setting uses.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from pydantic import SecretStr

from flagsync.bootstrap import build_app
from flagsync.core.model import RunTrigger
from flagsync.demo_data import SAMPLE_COLUMNS, SAMPLE_PEOPLE, SAMPLE_RECORDS, VERDICT_EXPLAINED, write_consent_db
from flagsync.errors import ConfigError
from flagsync.logs import configure_logging
from flagsync.present.runs import print_plan, print_report
from flagsync.settings import AuditSettings, LogSettings, OneSettings, Settings, SourceSettings, StateSettings
from mocks.one.control import MockControl

DEMO_CLIENT = ("flagsync-demo", "demo-secret-not-for-production")
DEMO_HMAC_KEY = "demo-pseudonym-key-not-for-production"  # published: refused by settings unless One is on loopback

#: The demo's own files. The marker lists what the demo created, so that a later run replaces only those.
MARKER = ".flagsync-demo"
CONSENT_DB = "demo-consent.db"
STATE_DB = "demo-state.db"
CONFIG = "demo.toml"
OWN_FILES = (CONSENT_DB, STATE_DB, f"{STATE_DB}-wal", f"{STATE_DB}-shm", f"{STATE_DB}.lock", CONFIG, MARKER)

WHAT_IT_SHOWS = """\
flagsync demo
=============
A family support service may put exactly one thing in the council's shared database ("One"):
a flag saying "PIAS is working with this family" - and only with the family's informed, recorded
consent. flagsync keeps One in line with the consent records. This demo:

  1. starts a One-style mock server on {url}
  2. creates a sample consent database ({db}) with fake names, addresses,
     dates of birth and notes in extra columns - flagsync never reads those columns
  3. One already holds a flag of ours for P1002 (who has since withdrawn) and another team's
     involvement for P1001 (which flagsync must never touch)
  4. plans, syncs, shows what One now holds, and syncs again to show nothing more changes
"""


def _create_consent_db(path: Path) -> None:
    write_consent_db(path, SAMPLE_COLUMNS, SAMPLE_RECORDS)


def prepare_workdir(work: Path) -> None:
    """Make `work` ready for the demo's files, refusing a directory that holds files the demo did not create.

    An absent or empty directory is fine; so is one a previous demo left (it holds the marker), whose
    own files are removed. Anything else is refused: `--workdir var` once replaced the production
    consent and state databases, and a pending removal was lost that way.
    """
    if work.exists() and not work.is_dir():
        raise ConfigError(f"demo --workdir {work} is not a directory")
    present = sorted(entry.name for entry in work.iterdir()) if work.is_dir() else []
    if present and MARKER not in present:
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
        raise ConfigError(
            f"demo --workdir {work} holds files the demo did not create ({shown}); give it an empty or new directory"
        )
    work.mkdir(parents=True, exist_ok=True)
    for name in OWN_FILES:
        (work / name).unlink(missing_ok=True)
    (work / MARKER).write_text(json.dumps({"created_by": "flagsync demo", "files": list(OWN_FILES)}) + "\n", encoding="utf-8")


def demo_settings(work: Path, mock_url: str) -> Settings:
    """The demo's settings, from its own values only: nothing from the environment, .env, secrets or config files."""
    return Settings(
        source=SourceSettings(kind="sql", url=SecretStr(f"sqlite:///{work / CONSENT_DB}"), table="consent_records"),
        one=OneSettings(base_url=mock_url, client_id=DEMO_CLIENT[0], client_secret=SecretStr(DEMO_CLIENT[1])),
        state=StateSettings(url=SecretStr(f"sqlite:///{work / STATE_DB}")),
        audit=AuditSettings(hmac_key=SecretStr(DEMO_HMAC_KEY)),
        log=LogSettings(level="WARNING"),
    )


def check_own_mock(settings: Settings, work: Path, mock_url: str) -> None:
    """Refuse to start unless every address and file in `settings` is the demo's own (called before any request)."""
    one, own_prefix = settings.one, f"sqlite:///{work}/"
    problems = []
    if one.base_url != mock_url or one.token_url is not None or one.proxy is not None:
        problems.append("One is not the in-process mock")
    if urlsplit(mock_url).hostname != "127.0.0.1":
        problems.append("the mock is not on loopback")
    for name, url in (("consent", settings.source.url), ("state", settings.state.url)):
        if not url.get_secret_value().startswith(own_prefix):
            problems.append(f"the {name} database is not in the demo's directory")
    if problems:
        raise ConfigError("demo refused to start: " + "; ".join(problems))


def _write_config(work: Path, url: str) -> Path:
    """A configuration file for the same mock and files, for trying other commands on the demo's data afterwards."""
    config = work / CONFIG
    config.write_text(
        f"""# Written by `flagsync demo`: the demo's own files, and its mock of One (gone once the demo ends).
[source]
kind = "sql"
url = "sqlite:///{work / CONSENT_DB}"
table = "consent_records"

[one]
base_url = "{url}"
client_id = "{DEMO_CLIENT[0]}"
client_secret = "{DEMO_CLIENT[1]}"

[state]
url = "sqlite:///{work / STATE_DB}"

[audit]
hmac_key = "{DEMO_HMAC_KEY}"

[log]
level = "WARNING"
""",
        encoding="utf-8",
    )
    return config


@contextmanager
def _mock_server() -> Iterator[str]:
    try:
        from mocks.one.server import start_in_thread  # noqa: PLC0415 - the mock is an optional extra
    except ImportError as exc:  # pragma: no cover - only without the mock extra
        raise SystemExit("flagsync demo needs the mock server: pip install 'flagsync[mock]'") from exc
    mock = start_in_thread(clients={DEMO_CLIENT[0]: (DEMO_CLIENT[1], "PIAS")})
    try:
        yield mock.url
    finally:
        mock.stop()


def _seed_one(one: MockControl) -> None:
    one.reset()
    one.seed_people(SAMPLE_PEOPLE)
    one.add_involvement("P1002", "PIAS", "PIAS_WORKING_WITH_FAMILY")  # ours, from before the family withdrew
    one.add_involvement("P1001", "EHSS", "EARLY_HELP")  # another team's: flagsync must never touch it


def _print_one(one: MockControl, out: IO[str]) -> None:
    active = [item for item in one.involvements() if item.get("status") == "active"]
    out.write("\nWhat One now shows (every team's active involvements):\n")
    for item in sorted(active, key=lambda i: (i["personId"], i["serviceTeam"])):
        out.write(f"  {item['personId']:<8} {item['serviceTeam']:<6} {item['involvementType']}\n")


def _requests_since(one: MockControl, mark: int) -> str:
    kinds = Counter(f"{e['method']} {e['path'].split('?')[0]}" for e in one.since(mark))
    return ", ".join(f"{n} x {kind}" for kind, n in sorted(kinds.items())) or "none"


def _print_sent_bodies(one: MockControl, out: IO[str]) -> None:
    entries = one.since(0)
    bodies = sorted(
        {e.get("body") or "" for e in entries if e.get("method") == "POST" and "/api/v1/people/" in e.get("path", "")}
    )
    out.write("\nEvery body flagsync sent to One (from the mock's request journal):\n")
    for body in bodies:
        out.write(f"  {body}\n")
    names = [str(r[8]) for r in SAMPLE_RECORDS]
    leaked = [name for name in names if any(name in str(e) for e in entries)]
    out.write(f"  Personal data found in any request: {'YES - ' + ', '.join(leaked) if leaked else 'none'}\n")


def run_demo(*, workdir: Path | None, out: IO[str]) -> int:
    """Run the tour; returns the exit code (0)."""
    with tempfile.TemporaryDirectory(prefix="flagsync-demo-") as tmp:
        work = Path(workdir or tmp).resolve()
        prepare_workdir(work)
        _create_consent_db(work / CONSENT_DB)
        with _mock_server() as url, MockControl(url) as one:
            settings = demo_settings(work, url)
            check_own_mock(settings, work, url)
            _seed_one(one)
            _write_config(work, url)
            configure_logging(format="console", level="ERROR", pseudonymizer=None, stream=sys.stderr)
            out.write(WHAT_IT_SHOWS.format(url=url, db=work / CONSENT_DB))
            out.write("\nThe consent records (only the columns flagsync reads):\n")
            for r in SAMPLE_RECORDS:
                out.write(
                    f"  {r[0]}  person={r[1] or '(none)':<7} {r[2]:<9} informed={r[3] or '-':<4} "
                    f"recorded={r[5]:<19} expires={r[6] or '-':<19} case={r[7]}\n"
                )
            _print_one(one, out)

            app = build_app(settings)
            try:
                out.write("\n--- Step 1: flagsync plan (reads both sides, writes nothing) ---\n")
                plan = app.service.plan()
                out.write("\nThe consent rule, person by person:\n")
                for person_id, verdict in plan.verdicts.items():
                    why = VERDICT_EXPLAINED.get(verdict.value, verdict.value)
                    out.write(f"  {person_id}  {'flag ' if verdict.wants_flag else 'none '} {why}\n")
                out.write("\n")
                print_plan(plan, out)

                out.write("\n--- Step 2: flagsync sync (applies that plan) ---\n")
                report = app.service.sync(trigger=RunTrigger.DEMO)
                print_report(report, out, show_plan=False)
                _print_one(one, out)

                out.write("\n--- Step 3: flagsync sync again (a converged system makes no writes) ---\n")
                mark = one.last_seq()
                again = app.service.sync(trigger=RunTrigger.DEMO)
                counts = again.counts()
                out.write(f"Second run: {counts['adds']} added, {counts['removes']} removed - outcome {again.outcome.value}\n")
                out.write(f"Requests One received in the second run: {_requests_since(one, mark)}\n")
                _print_sent_bodies(one, out)
            finally:
                app.close()
        if workdir is not None:
            out.write(f"\nThe sample consent records stay in {work / CONSENT_DB} (config: {work / CONFIG}).\n")
        out.write(
            "\nNext: `flagsync-mock` runs this mock on its own for testers; `flagsync --help` lists the operator commands;"
            "\nthe README explains configuration for a real One.\n"
        )
    return 0
