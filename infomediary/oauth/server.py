"""Authorization server wiring, following the OAuth 2.0 Security BCP (RFC 9700).

- Authorization code with PKCE for every client, S256 only (RFC 9700 §2.1.1, RFC 7636).
- Redirect URIs are matched exactly and ``redirect_uri`` is always required, so an
  unknown client or a mismatched URI is shown an error page and never redirected
  (RFC 9700 §4.1).
- Codes are single use, consumed atomically, valid 60 s; a reused code revokes the tokens
  issued from it (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
- Refresh tokens rotate on every use; reuse of an old one revokes the whole family
  (RFC 9700 §4.14.2).
- Client credentials only for broker scopes, and only those the operator granted the client
  (``suppliers approve-broker``; never through dynamic registration). No implicit or
  password grant.
- Codes, access and refresh tokens are stored as SHA-256 hashes; token responses carry
  ``Cache-Control: no-store`` (authlib's default headers).
- ``iss`` in authorization responses (RFC 9207).

This module builds the server per app (:func:`init_oauth`); the pieces live in ``context``,
``clients``, ``grants`` and ``endpoints``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2.rfc6749 import (
    OAuth2Error,
)
from flask import Flask
from sqlalchemy.orm import Session

from infomediary.oauth.clients import CustomerRef as CustomerRef
from infomediary.oauth.clients import TokenRef as TokenRef
from infomediary.oauth.clients import find_token as find_token
from infomediary.oauth.clients import query_client
from infomediary.oauth.context import AUTH_METHODS, OAuthServer, issuer
from infomediary.oauth.context import authorization_server as authorization_server
from infomediary.oauth.context import resource_protector as resource_protector
from infomediary.oauth.endpoints import Introspection, Issuer, Revocation, Validator
from infomediary.oauth.grants import (
    BrokerCredentialsGrant,
    CodeGrant,
    RefreshGrant,
    S256Only,
    save_token,
)
from infomediary.scopes import ALL_SCOPES
from infomediary.services import tokens
from infomediary.services.tokens import token_refusal as token_refusal
from infomediary.statuses import CodeChallengeMethod


def init_oauth(app: Flask, sessions: Callable[[], Session]) -> None:
    """Build this app's authorization server and resource protector (nothing is shared
    between apps, so tests can run several side by side)."""
    app.config.setdefault("OAUTH2_REFRESH_TOKEN_GENERATOR", True)
    app.config.setdefault(
        "OAUTH2_TOKEN_EXPIRES_IN",
        {
            "authorization_code": tokens.ACCESS_TOKEN_SECONDS,
            "refresh_token": tokens.ACCESS_TOKEN_SECONDS,
            "client_credentials": tokens.ACCESS_TOKEN_SECONDS,
        },
    )
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", list(ALL_SCOPES))
    server = OAuthServer(sessions)
    server.init_app(app, query_client=query_client, save_token=save_token)
    server.register_grant(CodeGrant, [S256Only(required=True)])
    server.register_grant(RefreshGrant)
    server.register_grant(BrokerCredentialsGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    server.register_extension(Issuer())
    protector = ResourceProtector()
    protector.register_token_validator(Validator())
    app.extensions["oauth_server"] = server
    app.extensions["oauth_protector"] = protector


def error_redirect(error: OAuth2Error) -> str | None:
    """Where to send the user-agent for an authorization error, with ``iss`` (RFC 9207)."""
    if not error.redirect_uri:
        return None
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    if error.state:
        params.append(("state", error.state))
    params.append(("iss", issuer()))
    return str(add_params_to_uri(error.redirect_uri, params))


def metadata() -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    base = issuer()
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "introspection_endpoint": f"{base}/oauth/introspect",
        "registration_endpoint": f"{base}/oauth/register",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "scopes_supported": list(ALL_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": [CodeChallengeMethod.S256],
        "authorization_response_iss_parameter_supported": True,
        "service_documentation": f"{base}/api/openapi.json",
    }
