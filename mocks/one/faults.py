"""Fault injection: the rules and their counters, the seeded random sequence, the rate-limit bucket, the settings."""

from __future__ import annotations

import fnmatch
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mocks.one.errors import ApiError
from mocks.one.schemas import FaultConfig, FaultRule, FaultSettings


@dataclass(frozen=True)
class FaultDecision:
    """What an injected fault does to one request."""

    rule_id: int
    latency_seconds: float
    status: int | None
    code: str | None
    retry_after: int | None
    after_commit: bool
    drop_connection: bool


@dataclass
class _RuleState:
    id: int
    rule: FaultRule
    fired: int = 0

    def remaining(self) -> int | None:
        return None if self.rule.times is None else max(self.rule.times - self.fired, 0)


@dataclass
class _Faults:
    config: FaultConfig
    seed: int
    rng: random.Random
    rules: list[_RuleState]
    bucket_tokens: float = 0.0
    bucket_time: float = 0.0


def _full_bucket(config: FaultConfig) -> float:
    if config.rateLimit is None:
        return 0.0
    return float(config.rateLimit.burst or math.ceil(config.rateLimit.perSecond))


class FaultInjector:
    """The active fault configuration and what it has done so far.

    Not thread-safe on its own: MockCore calls it under the lock that guards all the mock's state.
    """

    def __init__(self, *, seed: int, clock: Callable[[], float]) -> None:
        #: The seed used when a configuration names none.
        self._default_seed = seed
        self._clock = clock
        self._next_rule_id = 1
        self._faults = self._new_faults(FaultConfig())

    @property
    def config(self) -> FaultConfig:
        """The active configuration (its settings, such as the token lifetime, apply outside this class too)."""
        return self._faults.config

    def _new_rule(self, rule: FaultRule) -> _RuleState:
        state = _RuleState(self._next_rule_id, rule)
        self._next_rule_id += 1
        return state

    def _new_faults(self, config: FaultConfig) -> _Faults:
        seed = self._default_seed if config.seed is None else config.seed
        rules = [self._new_rule(rule) for rule in config.rules]
        return _Faults(config, seed, random.Random(seed), rules, _full_bucket(config), self._clock())

    def reset(self) -> None:
        """Clear every fault and number rules from 1 again."""
        self._next_rule_id = 1
        self._faults = self._new_faults(FaultConfig())

    def replace(self, config: FaultConfig) -> None:
        """Replace the fault configuration; the random sequence restarts from its seed."""
        self._faults = self._new_faults(config)

    def add_rule(self, rule: FaultRule) -> int:
        """Append one rule after the others, which keep their counters; return its id."""
        faults = self._faults
        state = self._new_rule(rule)
        faults.rules.append(state)
        faults.config = faults.config.model_copy(update={"rules": [*faults.config.rules, rule]})
        return state.id

    def remove_rule(self, rule_id: int) -> None:
        """Remove one rule by id (the others keep their counters), or raise 404 FAULT_RULE_NOT_FOUND."""
        faults = self._faults
        kept = [state for state in faults.rules if state.id != rule_id]
        if len(kept) == len(faults.rules):
            raise ApiError(404, "FAULT_RULE_NOT_FOUND")
        faults.rules = kept
        faults.config = faults.config.model_copy(update={"rules": [state.rule for state in kept]})

    def update_settings(self, settings: FaultSettings) -> None:
        """Change the settings `settings` names (its fields set), keeping every rule and its counters.

        A new seed restarts the random sequence; a new rate limit starts with a full bucket.
        """
        given = settings.model_fields_set
        update = {name: getattr(settings, name) for name in given}
        faults = self._faults
        faults.config = faults.config.model_copy(update=update)
        if "seed" in given:
            faults.seed = self._default_seed if settings.seed is None else settings.seed
            faults.rng = random.Random(faults.seed)
        if "rateLimit" in given:
            faults.bucket_tokens = _full_bucket(faults.config)
            faults.bucket_time = self._clock()

    def state(self) -> dict[str, Any]:
        """Return the active fault configuration with per-rule counters."""
        faults = self._faults
        return {
            "seed": faults.seed,
            "rules": [
                {
                    "id": rule.id,
                    "rule": rule.rule.model_dump(),
                    "fired": rule.fired,
                    "remaining": rule.remaining(),
                    "spent": rule.remaining() == 0,
                }
                for rule in faults.rules
            ],
            "rateLimit": faults.config.rateLimit.model_dump() if faults.config.rateLimit else None,
            "tokenTtlSeconds": faults.config.tokenTtlSeconds,
            "listingDelaySeconds": faults.config.listingDelaySeconds,
        }

    def take_rate_token(self) -> int | None:
        """Spend one rate-limit token; return None if allowed, else the whole seconds to wait."""
        faults = self._faults
        limit = faults.config.rateLimit
        if limit is None:
            return None
        now = self._clock()
        burst = float(limit.burst or math.ceil(limit.perSecond))
        faults.bucket_tokens = min(burst, faults.bucket_tokens + max(now - faults.bucket_time, 0.0) * limit.perSecond)
        faults.bucket_time = now
        if faults.bucket_tokens >= 1.0:
            faults.bucket_tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - faults.bucket_tokens) / limit.perSecond))

    def decide(self, method: str, path: str) -> FaultDecision | None:
        """Return the first matching rule that fires for this request (consuming one of its `times`), or None."""
        for state in self._faults.rules:
            rule = state.rule
            if rule.method != "*" and rule.method.upper() != method.upper():
                continue
            if not fnmatch.fnmatchcase(path, rule.path):
                continue
            remaining = state.remaining()
            if remaining is not None and remaining <= 0:
                continue
            if rule.probability < 1.0 and self._faults.rng.random() >= rule.probability:
                continue
            state.fired += 1
            return FaultDecision(
                rule_id=state.id,
                latency_seconds=rule.latencyMs / 1000.0,
                status=rule.status,
                code=rule.code,
                retry_after=rule.retryAfter,
                after_commit=rule.afterCommit,
                drop_connection=rule.dropConnection,
            )
        return None
