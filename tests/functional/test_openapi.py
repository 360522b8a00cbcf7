"""The OpenAPI document is valid, generated from the routes, and covers every API route with
every error it answers (all RFC 9457 problem details)."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from infomediary.web.openapi_oauth import OAUTH_OPERATIONS

API_PREFIXES = ("/api/v1/", "/oauth/", "/.well-known/")
METHODS = {"get", "post", "put", "patch", "delete"}
#: The consent form's POST is for people (CSRF, HTML), not a supplier-facing operation.
NOT_FOR_CLIENTS = {("/oauth/authorize", "post")}


def _document(client: Any) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.get_json()
    return document


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        section, name = item["$ref"].split("/")[-2:]
        item = document["components"][section][name]
    return item


def _routes(app: Any) -> set[tuple[str, str]]:
    return {
        (rule.rule.replace("<", "{").replace(">", "}"), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API_PREFIXES)
        for method in rule.methods or ()
        if method.lower() in METHODS
    }


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_document_is_valid_openapi(client) -> None:
    document = _document(client)
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_api_route_is_documented_and_every_documented_operation_exists(app, client) -> None:
    document = _document(client)
    routes = _routes(app)
    operations = _operations(document)
    assert routes - operations == NOT_FOR_CLIENTS
    assert operations - routes == set()


#: The log's proofs are public: anyone may check the log, with no account and no token.
PUBLIC_OPERATIONS = {
    "/api/v1/log/proof/inclusion",
    "/api/v1/log/proof/consistency",
    "/api/v1/log/checkpoint",
    "/api/v1/log/key",
    "/api/v1/terms",
    "/api/v1/terms/<agreement_id>",
}
#: Public operations that take parameters (and so may answer 400).
PARAMETERISED = {
    "/api/v1/log/proof/inclusion",
    "/api/v1/log/proof/consistency",
    "/api/v1/log/checkpoint",
    "/api/v1/terms",
    "/api/v1/terms/<agreement_id>",
}


def test_api_operations_come_from_the_views(app, client) -> None:
    """Each /api/v1 operation is the YAML of its view's docstring: ids, tags and responses."""
    document = _document(client)
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        view = app.view_functions[rule.endpoint]
        assert "---" in (view.__doc__ or ""), rule.endpoint
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in rule.methods or ():
            if method.lower() not in METHODS:
                continue
            operation = document["paths"][path][method.lower()]
            assert operation["operationId"] in view.__doc__
            assert operation["tags"]
            if rule.rule in PUBLIC_OPERATIONS:  # anyone's: no token, so no 401
                assert operation["security"] == [], path
                assert "429" in operation["responses"], (path, method)
                if rule.rule in PARAMETERISED:
                    assert "400" in operation["responses"], (path, method)
                assert "401" not in operation["responses"], path
            else:
                assert operation["security"], path
                assert {"400", "401", "429"} <= set(operation["responses"]), (path, method)
            parameters = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert parameters == set(rule.arguments), path
    assert set(OAUTH_OPERATIONS) <= set(app.view_functions)


def test_every_api_error_response_is_a_problem(client) -> None:
    document = _document(client)
    checked = 0
    for path, item in document["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                content = _resolve(document, response)["content"]
                assert set(content) == {"application/problem+json"}, (path, method, status)
                schema = content["application/problem+json"]["schema"]
                refs = [s["$ref"] for s in schema.get("anyOf", [schema])]
                for ref in refs:
                    problem = _resolve(document, {"$ref": ref})
                    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])
                for example in content["application/problem+json"].get("examples", {}).values():
                    assert example["value"]["status"] == int(status), (path, status)
                checked += 1
    assert checked >= 25


def test_error_responses_are_documented(client) -> None:
    document = _document(client)
    me = document["paths"]["/api/v1/me"]["get"]["responses"]
    assert {"200", "400", "401", "403", "404", "429"} <= set(me)
    forbidden = me["403"]["content"]["application/problem+json"]["schema"]
    assert forbidden["$ref"].endswith("PolicyDeniedProblem")
    assert "withheld" in _resolve(document, forbidden)["required"]
    unauthorized = _resolve(document, me["401"])
    assert "WWW-Authenticate" in unauthorized["headers"]
    count = document["paths"]["/api/v1/audiences/count"]["post"]["responses"]
    budget = _resolve(document, count["429"])
    assert "Retry-After" in budget["headers"]
    budget_schema = _resolve(document, budget["content"]["application/problem+json"]["schema"])
    assert "retry_after" in budget_schema["properties"]
    assert "402" in document["paths"]["/api/v1/offers"]["post"]["responses"]
    for path in ("/oauth/token", "/oauth/revoke", "/oauth/introspect", "/oauth/register"):
        responses = document["paths"][path]["post"]["responses"]
        assert "400" in responses, path
        assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "OAuthError"
        )


def test_request_schemas_are_the_ones_the_code_loads(client) -> None:
    """Unknown fields are refused, values are lists, and an offer has no breakdown."""
    schemas = _document(client)["components"]["schemas"]
    count, offer = schemas["CountRequest"], schemas["OfferRequest"]
    assert count["additionalProperties"] is False
    assert offer["additionalProperties"] is False
    assert "breakdown" in count["properties"]
    assert "breakdown" not in offer["properties"]
    where = count["properties"]["where"]
    assert where["maxProperties"] == 5
    assert where["additionalProperties"] is False
    assert where["properties"]["region"]["type"] == "array"
    assert "NSW" in where["properties"]["region"]["items"]["enum"]
    assert set(count["required"]) == {"purpose", "where"}
    assert set(offer["required"]) == {"purpose", "where", "title", "body", "max_recipients"}


def test_scopes_in_document_match_the_server(client) -> None:
    document = _document(client)
    flows = document["components"]["securitySchemes"]["oauth2"]["flows"]
    metadata = client.get("/.well-known/oauth-authorization-server").get_json()
    assert set(flows["authorizationCode"]["scopes"]) == set(metadata["scopes_supported"])
    for required in (
        "profile.identity:read",
        "profile.demographics:read",
        "profile.interests:read",
        "purchases:read",
        "purchases:write",
        "audience:count",
        "offers:send",
    ):
        assert required in metadata["scopes_supported"]
