"""The exceptions flagsync raises, arranged by what the caller should do about them.

    FlagsyncError
    ├── ConfigError              bad or missing configuration: stop before doing anything (exit 1)
    ├── SourceError              the consent source cannot be read as a whole: plan no removals (exit 1)
    ├── StateError               the state store cannot be read or written (exit 1)
    ├── RunInProgressError       another run holds the single-run lock (exit 1)
    ├── RunInterrupted           a stop was requested (signal) or the run lock was lost: end the run now (exit 1)
    └── RemoteError              One answered badly or not at all
        ├── RetriableRemoteError 429, 5xx, timeouts, dropped connections: retry later
        └── FatalRemoteError     any other 4xx: retrying the same call cannot help
            ├── PersonUnavailable    One will not take a flag for this person (unknown, archived,
            │                        merged, restricted, not permitted): report it, go on
            └── ContractViolation    we sent something One rejects as malformed (422, 415, ...):
                                     a bug, alert

Messages never contain a person id, a record id, a URL with either, a secret, or a library's raw
exception text: every message here is safe to log and to show.
"""

from __future__ import annotations

from enum import StrEnum


class FlagsyncError(Exception):
    """Root of every error flagsync raises on purpose."""


class ConfigError(FlagsyncError):
    """The configuration is invalid or incomplete; nothing was done."""


class SourceError(FlagsyncError):
    """The consent source could not be read as a whole; no removal may be planned from it."""


class StateError(FlagsyncError):
    """The state store could not be read or written."""


class RunInProgressError(FlagsyncError):
    """Another flagsync run holds the lock."""


class RunInterrupted(FlagsyncError):
    """The run must end before it finished: a stop was requested, or the single-run lock was lost."""


class RemoteError(FlagsyncError):
    """One did not do what was asked.

    `status` is the HTTP status (None when there was no answer), `code` the error code from One's
    envelope (or a local code such as ``CONNECTION_ERROR``), `endpoint` the URL template (never the
    URL itself, which may hold a person id).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.endpoint = endpoint
        self.retry_after = retry_after


class RetriableRemoteError(RemoteError):
    """A transient failure (429, 5xx, timeout, reset): the same call may succeed later."""


class FatalRemoteError(RemoteError):
    """A permanent failure for this call: retrying it unchanged cannot help."""


class PersonIssue(StrEnum):
    """Why One will not carry a flag for a person; reported to operators, never retried blindly."""

    PERSON_NOT_FOUND = "PERSON_NOT_FOUND"
    PERSON_ARCHIVED = "PERSON_ARCHIVED"
    PERSON_MERGED = "PERSON_MERGED"
    RECORD_RESTRICTED = "RECORD_RESTRICTED"
    NOT_PERMITTED = "NOT_PERMITTED"


class PersonUnavailable(FatalRemoteError):
    """One refuses to hold a flag for this person; `issue` says why."""

    def __init__(self, issue: PersonIssue, *, status: int | None = None, endpoint: str | None = None) -> None:
        super().__init__(f"One reports {issue.value} for this person", status=status, code=issue.value, endpoint=endpoint)
        self.issue = issue


class ContractViolation(FatalRemoteError):
    """One rejected a request as malformed: flagsync has a bug and someone must be alerted."""
