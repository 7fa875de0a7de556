"""The `flagsync` command line: plan, sync, daemon, status, audit, check and demo.

Output on stdout is for people (tables) or, with --json, one machine-readable document. Logs go to
stderr for one-off commands and to stdout for the daemon. The terminal may show person and record
ids to the operator; logs never do.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import IO, NoReturn

from flagsync.core.model import Plan, RunOutcome, RunTrigger, is_valid_person_id
from flagsync.errors import ConfigError, FlagsyncError, RunInProgressError, StateError
from flagsync.logs import configure_logging, register_secret, safe_error_summary
from flagsync.present.audit_trail import print_verification, render_events
from flagsync.present.checks import describe_last_run, describe_probe, describe_survey
from flagsync.present.runs import plan_document, print_plan, print_report, report_document
from flagsync.present.status import print_status, status_document
from flagsync.present.terminal import Progress
from flagsync.service.status import read_status
from flagsync.settings import REQUIRED_SETTINGS, STATE_READER_SETTINGS, Settings, load_settings, secret_values

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PLAN_CHANGES = 2
EXIT_CHANGES_FAILED = 3
EXIT_HELD = 4
#: A command line flagsync cannot understand (no command uses it for a result; BSD's EX_USAGE).
EXIT_USAGE = 64

SYNC_EXIT = {
    RunOutcome.CONVERGED: EXIT_OK,
    RunOutcome.ERROR: EXIT_ERROR,
    RunOutcome.INTERRUPTED: EXIT_ERROR,
    RunOutcome.ABANDONED: EXIT_ERROR,
    RunOutcome.CHANGES_FAILED: EXIT_CHANGES_FAILED,
    RunOutcome.HELD: EXIT_HELD,
}


# ----------------------------------------------------------------------------------------------
# Commands


def _print_json(document: object) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _settings(args: argparse.Namespace, *, required: tuple[tuple[str, str], ...] = REQUIRED_SETTINGS) -> Settings:
    return load_settings(config_file=args.config, required=required)


def _setup_logging(
    settings: Settings, args: argparse.Namespace, *, interactive_quiet: bool, stream: IO[str] | None = None
) -> None:
    """Configure the privacy-preserving logs once, before any adapter is built."""
    from flagsync.bootstrap import build_pseudonymizer  # noqa: PLC0415 - keeps `--help` fast and free of adapters

    out = stream or sys.stderr
    level = settings.log.level
    if interactive_quiet and out.isatty() and not getattr(args, "verbose", False) and level in ("DEBUG", "INFO"):
        level = "WARNING"  # a person at a terminal reads the tables; the events go to the daemon's logs
    configure_logging(format=settings.log.format, level=level, pseudonymizer=build_pseudonymizer(settings), stream=out)
    for secret in secret_values(settings):
        register_secret(secret)


def _person_scope(args: argparse.Namespace) -> frozenset[str] | None:
    if args.person is None:
        return None
    if not is_valid_person_id(args.person):
        raise ConfigError("--person is not a valid One person id (letters, digits, '_' or '-', at most 64)")
    return frozenset({args.person})


def cmd_plan(args: argparse.Namespace) -> int:
    from flagsync.bootstrap import build_app  # noqa: PLC0415 - see _setup_logging

    settings = _settings(args)
    _setup_logging(settings, args, interactive_quiet=True)
    app = build_app(settings)
    try:
        progress = Progress(sys.stderr, sys.stderr.isatty() and not args.json)
        plan = app.service.plan(_person_scope(args), progress=progress)
    finally:
        app.close()
    if args.json:
        _print_json(plan_document(plan))
    else:
        print_plan(plan, sys.stdout)
    return plan_exit_code(plan)


def plan_exit_code(plan: Plan) -> int:
    """What `plan` and `sync --dry-run` both exit with: 4 removals would be held, 2 changes pending, 0 nothing to do."""
    if plan.guard_tripped:
        return EXIT_HELD
    return EXIT_PLAN_CHANGES if plan.has_changes else EXIT_OK


@contextmanager
def _graceful_stop(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask the run to stop (writes in flight finish, the run is recorded); a second one stops at once."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        sys.stderr.write("flagsync: stopping once the writes in flight are done (again to stop at once)\n")

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def cmd_sync(args: argparse.Namespace) -> int:
    from flagsync.bootstrap import build_app  # noqa: PLC0415 - see _setup_logging

    settings = _settings(args)
    _setup_logging(settings, args, interactive_quiet=True)
    scope = _person_scope(args)
    app = build_app(settings)
    try:
        with _graceful_stop(app.service.stop_event):
            progress = Progress(sys.stderr, sys.stderr.isatty() and not args.json)
            report = app.service.sync(
                trigger=RunTrigger.OPERATOR if scope is None else RunTrigger.OPERATOR_PERSON,
                person_ids=scope,
                dry_run=args.dry_run,
                allow_mass_removal=args.allow_mass_removal,
                progress=progress,
            )
    finally:
        app.close()
    if args.json:
        _print_json(report_document(report))
    else:
        print_report(report, sys.stdout)
    if report.dry_run and report.plan is not None:
        return plan_exit_code(report.plan)  # a dry run is a plan: the same codes
    return SYNC_EXIT[report.outcome]


def cmd_daemon(args: argparse.Namespace) -> int:
    from flagsync.bootstrap import build_app, check_state_schema  # noqa: PLC0415 - see _setup_logging
    from flagsync.daemon import INDEX_SAVE_WAIT_SECONDS, Daemon  # noqa: PLC0415 - only the daemon needs the scheduler

    settings = _settings(args)
    _setup_logging(settings, args, interactive_quiet=False, stream=sys.stdout)
    check_state_schema(settings)  # an old schema stops the daemon at start (exit 1), not at every cycle
    app = build_app(settings, lock_wait_seconds=0.0, index_save_wait_seconds=INDEX_SAVE_WAIT_SECONDS)
    try:
        Daemon(app).run_until_signalled()
    finally:
        app.close()
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from flagsync.bootstrap import build_keyring, open_state, run_in_progress  # noqa: PLC0415 - see _setup_logging

    settings = _settings(args, required=STATE_READER_SETTINGS)
    _setup_logging(settings, args, interactive_quiet=True)
    state = open_state(settings, read_only=True)
    try:
        status = read_status(
            state,
            run_in_progress=lambda: run_in_progress(settings),
            full_reconcile_interval=settings.sync.full_reconcile_interval,
            current_key_id=build_keyring(settings).current.key_id,
        )
        exists, where = state.exists, state.describe()
    finally:
        state.close()
    if args.json:
        _print_json(status_document(status, store_exists=exists))
    else:
        print_status(status, sys.stdout, store_exists=exists, store_where=where)
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from flagsync.bootstrap import open_state  # noqa: PLC0415 - see _setup_logging
    from flagsync.present import audit_html, audit_report  # noqa: PLC0415 - see _setup_logging

    if args.events and args.format == "html":
        raise ConfigError("--events lists pseudonymous event rows as csv or json; the html report holds counts only")
    if args.since is not None and args.until is not None and args.since > args.until:
        raise ConfigError("--since is after --until")
    settings = _settings(args, required=STATE_READER_SETTINGS)
    _setup_logging(settings, args, interactive_quiet=True)
    state = open_state(settings, read_only=True)
    try:
        if args.verify:
            return EXIT_OK if print_verification(state.verify_audit(), sys.stdout) else EXIT_ERROR
        if args.events:
            text = render_events(state.audit_events(args.since, args.until), args.format)
        else:
            try:
                report = audit_report.build_report(
                    state.audit_counts(args.since, args.until),
                    state.run_history(args.since, args.until),
                    since=args.since,
                    until=args.until,
                    generated_at=datetime.now(UTC),
                    period=audit_report.Period(args.period) if args.period else None,
                    exact=args.exact,
                )
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            render = {"csv": audit_report.render_csv, "json": audit_report.render_json, "html": audit_html.render_html}
            text = render[args.format](report)
    finally:
        state.close()
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.output} ({exc.strerror or type(exc).__name__})") from None
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from flagsync.adapters.state.schema import HEAD_REVISION  # noqa: PLC0415 - see _setup_logging
    from flagsync.bootstrap import migrate_state  # noqa: PLC0415 - see _setup_logging

    settings = _settings(args, required=STATE_READER_SETTINGS)
    _setup_logging(settings, args, interactive_quiet=True)
    where, was = migrate_state(settings, wait_seconds=args.wait)
    if was == HEAD_REVISION:
        sys.stdout.write(f"state store {where}: already at schema revision {HEAD_REVISION}\n")
    else:
        sys.stdout.write(f"state store {where}: schema revision {was or '(empty)'} -> {HEAD_REVISION}\n")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from flagsync.bootstrap import build_app  # noqa: PLC0415 - see _setup_logging
    from flagsync.settings import describe_settings  # noqa: PLC0415 - see _setup_logging

    out = sys.stdout
    try:
        settings = _settings(args)
    except ConfigError as exc:
        out.write(f"FAIL configuration: {exc}\n")
        return EXIT_ERROR
    _setup_logging(settings, args, interactive_quiet=True)
    out.write(f"ok   configuration: source {settings.source.kind}, One {settings.one.base_url}\n")
    if args.verbose:
        json.dump(describe_settings(settings), out, indent=2, default=str)
        out.write("\n")
    app = build_app(settings)
    ok = True

    def run_check(name: str, check: Callable[[], str]) -> None:
        nonlocal ok
        try:
            out.write(f"ok   {name}: {check()}\n")
        except Exception as exc:  # noqa: BLE001 - every failure becomes one printed line; nothing here is retried
            ok = False
            out.write(f"FAIL {name}: {safe_error_summary(exc)}\n")

    try:
        run_check("consent source", lambda: describe_survey(app.service.survey_source()))
        run_check("One token and listing", lambda: describe_probe(app.gateway.probe()))
        run_check("state store", lambda: describe_last_run(next(iter(app.state.recent_runs(1)), None)))
    finally:
        app.close()
    return EXIT_OK if ok else EXIT_ERROR


def cmd_demo(args: argparse.Namespace) -> int:
    from flagsync.demo import run_demo  # noqa: PLC0415 - the demo needs the mock server extra

    return run_demo(workdir=args.workdir, out=sys.stdout)


# ----------------------------------------------------------------------------------------------
# Parser


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date like 2026-11-24") from None


class _Parser(argparse.ArgumentParser):
    """argparse, exiting with EXIT_USAGE on a bad command line (its default 2 means "changes pending" here)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flagsync",
        description="Keep One's 'PIAS is working with this family' flag in line with recorded consent.",
    )
    common = _Parser(add_help=False)
    common.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML configuration file (default: FLAGSYNC_CONFIG or config/flagsync.toml)"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="show log events on the terminal too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "plan",
        parents=[common],
        help="show what a sync would change; writes nothing",
        description=("Read the consent records and One, print the plan. Exit 0: nothing to do; 2: changes pending; 1: error."),
    )
    p.add_argument("--person", metavar="ID", help="plan for this One person id only")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "sync",
        parents=[common],
        help="resync now (everyone, or one person)",
        description=("Exit 0: converged; 1: error; 3: some changes failed (kept for retry); 4: removals held by the guard."),
    )
    p.add_argument("--person", metavar="ID", help="sync this One person id only")
    p.add_argument("--dry-run", action="store_true", help="plan only; write nothing")
    p.add_argument("--allow-mass-removal", action="store_true", help="release removals held by the mass-removal guard")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "daemon",
        parents=[common],
        help="run the scheduled worker until SIGTERM/SIGINT",
        description=("Change poll and full reconcile on a schedule; /healthz and /metrics on daemon.http_port."),
    )
    p.set_defaults(func=cmd_daemon)

    p = sub.add_parser("status", parents=[common], help="recent runs, pending and held removals, records needing attention")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "audit",
        parents=[common],
        help="the anonymised activity report",
        description=(
            "Counts per day, action and outcome (csv), the whole report (json), or a printable page with charts (html). "
            "Every count is shown with small-number suppression (1 to 7 as *, others rounded to the nearest 5) unless "
            "--exact. --events lists pseudonymous event rows instead, unsuppressed: they are not counts."
        ),
    )
    p.add_argument("--since", type=_date, metavar="DATE", help="first day (inclusive, UTC; default: the first day with data)")
    p.add_argument("--until", type=_date, metavar="DATE", help="last day (inclusive, UTC; default: today)")
    p.add_argument("--format", choices=("csv", "json", "html"), default="csv")
    p.add_argument("--period", choices=("day", "week"), help="count per day or per week (default: per day up to 31 days)")
    p.add_argument("--exact", action="store_true", help="exact counts, no suppression (for the data protection officer)")
    p.add_argument("--output", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--events", action="store_true", help="list events with pseudonyms instead of counts (csv or json)")
    p.add_argument(
        "--verify", action="store_true", help="check the audit trail's hash chain instead (exit 1 at the first broken link)"
    )
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "migrate",
        parents=[common],
        help="bring the state store's schema up to this version (back it up first)",
        description=(
            "Upgrades the state store to the schema this flagsync needs, holding the run lock. sync and the daemon "
            "refuse an older schema until this has run. Exit 0: done or nothing to do; 1: error."
        ),
    )
    p.add_argument("--wait", type=float, default=60.0, metavar="SECONDS", help="how long to wait for a run in progress")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser(
        "check",
        parents=[common],
        help="check configuration, source, One and the state store",
        description="One line per check. Exit 0 when all pass, 1 otherwise.",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("demo", help="a guided tour against a local mock of One (no configuration needed)")
    p.add_argument("--workdir", type=Path, default=None, help="where to put the demo's files (default: a temporary folder)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except RunInProgressError as exc:
        sys.stderr.write(f"flagsync: {exc}; try again when it has finished\n")
        return EXIT_ERROR
    except (ConfigError, StateError, FlagsyncError) as exc:
        sys.stderr.write(f"flagsync: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("flagsync: interrupted\n")
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`flagsync audit | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
