"""schemathesis against the live app: generated requests, valid and invalid, to every API
operation, with a real bearer token. None answers a server error, and every answer conforms
to the OpenAPI document (status, content type, headers, body schema).

The examples are bounded (``MAX_EXAMPLES`` per operation and generation mode) so the whole
run stays well under a minute.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

from infomediary.instance import Instance
from tests.functional.supplier_api import SupplierApi, supplier_api

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 20
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@pytest.fixture
def api(inst: Instance) -> SupplierApi:
    return supplier_api(inst)


def _api_operations(api: SupplierApi) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", api.app)
    operations = []
    for result in schema.include(path_regex="^/api/v1/").get_all_operations():
        assert isinstance(result, Ok), result  # an operation schemathesis could not read
        operations.append(result.ok())
    assert {op.label for op in operations} >= {
        "GET /api/v1/me",
        "GET /api/v1/audiences/attributes",
        "POST /api/v1/audiences/count",
        "POST /api/v1/offers",
        "GET /api/v1/offers/{offer_id}",
        "GET /api/v1/offers/{offer_id}/contacts/{sub}",
    }
    return operations


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_api_never_fails_and_conforms(api: SupplierApi, mode: GenerationMode) -> None:
    operations = _api_operations(api)
    statuses: dict[str, set[int]] = {}

    @given(data=st.data())
    @settings(
        max_examples=MAX_EXAMPLES * len(operations),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    def run(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call_and_validate(headers=api.headers, checks=CHECKS)
        statuses.setdefault(operation.label, set()).add(response.status_code)

    run()
    if mode is GenerationMode.POSITIVE:
        assert set(statuses) == {op.label for op in operations}  # every operation was called
        assert 200 in statuses["GET /api/v1/audiences/attributes"]
        assert statuses["POST /api/v1/audiences/count"] & {200}
    else:  # only operations with a body or parameters have invalid inputs
        assert {"POST /api/v1/audiences/count", "POST /api/v1/offers"} <= set(statuses)
        assert statuses["POST /api/v1/audiences/count"] == {400}
        assert statuses["POST /api/v1/offers"] == {400}
