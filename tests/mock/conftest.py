"""Fixtures for the mock server tests: a real server on a loopback port, and an in-process app with a fake clock."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

with warnings.catch_warnings():
    # starlette asks for httpx2; the httpx the project pins works and is what TestClient uses here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from mocks.one.app import create_app
from mocks.one.core import MockCore
from mocks.one.server import RunningMock, build_core, start_in_thread

CLIENTS = {"flagsync-local": ("local-secret", "PIAS"), "other-team": ("other-secret", "EHS")}
CREATE_BODY = {"involvementType": "PIAS_WORKING_WITH_FAMILY"}
TIMEOUT = (3.05, 10)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Api:
    """A small HTTP helper bound to one base URL and one client's token."""

    base: str
    session: Any
    token: str = ""
    counter: list[int] = field(default_factory=lambda: [0])

    def url(self, path: str) -> str:
        return self.base + path

    def auth(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    def fetch_token(self, client_id: str = "flagsync-local", secret: str = "local-secret") -> str:  # noqa: S107 - the mock's test credential
        data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        response = self.session.post(self.url("/connect/token"), data=data, **self._timeout())
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]
        return self.token

    def create(self, person_id: str, key: str | None = None, body: Any = None, **headers: str) -> Any:
        self.counter[0] += 1
        all_headers = self.auth(**headers)
        all_headers["Idempotency-Key"] = key or f"key-{self.counter[0]}"
        payload = CREATE_BODY if body is None else body
        return self.session.post(
            self.url(f"/api/v1/people/{person_id}/involvements"), json=payload, headers=all_headers, **self._timeout()
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("headers", self.auth())
        return self.session.get(self.url(path), **kwargs, **self._timeout())

    def delete(self, path: str, **headers: str) -> Any:
        return self.session.delete(self.url(path), headers=self.auth(**headers), **self._timeout())

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.session.request(method, self.url(path), **kwargs, **self._timeout())

    def _timeout(self) -> dict[str, Any]:
        return {"timeout": TIMEOUT} if isinstance(self.session, requests.Session) else {}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningMock]:
    with start_in_thread(clients=CLIENTS, seed=7) as running:
        yield running


@pytest.fixture
def api(server: RunningMock) -> Iterator[Api]:
    """A fresh (reset) real server with a token for the PIAS client."""
    with requests.Session() as session:
        helper = Api(server.url, session)
        assert helper.control("POST", "/_mock/reset").status_code == 204
        helper.fetch_token()
        yield helper


@dataclass
class InProcess:
    """An in-process app with a fake clock."""

    api: Api
    core: MockCore
    clock: FakeClock


@pytest.fixture
def inproc() -> Iterator[InProcess]:
    clock = FakeClock()
    core = build_core(clients=CLIENTS, clock=clock, seed=7)
    with TestClient(create_app(core), base_url="http://mock") as client:
        helper = Api("", client)
        helper.fetch_token()
        yield InProcess(helper, core, clock)
    core.close()


def seed(api: Api, *people: dict[str, Any]) -> None:
    """Seed people through the control plane."""
    response = api.control("POST", "/_mock/people", json={"people": list(people)})
    assert response.status_code == 200, response.text


def error_of(response: Any) -> dict[str, Any]:
    """Return the inside of an error envelope, checking its shape."""
    body = response.json()
    assert set(body) == {"error"}
    inner: dict[str, Any] = body["error"]
    assert set(inner) == {"status", "code", "message", "correlationId", "details"}
    assert inner["status"] == response.status_code
    return inner
