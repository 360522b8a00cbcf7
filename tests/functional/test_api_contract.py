"""The API's contract, read from its OpenAPI document and checked against the real endpoints:
every documented request example is accepted, and schema-invalid variants of it (a missing
required field, an unknown field, a value of the wrong type) get the documented error, a
problem with a 400 code and the field named in ``errors``."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import func, select

from infomediary import create_app
from infomediary.instance import Instance
from infomediary.models import BudgetCharge
from infomediary.web.errors import PROBLEM_TYPE, STATUS
from tests.factories import make_supplier
from tests.functional.supplier_api import SupplierApi, supplier_api

WRONG_TYPE: dict[str, Any] = {
    "string": 12345,
    "integer": "12",
    "number": "1.5",
    "boolean": "yes",
    "array": "NSW",
    "object": ["region"],
}


#: Operations whose bodies test_intents_api.py checks against this document, with the clients
#: and the intent they need.
INTENT_PATHS = ("/api/v1/me/intents", "/api/v1/intents/")


@pytest.fixture
def api(inst: Instance) -> SupplierApi:
    return supplier_api(inst)


def _document(api: SupplierApi) -> dict[str, Any]:
    document: dict[str, Any] = api.client.get("/api/openapi.json").get_json()
    return document


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        section, name = item["$ref"].split("/")[-2:]
        item = document["components"][section][name]
    return item


def _bodies(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(path, method, operation, JSON request schema) of every operation with a JSON body."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if path.startswith("/api/") and "application/json" in content:
                schema = _resolve(document, content["application/json"]["schema"])
                if schema.get("type") == "array":
                    continue  # a batch of purchase lines: test_purchases_push.py checks it
                if path.startswith(INTENT_PATHS):
                    continue  # they need a customer's agent and an intent: test_intents_api.py
                found.append((path, method, operation, schema))
    return found


def _examples(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    return {name: example["value"] for name, example in examples.items()}


def _type_of(document: dict[str, Any], prop: dict[str, Any]) -> str:
    kind = _resolve(document, prop).get("type", "object")
    kinds = [kind] if isinstance(kind, str) else [k for k in kind if k != "null"]
    return str(kinds[0])


def _variants(
    document: dict[str, Any], schema: dict[str, Any], example: dict[str, Any]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, field the error must name, body): schema-invalid versions of an example."""
    variants = [("unknown field", "surprise", {**example, "surprise": 1})]
    for name in schema.get("required", []):
        variants.append((f"missing {name}", name, {k: v for k, v in example.items() if k != name}))
    for name, prop in schema["properties"].items():
        wrong = WRONG_TYPE[_type_of(document, prop)]
        variants.append((f"{name} of the wrong type", name, {**example, name: wrong}))
    return variants


def _charges(inst: Instance) -> int:
    with inst.sessions() as session:
        return int(session.execute(select(func.count()).select_from(BudgetCharge)).scalar_one())


def _assert_documented_problem(
    document: dict[str, Any], operation: dict[str, Any], response: Any, field: str
) -> None:
    status = str(response.status_code)
    assert status == "400", (field, response.get_data(as_text=True))
    documented = _resolve(document, operation["responses"][status])
    assert response.content_type == "application/problem+json"
    assert "application/problem+json" in documented["content"]
    problem = response.get_json()
    schema = _resolve(document, documented["content"]["application/problem+json"]["schema"])
    assert set(schema["required"]) <= set(problem)
    assert problem["type"] == PROBLEM_TYPE + problem["code"]
    assert problem["status"] == 400
    assert STATUS[problem["code"]] == 400
    assert field in problem["errors"], problem
    assert all(isinstance(v, str) and v for v in problem["errors"].values())
    assert problem["detail"] in problem["errors"].values()


def test_every_operation_with_a_body_documents_examples(api: SupplierApi) -> None:
    bodies = _bodies(_document(api))
    assert {(path, method) for path, method, _, _ in bodies} == {
        ("/api/v1/audiences/count", "post"),
        ("/api/v1/audiences/intent-demand", "post"),
        ("/api/v1/offers", "post"),
        ("/api/v1/supplier/terms", "post"),
    }
    for path, _method, operation, schema in bodies:
        examples = _examples(operation)
        assert len(examples) >= 2, path
        for example in examples.values():
            assert set(schema["required"]) <= set(example)
            assert set(example) <= set(schema["properties"])


def test_documented_examples_are_accepted(api: SupplierApi) -> None:
    document = _document(api)
    sent = 0
    for path, method, operation, _schema in _bodies(document):
        for name, example in _examples(operation).items():
            response = api.client.open(path, method=method, json=example, headers=api.headers)
            success = [s for s in operation["responses"] if s.startswith("2")]
            assert str(response.status_code) in success, (path, name, response.get_json())
            assert response.content_type == "application/json"
            sent += 1
    assert sent >= 4


def test_schema_invalid_bodies_get_the_documented_problem(api: SupplierApi, inst: Instance) -> None:
    document = _document(api)
    checked = 0
    for path, method, operation, schema in _bodies(document):
        example = next(iter(_examples(operation).values()))
        for label, field, body in _variants(document, schema, example):
            response = api.client.open(path, method=method, json=body, headers=api.headers)
            assert response.status_code == 400, (path, label)
            _assert_documented_problem(document, operation, response, field)
            checked += 1
        not_an_object = api.client.open(path, method=method, json=[example], headers=api.headers)
        _assert_documented_problem(document, operation, not_an_object, "body")
        not_json = api.client.open(
            path,
            method=method,
            data="{oops",
            headers={**api.headers, "Content-Type": "application/json"},
        )
        _assert_documented_problem(document, operation, not_json, "body")
        assert not_json.get_json()["code"] == "invalid_json"
    assert checked >= 15
    assert _charges(inst) == 0  # a refused request costs nothing


@pytest.mark.parametrize(
    ("path", "body", "code", "field"),
    [
        ("/api/v1/offers", {"breakdown": "region"}, "invalid_offer", "breakdown"),
        ("/api/v1/offers", {"where": {"region": "NSW"}}, "invalid_values", "where"),
        ("/api/v1/offers", {"where": {"shoe_size": ["9"]}}, "unknown_attribute", "where"),
        ("/api/v1/offers", {"title": "   "}, "invalid_offer", "title"),
        ("/api/v1/offers", {"reward_cents": True}, "invalid_offer", "reward_cents"),
        ("/api/v1/offers", {"max_recipients": 1.5}, "invalid_offer", "max_recipients"),
        ("/api/v1/offers", {"purpose": "spying"}, "unknown_purpose", "purpose"),
        ("/api/v1/offers", {"purpose": "service"}, "undeclared_purpose", "purpose"),
        ("/api/v1/audiences/count", {"where": {"region": "NSW"}}, "invalid_values", "where"),
        ("/api/v1/audiences/count", {"breakdown": "interests"}, "invalid_breakdown", "breakdown"),
        ("/api/v1/audiences/count", {"purpose": "service"}, "undeclared_purpose", "purpose"),
        ("/api/v1/audiences/intent-demand", {"category": "x"}, "unknown_value", "category"),
        ("/api/v1/audiences/intent-demand", {"region": "Narnia"}, "unknown_value", "region"),
        ("/api/v1/audiences/intent-demand", {"purpose": "spying"}, "unknown_purpose", "purpose"),
        (
            "/api/v1/audiences/intent-demand",
            {"purpose": "service"},
            "undeclared_purpose",
            "purpose",
        ),
    ],
)
def test_each_rule_has_its_code(
    api: SupplierApi, inst: Instance, path: str, body: dict[str, Any], code: str, field: str
) -> None:
    document = _document(api)
    operation = document["paths"][path]["post"]
    example = next(iter(_examples(operation).values()))
    response = api.client.post(path, json={**example, **body}, headers=api.headers)
    _assert_documented_problem(document, operation, response, field)
    assert response.get_json()["code"] == code
    assert _charges(inst) == 0


def test_refused_tokens_are_problems_with_a_challenge(api: SupplierApi) -> None:
    document = _document(api)
    operation = document["paths"]["/api/v1/audiences/count"]["post"]
    example = next(iter(_examples(operation).values()))
    for headers, status, code in (
        ({}, 401, "missing_authorization"),
        ({"Authorization": "Bearer not-a-token"}, 401, "invalid_token"),
    ):
        response = api.client.post("/api/v1/audiences/count", json=example, headers=headers)
        assert response.status_code == status
        assert response.content_type == "application/problem+json"
        assert response.get_json()["code"] == code
        assert response.get_json()["status"] == status
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="infomediary"')
        assert str(status) in operation["responses"]
    in_url = api.client.get("/api/v1/audiences/attributes?access_token=x", headers=api.headers)
    assert in_url.status_code == 400
    assert in_url.get_json()["code"] == "invalid_request"
    assert "access_token" in in_url.get_json()["errors"]


def test_a_missing_scope_is_a_403_problem_naming_the_scope(inst: Instance) -> None:
    app = create_app(inst.settings, instance=inst)
    creds = make_supplier(
        inst,
        name="Counter Only",
        scopes=("audience:count",),
        purposes=("marketing",),
        redirect_uris=(),
    )
    client = app.test_client()
    basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    token = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "audience:count"},
        headers={"Authorization": f"Basic {basic}"},
    ).get_json()["access_token"]
    response = client.get("/api/v1/offers/x", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "insufficient_scope"
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="offers:send"' in challenge
