"""Property-based conformance: schemathesis fuzzes the mock from its own OpenAPI; no 5xx, every answer as documented."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from mocks.one.app import create_app
from mocks.one.core import ALL_SCOPES
from mocks.one.server import build_core

_CORE = build_core(any_person=True)
_CLIENT = _CORE.client("flagsync-local")
assert _CLIENT is not None
_TOKEN, _ = _CORE.issue_token(_CLIENT, ALL_SCOPES)

# Fault injection stays out of reach of the fuzzer, so every 5xx it sees is a real bug.
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_CORE)).exclude(path_regex="^/_mock/faults")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_mock_conforms_to_its_openapi(case: schemathesis.Case) -> None:
    """Every generated request gets a documented status, content type and body schema, and never a server error."""
    case.call_and_validate(
        headers={"Authorization": f"Bearer {_TOKEN}"},
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
