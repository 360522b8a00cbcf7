"""The OpenAPI operations of the authorization server's endpoints. Their views belong to the
authorization server (``oauth_views.py``, whose errors keep the RFCs' own bodies), so their
operations are described here, in :data:`OAUTH_OPERATIONS`, keyed by endpoint."""

from __future__ import annotations

from typing import Any


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _form(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


_OAUTH_ERRORS = {
    "400": {"description": "RFC 6749 §5.2 error", **_json("OAuthError")},
    "401": {"description": "Client authentication failed", **_json("OAuthError")},
}

#: Operations of the authorization server's endpoints, keyed by Flask endpoint.
OAUTH_OPERATIONS: dict[str, dict[str, Any]] = {
    "oauth.consent_screen": {
        "get": {
            "operationId": "authorize",
            "tags": ["oauth"],
            "summary": "Authorization endpoint (consent screen)",
            "parameters": [
                {"name": n, "in": "query", "required": r, "schema": {"type": "string"}}
                for n, r in (
                    ("response_type", True),
                    ("client_id", True),
                    ("redirect_uri", True),
                    ("scope", True),
                    ("state", False),
                    ("purpose", True),
                    ("code_challenge", True),
                    ("code_challenge_method", True),
                )
            ],
            "responses": {
                "200": {"description": "Consent screen (HTML)"},
                "302": {"description": "Back to the client with code, state and iss, or an error"},
                "400": {"description": "Unknown client or redirect URI: never redirected"},
            },
        }
    },
    "oauth.token": {
        "post": {
            "operationId": "token",
            "tags": ["oauth"],
            "summary": "Token endpoint",
            "security": [{"clientBasic": []}],
            "requestBody": _form("TokenRequest"),
            "responses": {
                "200": {
                    "description": "Tokens (Cache-Control: no-store)",
                    **_json("TokenResponse"),
                },
                **_OAUTH_ERRORS,
            },
        }
    },
    "oauth.revoke": {
        "post": {
            "operationId": "revokeToken",
            "tags": ["oauth"],
            "summary": "Token revocation (RFC 7009)",
            "security": [{"clientBasic": []}],
            "requestBody": _form("TokenActionRequest"),
            "responses": {"200": {"description": "Revoked (or unknown)"}, **_OAUTH_ERRORS},
        }
    },
    "oauth.introspect": {
        "post": {
            "operationId": "introspectToken",
            "tags": ["oauth"],
            "summary": "Token introspection (RFC 7662), for resource servers only",
            "security": [{"clientBasic": []}],
            "requestBody": _form("TokenActionRequest"),
            "responses": {
                "200": {"description": "Token state", **_json("IntrospectionResponse")},
                **_OAUTH_ERRORS,
            },
        }
    },
    "oauth.register": {
        "post": {
            "operationId": "registerClient",
            "tags": ["oauth"],
            "summary": "Dynamic client registration (RFC 7591)",
            "security": [{"initialAccessToken": []}],
            "requestBody": {"required": True, **_json("ClientRegistrationRequest")},
            "responses": {
                "201": {
                    "description": "Registered; the secret is shown once",
                    **_json("ClientRegistrationResponse"),
                },
                "400": {
                    "description": "invalid_client_metadata or invalid_redirect_uri",
                    **_json("OAuthError"),
                },
                "401": {
                    "description": "Missing, invalid or used initial access token",
                    **_json("OAuthError"),
                },
            },
        }
    },
    "oauth.authorization_server_metadata": {
        "get": {
            "operationId": "authorizationServerMetadata",
            "tags": ["oauth"],
            "summary": "Authorization server metadata (RFC 8414)",
            "responses": {"200": {"description": "Metadata", **_json("Metadata")}},
        }
    },
    "oauth.jwks": {
        "get": {
            "operationId": "jwks",
            "tags": ["oauth"],
            "summary": "Public keys that consent receipts verify against",
            "responses": {"200": {"description": "JWK set", **_json("Jwks")}},
        }
    },
}
