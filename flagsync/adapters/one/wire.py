"""The One-style wire contract as flagsync speaks it (docs/one-api.md): paths, codes, the one create body, ids.

Everything here is data and pure functions, shared by the HTTP gateway and the in-memory fake, so
that the fake cannot drift from what the gateway sends and accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeGuard
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from flagsync.core.model import INVOLVEMENT_TYPE, SERVICE_TEAM, Flag, is_valid_person_id
from flagsync.errors import ContractViolation

# ---- paths: the only form in which a URL appears in errors, logs and metrics

PERSON_INVOLVEMENTS: Final = "/api/v1/people/{personId}/involvements"
INVOLVEMENTS: Final = "/api/v1/involvements"
INVOLVEMENT: Final = "/api/v1/involvements/{id}"
TOKEN_PATH: Final = "/connect/token"  # noqa: S105 - a path, not a secret

SCOPE: Final = "involvements.read involvements.write"

# ---- error codes

#: Every error code of the contract's table. A code One sends that is not one of these is never carried
#: anywhere (a One that echoes a person id as its "code" would undo the pseudonyms): it becomes UNKNOWN_CODE,
#: so logs, the audit trail and metric labels only ever hold these words and flagsync's own (`LOCAL_CODES`).
CONTRACT_ERROR_CODES: Final[frozenset[str]] = frozenset(
    {
        "MALFORMED_JSON",
        "INVALID_QUERY",
        "INVALID_PAGE_TOKEN",
        "IDEMPOTENCY_KEY_REQUIRED",
        "TOKEN_MISSING",
        "TOKEN_EXPIRED",
        "TOKEN_INVALID",
        "SCOPE_INSUFFICIENT",
        "SERVICE_TEAM_NOT_PERMITTED",
        "RECORD_RESTRICTED",
        "PERSON_NOT_FOUND",
        "INVOLVEMENT_NOT_FOUND",
        "DUPLICATE_ACTIVE_INVOLVEMENT",
        "PERSON_MERGED",
        "PERSON_ARCHIVED",
        "PRECONDITION_FAILED",
        "PRECONDITION_REQUIRED",
        "UNSUPPORTED_MEDIA_TYPE",
        "UNKNOWN_FIELD",
        "INVALID_INVOLVEMENT_TYPE",
        "IDEMPOTENCY_KEY_REUSED",
        "RATE_LIMITED",
        "INTERNAL_ERROR",
        "UPSTREAM_UNAVAILABLE",
        "MAINTENANCE",
        "GATEWAY_TIMEOUT",
    }
)
UNKNOWN_CODE: Final = "UNKNOWN_CODE"

#: The codes flagsync itself gives to failures that have no code from One.
LOCAL_CODES: Final[frozenset[str]] = frozenset(
    {
        UNKNOWN_CODE,
        "TIMEOUT",
        "CONNECTION_ERROR",
        "REQUEST_ERROR",
        "TLS_UNTRUSTED",
        "TLS_NOT_TLS",
        "TLS_ERROR",
        "INVALID_RESPONSE",
        "LISTING_TOO_LONG",
        "CREDENTIALS_REJECTED",
        "BAD_IDEMPOTENCY_KEY",
        "INVALID_PERSON_ID",
        "INVALID_INVOLVEMENT_ID",
        "NOT_OURS",
    }
)

DUPLICATE_ACTIVE_INVOLVEMENT: Final = "DUPLICATE_ACTIVE_INVOLVEMENT"
INVOLVEMENT_NOT_FOUND: Final = "INVOLVEMENT_NOT_FOUND"
INVALID_PAGE_TOKEN: Final = "INVALID_PAGE_TOKEN"  # noqa: S105 - an error code, not a secret
PRECONDITION_FAILED: Final = "PRECONDITION_FAILED"

# ---- the create body: exactly one field, fixed


class CreateFlagBody(BaseModel):
    """The create request's schema: exactly one field, fixed; nothing else can be added."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    involvementType: Literal["PIAS_WORKING_WITH_FAMILY"] = "PIAS_WORKING_WITH_FAMILY"


#: The only bytes flagsync ever sends as a request body to One's API (computed once, from the schema).
CREATE_BODY: Final[bytes] = json.dumps(CreateFlagBody().model_dump(mode="json"), separators=(",", ":")).encode("ascii")
if json.loads(CREATE_BODY) != {"involvementType": INVOLVEMENT_TYPE}:  # pragma: no cover - a broken schema edit stops import
    raise RuntimeError("the create body is not the bare flag")

# ---- ids and URLs

_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,64}")
_ETAG_VERSION = re.compile(r'(?:W/)?"([0-9]{1,18})"')
_DIGITS = re.compile(r"(\d+)")
MAX_INVOLVEMENT_ID_LENGTH: Final = 128


def check_idempotency_key(key: str) -> None:
    """Refuse (ContractViolation) a key that is not 1-64 visible ASCII characters, before anything is sent."""
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ContractViolation(
            "Refused to send an Idempotency-Key that is not 1-64 visible ASCII characters", code="BAD_IDEMPOTENCY_KEY"
        )


def person_path(person_id: str) -> str:
    """`/api/v1/people/{personId}/involvements` for a well-formed id; a malformed id never reaches a URL."""
    if not is_valid_person_id(person_id):
        raise ContractViolation(
            f"Refused to put a malformed person id in {PERSON_INVOLVEMENTS}",
            code="INVALID_PERSON_ID",
            endpoint=PERSON_INVOLVEMENTS,
        )
    return PERSON_INVOLVEMENTS.format(personId=person_id)


def is_valid_involvement_id(value: object) -> TypeGuard[str]:
    """Whether `value` can be an involvement id in a URL: short, printable, no whitespace, not a dot path."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_INVOLVEMENT_ID_LENGTH
        and value not in (".", "..")
        and value.isprintable()
        and " " not in value  # the space is the only whitespace character that is printable
    )


def involvement_path(involvement_id: str) -> str:
    """`/api/v1/involvements/{id}`, the id escaped; a malformed id never reaches a URL."""
    if not is_valid_involvement_id(involvement_id):
        raise ContractViolation(
            f"Refused to put a malformed involvement id in {INVOLVEMENT}", code="INVALID_INVOLVEMENT_ID", endpoint=INVOLVEMENT
        )
    return INVOLVEMENT.format(id=quote(involvement_id, safe=""))


def etag_version(value: str | None) -> int | None:
    """The version in an ETag header (`W/"3"`), or None when there is none or it is not a version."""
    match = _ETAG_VERSION.fullmatch((value or "").strip())
    return int(match.group(1)) if match else None


def id_order(involvement_id: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key for involvement ids that orders their numbers as numbers (INV-999999 before INV-1000000).

    The split puts the runs of decimal digits at the odd positions; only those are numbers (a
    superscript two passes str.isdigit() but is not one). For a well-formed id (at most
    MAX_INVOLVEMENT_ID_LENGTH characters) every number is within int()'s limit on digits.
    """
    parts = _DIGITS.split(involvement_id)
    return tuple((0, int(part)) if n % 2 else (1, part) for n, part in enumerate(parts) if part)


def is_ours(item: Mapping[str, Any]) -> bool:
    """Whether a listed item is one of our flags (our team, our type, active)."""
    return (
        item.get("serviceTeam") == SERVICE_TEAM
        and item.get("involvementType") == INVOLVEMENT_TYPE
        and item.get("status", "active") == "active"
    )


def flag_from(item: Mapping[str, Any]) -> Flag | None:
    """A Flag from a listed item of ours, or None when its ids are unusable.

    A missing or odd version becomes 0: the removal then meets 412, re-reads the version and still
    removes it, which is better than silently keeping a flag that should go.
    """
    involvement_id, person_id, version = item.get("id"), item.get("personId"), item.get("version")
    if not is_valid_involvement_id(involvement_id) or not isinstance(person_id, str) or not is_valid_person_id(person_id):
        return None
    return Flag(involvement_id, person_id, version if type(version) is int and version >= 0 else 0)
