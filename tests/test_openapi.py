"""The OpenAPI document is valid and covers every API route, errors included."""

from __future__ import annotations

from openapi_spec_validator import validate

API_PREFIXES = ("/api/v1/", "/oauth/", "/.well-known/")


def test_document_is_valid_openapi(client) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    assert document["openapi"].startswith("3.1")


def test_every_api_route_is_documented(app, client) -> None:
    document = client.get("/api/openapi.json").get_json()
    documented = set(document["paths"])
    routes = {
        rule.rule.replace("<", "{").replace(">", "}")
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API_PREFIXES)
    }
    assert routes - documented == set()


def test_error_responses_are_documented(client) -> None:
    document = client.get("/api/openapi.json").get_json()
    me = document["paths"]["/api/v1/me"]["get"]["responses"]
    assert {"200", "400", "401", "403"} <= set(me)
    assert me["403"]["content"]["application/json"]["schema"]["$ref"].endswith("PolicyDenied")
    for path in ("/oauth/token", "/oauth/revoke", "/oauth/introspect", "/oauth/register"):
        assert "400" in document["paths"][path]["post"]["responses"], path


def test_scopes_in_document_match_the_server(client) -> None:
    document = client.get("/api/openapi.json").get_json()
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
