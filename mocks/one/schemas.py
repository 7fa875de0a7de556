"""Pydantic models for the mock's JSON shapes: the One API's responses and the control plane's bodies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PERSON_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
INVOLVEMENT_ID_PATTERN = r"^INV-[0-9]{6,}$"
TEAM_PATTERN = r"^[A-Z][A-Z0-9_]{0,31}$"
INVOLVEMENT_TYPE_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}$"

_STRICT = ConfigDict(extra="forbid", hide_input_in_errors=True)

PersonStateName = Literal["active", "archived", "restricted", "merged"]
InvolvementStatus = Literal["active", "removed"]


class Involvement(BaseModel):
    """One involvement as One returns it."""

    model_config = _STRICT

    id: str = Field(pattern=INVOLVEMENT_ID_PATTERN, examples=["INV-000042"])
    personId: str = Field(pattern=PERSON_ID_PATTERN, examples=["P0001234"])
    serviceTeam: str = Field(examples=["PIAS"])
    involvementType: str = Field(examples=["PIAS_WORKING_WITH_FAMILY"])
    status: InvolvementStatus
    startDate: str = Field(json_schema_extra={"format": "date"}, examples=["2026-11-24"])
    lastUpdated: str = Field(json_schema_extra={"format": "date-time"}, examples=["2026-11-24T20:00:00Z"])
    version: int = Field(ge=1)


class InvolvementPage(BaseModel):
    """One page of the listing of the caller's involvements."""

    model_config = _STRICT

    items: list[Involvement]
    nextPageToken: str | None = Field(description="Opaque; valid for 10 minutes. null on the last page.")


class InvolvementList(BaseModel):
    """A plain list of involvements."""

    model_config = _STRICT

    items: list[Involvement]


class InvolvementCreate(BaseModel):
    """The only body a create accepts: exactly one field."""

    model_config = _STRICT

    involvementType: str = Field(examples=["PIAS_WORKING_WITH_FAMILY"])


class ErrorBody(BaseModel):
    """The inside of the error envelope."""

    model_config = _STRICT

    status: int
    code: str
    message: str
    correlationId: str
    details: dict[str, Any]


class ErrorEnvelope(BaseModel):
    """Every One API error body."""

    model_config = _STRICT

    error: ErrorBody


class TokenResponse(BaseModel):
    """A successful OAuth2 client-credentials answer."""

    model_config = _STRICT

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    scope: str


class OAuthError(BaseModel):
    """An OAuth2 error answer from the token endpoint (RFC 6749 section 5.2)."""

    model_config = _STRICT

    error: Literal["invalid_request", "invalid_client", "unsupported_grant_type", "invalid_scope"]
    error_description: str


class PersonSeed(BaseModel):
    """One person to seed, with the state One holds for them."""

    model_config = _STRICT

    personId: str = Field(pattern=PERSON_ID_PATTERN)
    state: PersonStateName = "active"
    successorPersonId: str | None = Field(
        default=None, pattern=PERSON_ID_PATTERN, description="Required for, and only allowed with, state merged."
    )

    @model_validator(mode="after")
    def _successor_only_when_merged(self) -> PersonSeed:
        if self.state == "merged" and self.successorPersonId is None:
            raise ValueError("a merged person needs a successorPersonId")
        if self.state != "merged" and self.successorPersonId is not None:
            raise ValueError("successorPersonId is only allowed with state merged")
        if self.successorPersonId == self.personId:
            raise ValueError("a person cannot be merged into itself")
        return self


class PeopleSeed(BaseModel):
    """The body of POST /_mock/people."""

    model_config = _STRICT

    people: list[PersonSeed] = Field(max_length=200_000)


class PeopleView(BaseModel):
    """The people the mock knows (seeded ones; with --any-person others exist implicitly)."""

    model_config = _STRICT

    anyPerson: bool
    people: list[PersonSeed]


class SeedResult(BaseModel):
    """How many people a seed call stored."""

    model_config = _STRICT

    count: int


class DirectInvolvement(BaseModel):
    """The body of POST /_mock/involvements: an involvement made directly in One, by any team."""

    model_config = _STRICT

    personId: str = Field(pattern=PERSON_ID_PATTERN)
    serviceTeam: str = Field(default="PIAS", pattern=TEAM_PATTERN)
    involvementType: str | None = Field(
        default=None, pattern=INVOLVEMENT_TYPE_PATTERN, description="Defaults to <serviceTeam>_WORKING_WITH_FAMILY."
    )
    status: InvolvementStatus = "active"


class JournalEntry(BaseModel):
    """One request the mock received, as it arrived."""

    model_config = _STRICT

    seq: int
    time: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    status: int | None
    errorCode: str | None = Field(description="The error code the answer carried (envelope code, or OAuth error); null if none.")
    correlationId: str
    dropped: bool
    injectedFault: bool = Field(description="The answer was made by a fault rule or the rate limit, not by the API.")
    faultRule: int | None = Field(description="The id of the fault rule that fired for this request (also a latency-only one).")
    rateLimited: bool


class Journal(BaseModel):
    """One page of the request journal, oldest first."""

    model_config = _STRICT

    items: list[JournalEntry]
    matched: int = Field(description="How many records match the filters (and since/before); items are the latest of them.")
    nextBefore: int | None = Field(description="Pass as `before` for the next older page; null when there is none.")


class FaultRule(BaseModel):
    """A rule that makes matching requests fail, stall or lose their connection."""

    model_config = _STRICT

    method: str = Field(default="*", pattern=r"^(\*|[A-Za-z]{1,16})$")
    path: str = Field(default="*", min_length=1, max_length=512, description="fnmatch-style glob on the path, e.g. /api/v1/*")
    status: int | None = Field(default=None, ge=400, le=599)
    code: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]{0,63}$")
    retryAfter: int | None = Field(default=None, ge=0, le=86_400)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    times: int | None = Field(default=None, ge=0, description="How many times the rule may fire; null means unlimited.")
    afterCommit: bool = False
    latencyMs: int = Field(default=0, ge=0, le=120_000)
    dropConnection: bool = False

    @model_validator(mode="after")
    def _after_commit_needs_an_answer(self) -> FaultRule:
        if self.afterCommit and self.status is None and not self.dropConnection:
            raise ValueError("afterCommit needs a status or dropConnection")
        return self


class RateLimit(BaseModel):
    """A token bucket applied to every One API request."""

    model_config = _STRICT

    perSecond: float = Field(gt=0, le=1_000_000)
    burst: int | None = Field(default=None, ge=1, le=1_000_000, description="Defaults to perSecond rounded up.")


class FaultConfig(BaseModel):
    """The body of POST /_mock/faults: replaces the whole fault configuration."""

    model_config = _STRICT

    seed: int | None = None
    rules: list[FaultRule] = Field(default_factory=list, max_length=1000)
    rateLimit: RateLimit | None = None
    tokenTtlSeconds: int = Field(default=3600, ge=0, le=31_536_000)
    listingDelaySeconds: float = Field(default=0.0, ge=0, le=86_400)


class FaultSettings(BaseModel):
    """The body of PATCH /_mock/faults: the settings it names change, the rules (and their counters) stay."""

    model_config = _STRICT

    seed: int | None = Field(default=None, description="null: back to the server's --seed. Restarts the random sequence.")
    rateLimit: RateLimit | None = Field(default=None, description="null: no rate limit.")
    tokenTtlSeconds: int = Field(default=3600, ge=0, le=31_536_000)
    listingDelaySeconds: float = Field(default=0.0, ge=0, le=86_400)


class FaultRuleState(BaseModel):
    """A configured rule with how often it has fired."""

    model_config = _STRICT

    id: int = Field(description="Stable while the rule exists; journal records name it in faultRule.")
    rule: FaultRule
    fired: int
    remaining: int | None
    spent: bool = Field(description="Its times are used up: it will not fire again.")


class FaultState(BaseModel):
    """The active fault configuration as GET /_mock/faults reports it."""

    model_config = _STRICT

    seed: int
    rules: list[FaultRuleState]
    rateLimit: RateLimit | None
    tokenTtlSeconds: int
    listingDelaySeconds: float
