"""A client for the mock's `/_mock/` control plane: what testers, tests, benchmarks and the demo do to the mock.

One copy of every control-plane call (reset, people, involvements by hand, faults, the request
journal), over a `requests.Session` that ignores proxy variables and netrc. A call the control plane
refuses raises `ControlError` with the mock's own message. This module is part of the mock and, like
it, never imports flagsync.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import requests

TIMEOUT = (3.05, 30.0)


class ControlError(RuntimeError):
    """The control plane refused a call (or did not answer); the message is the mock's own."""


class MockControl:
    """The control plane of the mock at `url` (e.g. ``http://127.0.0.1:8080``). Close it (or use `with`) when done."""

    def __init__(self, url: str, *, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = session or requests.Session()
        self._http.trust_env = False  # a tester's HTTP_PROXY must not capture the mock's traffic either

    def __enter__(self) -> MockControl:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def session(self) -> requests.Session:
        """The underlying session (for a test that calls One's API itself, beside the control plane)."""
        return self._http

    # ---- the world

    def reset(self) -> None:
        """Empty everything: people, involvements, the journal, faults."""
        self._call("POST", "/_mock/reset")

    def seed_people(self, people: Sequence[Mapping[str, str]]) -> int:
        """Seed people (`{"personId": ..., "state": ..., "successorPersonId": ...}`); return how many."""
        result = self._call("POST", "/_mock/people", {"people": list(people)})
        return int(result.get("count", len(people))) if isinstance(result, dict) else len(people)

    def people(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_mock/people")["people"])

    def add_involvement(self, person_id: str, team: str, involvement_type: str | None = None) -> dict[str, Any]:
        """An involvement made directly in One (ours "by hand", or another team's); return it as the mock stores it."""
        body: dict[str, str] = {"personId": person_id, "serviceTeam": team}
        if involvement_type is not None:
            body["involvementType"] = involvement_type
        made: dict[str, Any] = self._call("POST", "/_mock/involvements", body)
        return made

    def remove_involvement(self, involvement_id: str, *, missing_ok: bool = False) -> None:
        """Remove an involvement directly in One (drift)."""
        self._call("DELETE", f"/_mock/involvements/{involvement_id}", ok=(204, 404) if missing_ok else (204,))

    def involvements(self) -> list[dict[str, Any]]:
        """Everything stored, every team and status, ordered by id."""
        return list(self._call("GET", "/_mock/involvements")["items"])

    def active(self, team: str, involvement_type: str) -> list[dict[str, Any]]:
        """The active involvements of one team and type (e.g. flagsync's flags)."""
        return [
            item
            for item in self.involvements()
            if item["serviceTeam"] == team and item["involvementType"] == involvement_type and item["status"] == "active"
        ]

    # ---- faults

    def set_faults(self, config: Mapping[str, Any]) -> None:
        """Replace the fault configuration (rules, seed, rate limit, token lifetime, listing delay)."""
        self._call("POST", "/_mock/faults", dict(config))

    def faults(self) -> dict[str, Any]:
        """The fault configuration and each rule's state (how often it fired, whether it is spent)."""
        state: dict[str, Any] = self._call("GET", "/_mock/faults")
        return state

    def clear_faults(self) -> None:
        self._call("DELETE", "/_mock/faults")

    # ---- the request journal

    def journal(self, **query: str | int) -> list[dict[str, Any]]:
        """Journal entries, newest page first as the mock pages them; `query` takes its filters (since, limit, method, ...)."""
        params = {key: str(value) for key, value in query.items()}
        return list(self._call("GET", "/_mock/requests", params=params)["items"])

    def last_seq(self) -> int:
        """The sequence number of the newest journal entry (0 when there is none), to read what came after."""
        entries = self.journal(limit=1)
        return max((int(entry["seq"]) for entry in entries), default=0)

    def since(self, seq: int) -> list[dict[str, Any]]:
        """Every journal entry after `seq`."""
        return self.journal(since=seq)

    # ---- plumbing

    def _call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: Mapping[str, str] | None = None,
        ok: Sequence[int] = (200, 201, 204),
    ) -> Any:
        try:
            response = self._http.request(method, self.url + path, json=body, params=params, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ControlError(f"{method} {path}: no answer from the mock ({type(exc).__name__})") from None
        if response.status_code not in ok:
            raise ControlError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None
