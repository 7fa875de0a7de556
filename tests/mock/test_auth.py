"""Tests of the mock's token endpoint, bearer checks, scopes and correlation ids."""

from __future__ import annotations

import base64

import pytest

from tests.mock.conftest import Api, InProcess, error_of


def _token(api: Api, **form: str) -> object:
    return api.control("POST", "/connect/token", data=form)


def test_client_credentials_grant_issues_a_bearer_token(api: Api) -> None:
    """A configured client gets a bearer token with the default lifetime and both scopes."""
    response = _token(
        api,
        grant_type="client_credentials",
        client_id="flagsync-local",
        client_secret="local-secret",
        scope="involvements.read involvements.write",
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["access_token"]
    assert body["scope"] == "involvements.read involvements.write"
    assert response.headers["Cache-Control"] == "no-store"


def test_http_basic_client_authentication_is_accepted(api: Api) -> None:
    """Client credentials may come in an HTTP Basic header instead of the form."""
    basic = base64.b64encode(b"flagsync-local:local-secret").decode()
    response = api.control(
        "POST", "/connect/token", data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "client_credentials", "client_id": "flagsync-local", "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"}, 401, "invalid_client"),
        (
            {"grant_type": "password", "client_id": "flagsync-local", "client_secret": "local-secret"},
            400,
            "unsupported_grant_type",
        ),
        ({"client_id": "flagsync-local", "client_secret": "local-secret"}, 400, "invalid_request"),
        (
            {
                "grant_type": "client_credentials",
                "client_id": "flagsync-local",
                "client_secret": "local-secret",
                "scope": "admin",
            },
            400,
            "invalid_scope",
        ),
    ],
)
def test_bad_token_requests_get_oauth_errors(api: Api, form: dict[str, str], status: int, error: str) -> None:
    """Wrong secrets, grants, missing fields and unknown scopes get the RFC 6749 error answer."""
    response = _token(api, **form)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert "local-secret" not in response.text and "wrong" not in response.text


def test_token_request_must_be_form_encoded(api: Api) -> None:
    """A JSON token request is refused as invalid_request."""
    response = api.control("POST", "/connect/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "TOKEN_MISSING"), ("Basic abc", "TOKEN_MISSING"), ("Bearer not-a-token", "TOKEN_INVALID")],
)
def test_missing_or_unknown_tokens_get_401(api: Api, authorization: str | None, code: str) -> None:
    """Calls without a valid bearer token get 401 with the right code and a Bearer challenge."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = api.get("/api/v1/involvements", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if code == "TOKEN_INVALID":
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_token_expires_after_token_ttl_seconds(inproc: InProcess) -> None:
    """A token older than tokenTtlSeconds gets 401 TOKEN_EXPIRED with error="invalid_token"."""
    api = inproc.api
    assert api.control("POST", "/_mock/faults", json={"tokenTtlSeconds": 60}).status_code == 200
    api.fetch_token()
    assert api.get("/api/v1/involvements").status_code == 200
    inproc.clock.advance(61)
    response = api.get("/api/v1/involvements")
    assert response.status_code == 401
    assert error_of(response)["code"] == "TOKEN_EXPIRED"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_token_response_reports_the_configured_lifetime(inproc: InProcess) -> None:
    """expires_in follows tokenTtlSeconds."""
    inproc.api.control("POST", "/_mock/faults", json={"tokenTtlSeconds": 5})
    response = _token(inproc.api, grant_type="client_credentials", client_id="flagsync-local", client_secret="local-secret")
    assert response.json()["expires_in"] == 5


def test_read_only_scope_cannot_write(api: Api) -> None:
    """A token granted only involvements.read gets 403 SCOPE_INSUFFICIENT on a create."""
    response = _token(
        api, grant_type="client_credentials", client_id="flagsync-local", client_secret="local-secret", scope="involvements.read"
    )
    api.token = response.json()["access_token"]
    assert api.get("/api/v1/involvements").status_code == 200
    assert error_of(api.create("P1"))["code"] == "SCOPE_INSUFFICIENT"


def test_correlation_id_is_echoed(api: Api) -> None:
    """A well-formed X-Correlation-ID comes back in the header and in error envelopes."""
    ok = api.get("/api/v1/involvements", headers=api.auth(**{"X-Correlation-ID": "run-42.a"}))
    assert ok.headers["X-Correlation-ID"] == "run-42.a"
    failed = api.get("/api/v1/involvements", headers={"X-Correlation-ID": "run-43"})
    assert failed.headers["X-Correlation-ID"] == "run-43"
    assert error_of(failed)["correlationId"] == "run-43"


def test_a_correlation_id_is_made_up_when_absent_or_malformed(api: Api) -> None:
    """Without a usable X-Correlation-ID the mock generates one rather than echoing junk."""
    response = api.get("/api/v1/involvements", headers={"X-Correlation-ID": "<script>"})
    assert response.headers["X-Correlation-ID"] != "<script>"
    assert error_of(response)["correlationId"] == response.headers["X-Correlation-ID"]
