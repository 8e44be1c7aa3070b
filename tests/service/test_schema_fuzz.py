"""Property-based API tests generated from the service's own OpenAPI schema (schemathesis):
whatever a client sends, the answer is never a 5xx, its status is documented for the
operation, and its body matches the documented schema (problem+json for every error)."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (the test extra) is not installed")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance  # noqa: E402

#: Examples per operation: bounded so the run stays short on 2 cores.
EXAMPLES = 12


schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI writes OpenAPI 3.1


@pytest.fixture
def api_schema(service):
    from schemathesis import DataGenerationMethod

    # valid requests and invalid ones (wrong types, missing fields, out-of-range values)
    return schemathesis.from_asgi("/openapi.json", service.app,
                                  data_generation_methods=[DataGenerationMethod.positive, DataGenerationMethod.negative])


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_response_matches_the_schema(case, service) -> None:
    case.headers = {**(case.headers or {}), **service.headers("admin")}
    response = case.call_asgi()
    case.validate_response(response, checks=(not_a_server_error, status_code_conformance,
                                             response_schema_conformance))
