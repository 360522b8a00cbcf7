"""The OpenAPI 3.1 document, generated from the marshmallow schemas in ``schemas.py``."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from infomediary.scopes import ALL_SCOPES
from infomediary.web import schemas

bp = Blueprint("openapi", __name__)


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _form(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="Infomediary supplier API",
        version="1",
        openapi_version="3.1.0",
        info={
            "description": "OAuth 2 (authorization code + PKCE S256) and the scoped, pseudonymous "
            "resource API. Every call is policy-checked and logged for the customer."
        },
        plugins=[MarshmallowPlugin()],
    )
    for name in (
        "Error",
        "OAuthError",
        "Withheld",
        "PolicyDenied",
        "MeResponse",
        "TokenRequest",
        "TokenResponse",
        "TokenActionRequest",
        "IntrospectionResponse",
        "ClientRegistrationRequest",
        "ClientRegistrationResponse",
        "Metadata",
        "Jwks",
        "CountRequest",
        "CountResponse",
        "AttributesResponse",
        "OfferRequest",
        "OfferCreated",
        "OfferView",
    ):
        spec.components.schema(name, schema=getattr(schemas, f"{name}Schema"))
    spec.components.security_scheme(
        "oauth2",
        {
            "type": "oauth2",
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": "/oauth/authorize",
                    "tokenUrl": "/oauth/token",
                    "refreshUrl": "/oauth/token",
                    "scopes": {k: v.description for k, v in ALL_SCOPES.items()},
                },
                "clientCredentials": {
                    "tokenUrl": "/oauth/token",
                    "scopes": {
                        k: v.description for k, v in ALL_SCOPES.items() if v.category is None
                    },
                },
            },
        },
    )
    spec.components.security_scheme("clientBasic", {"type": "http", "scheme": "basic"})
    spec.components.security_scheme("initialAccessToken", {"type": "http", "scheme": "bearer"})
    oauth_errors = {
        "400": {"description": "RFC 6749 §5.2 error", **_json("OAuthError")},
        "401": {"description": "Client authentication failed", **_json("OAuthError")},
    }
    spec.path(
        "/api/v1/me",
        operations={
            "get": {
                "summary": "The customer's data this token may see now",
                "description": (
                    "Token check, then the customer's policy, then only the allowed fields. "
                    "Tokens are accepted only in the Authorization header."
                ),
                "security": [{"oauth2": ["profile.identity:read"]}],
                "responses": {
                    "200": {
                        "description": "Allowed fields; withheld categories listed with reasons",
                        **_json("MeResponse"),
                    },
                    "400": {"description": "Token sent in the URL or body", **_json("Error")},
                    "401": {
                        "description": "Missing, invalid, expired or revoked token",
                        **_json("OAuthError"),
                    },
                    "403": {
                        "description": "The customer's policy denies every requested category",
                        **_json("PolicyDenied"),
                    },
                },
            }
        },
    )
    spec.path(
        "/api/v1/audiences/attributes",
        operations={
            "get": {
                "summary": "Queryable attributes and values",
                "security": [{"oauth2": ["audience:count"]}],
                "responses": {
                    "200": {"description": "Attributes", **_json("AttributesResponse")},
                    "401": {"description": "No valid token", **_json("OAuthError")},
                    "403": {"description": "Token lacks audience:count", **_json("OAuthError")},
                    "429": {"description": "Rate limited", **_json("Error")},
                },
            }
        },
    )
    spec.path(
        "/api/v1/audiences/count",
        operations={
            "post": {
                "summary": "A differentially private, thresholded audience count",
                "security": [{"oauth2": ["audience:count"]}],
                "requestBody": {"required": True, **_json("CountRequest")},
                "responses": {
                    "200": {"description": "Noisy count (or cells)", **_json("CountResponse")},
                    "400": {
                        "description": "Invalid query; nothing charged (unknown_attribute, "
                        "unknown_value, too_many_predicates, undeclared_purpose, ...)",
                        **_json("Error"),
                    },
                    "401": {"description": "No valid token", **_json("OAuthError")},
                    "429": {"description": "budget_exhausted or rate limited", **_json("Error")},
                },
            }
        },
    )
    spec.path(
        "/api/v1/offers",
        operations={
            "post": {
                "summary": "Send an offer to matching customers' inboxes, pseudonymously",
                "security": [{"oauth2": ["offers:send"]}],
                "requestBody": {"required": True, **_json("OfferRequest")},
                "responses": {
                    "201": {"description": "Offer recorded", **_json("OfferCreated")},
                    "400": {
                        "description": "Invalid offer or criteria; nothing charged",
                        **_json("Error"),
                    },
                    "401": {"description": "No valid token", **_json("OAuthError")},
                    "402": {"description": "insufficient_funds for the rewards", **_json("Error")},
                    "429": {"description": "budget_exhausted or rate limited", **_json("Error")},
                },
            }
        },
    )
    spec.path(
        "/api/v1/offers/{offer_id}",
        operations={
            "get": {
                "summary": "Your offer: noisy reach, noisy response totals, accepters' pseudonyms",
                "security": [{"oauth2": ["offers:send"]}],
                "parameters": [
                    {
                        "name": "offer_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "The offer", **_json("OfferView")},
                    "401": {"description": "No valid token", **_json("OAuthError")},
                    "404": {"description": "Not your offer", **_json("Error")},
                    "429": {"description": "budget_exhausted or rate limited", **_json("Error")},
                },
            }
        },
    )
    spec.path(
        "/api/v1/offers/{offer_id}/contacts/{sub}",
        operations={
            "get": {
                "summary": "An accepter's contact details, if they chose to share them",
                "security": [{"oauth2": ["offers:send"]}],
                "parameters": [
                    {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in ("offer_id", "sub")
                ],
                "responses": {
                    "200": {"description": "Identity fields", **_json("MeResponse")},
                    "401": {"description": "No valid token", **_json("OAuthError")},
                    "403": {
                        "description": "Not shared, or the policy denies it",
                        **_json("PolicyDenied"),
                    },
                    "404": {"description": "Not your offer, or no such accepter", **_json("Error")},
                },
            }
        },
    )
    spec.path(
        "/oauth/authorize",
        operations={
            "get": {
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
                    "302": {
                        "description": "Back to the client with code, state and iss, or an error"
                    },
                    "400": {"description": "Unknown client or redirect URI: never redirected"},
                },
            }
        },
    )
    spec.path(
        "/oauth/token",
        operations={
            "post": {
                "summary": "Token endpoint",
                "security": [{"clientBasic": []}],
                "requestBody": _form("TokenRequest"),
                "responses": {
                    "200": {
                        "description": "Tokens (Cache-Control: no-store)",
                        **_json("TokenResponse"),
                    },
                    **oauth_errors,
                },
            }
        },
    )
    spec.path(
        "/oauth/revoke",
        operations={
            "post": {
                "summary": "Token revocation (RFC 7009)",
                "security": [{"clientBasic": []}],
                "requestBody": _form("TokenActionRequest"),
                "responses": {"200": {"description": "Revoked (or unknown)"}, **oauth_errors},
            }
        },
    )
    spec.path(
        "/oauth/introspect",
        operations={
            "post": {
                "summary": "Token introspection (RFC 7662), for resource servers only",
                "security": [{"clientBasic": []}],
                "requestBody": _form("TokenActionRequest"),
                "responses": {
                    "200": {"description": "Token state", **_json("IntrospectionResponse")},
                    **oauth_errors,
                },
            }
        },
    )
    spec.path(
        "/oauth/register",
        operations={
            "post": {
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
    )
    spec.path(
        "/.well-known/oauth-authorization-server",
        operations={
            "get": {
                "summary": "Authorization server metadata (RFC 8414)",
                "responses": {"200": {"description": "Metadata", **_json("Metadata")}},
            }
        },
    )
    spec.path(
        "/.well-known/jwks.json",
        operations={
            "get": {
                "summary": "Public keys that consent receipts verify against",
                "responses": {"200": {"description": "JWK set", **_json("Jwks")}},
            }
        },
    )
    return spec.to_dict()


@bp.get("/api/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(build_spec())
