"""Authorization server wiring, following the OAuth 2.0 Security BCP (RFC 9700).

- Authorization code with PKCE for every client, S256 only (RFC 9700 §2.1.1, RFC 7636).
- Redirect URIs are matched exactly and ``redirect_uri`` is always required, so an
  unknown client or a mismatched URI is shown an error page and never redirected
  (RFC 9700 §4.1).
- Codes are single use, consumed atomically, valid 60 s; a reused code revokes the tokens
  issued from it (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
- Refresh tokens rotate on every use; reuse of an old one revokes the whole family
  (RFC 9700 §4.14.2).
- Client credentials only for broker scopes. No implicit or password grant.
- Codes, access and refresh tokens are stored as SHA-256 hashes; token responses carry
  ``Cache-Control: no-store`` (authlib's default headers).
- ``iss`` in authorization responses (RFC 9207).
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Flask, current_app, g, request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infomediary.config import Settings
from infomediary.db import rowcount
from infomediary.models import (
    AuthorizationCode,
    ConsentGrant,
    OAuthToken,
    Supplier,
    utcnow,
)
from infomediary.scopes import ALL_SCOPES, BROKER_SCOPES, CUSTOMER_SCOPES, parse_scopes
from infomediary.services import Context, tokens
from infomediary.services.pseudonyms import pairwise_pseudonym
from infomediary.services.suppliers import redirect_uris, secret_hash
from infomediary.services.tokens import token_is_active as token_is_active
from infomediary.services.tokens import token_refusal as token_refusal
from infomediary.statuses import CodeChallengeMethod, SupplierKind, SupplierStatus

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's authorization server, built per app (:func:`init_oauth`) and kept in
    ``app.extensions["oauth_server"]``, with the session provider its callbacks use (authlib's
    ``sqla_oauth2`` functions take their session the same way, through a closure)."""

    def __init__(self, sessions: Callable[[], Session]):
        super().__init__()
        self.sessions = sessions


def authorization_server() -> OAuthServer:
    server: OAuthServer = current_app.extensions["oauth_server"]
    return server


def resource_protector() -> ResourceProtector:
    protector: ResourceProtector = current_app.extensions["oauth_protector"]
    return protector


def _db() -> Session:
    """The session of the request being served, from the app's server."""
    return authorization_server().sessions()


def _refused(
    session: Session, supplier_id: str, reason: str, customer_id: str | None = None, **entry: Any
) -> None:
    """A refused step of the protocol, logged in the exchange's own transaction: what the
    exchange claimed (a code, a refresh token) stays claimed, and the refusal with it."""
    Context.supplier(supplier_id, _request_id()).log(
        session, "login", customer_id=customer_id, reason=reason, allowed=False, **entry
    )


def issuer() -> str:
    configured: Settings = current_app.config["SETTINGS"]
    return configured.issuer or request.host_url.rstrip("/")


@dataclass(frozen=True)
class CustomerRef:
    """The resource owner as authlib sees it."""

    id: str

    def get_user_id(self) -> str:
        return self.id


class Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, supplier: Supplier):
        self.supplier = supplier
        self._scopes = set(parse_scopes(supplier.scopes))

    def get_client_id(self) -> str:
        return self.supplier.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # redirect_uri is always required: no guessing

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        return " ".join(s for s in parse_scopes(scope) if s in self._scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in redirect_uris(self.supplier)  # exact string match

    def check_client_secret(self, client_secret: str) -> bool:
        ok = hmac.compare_digest(secret_hash(client_secret), self.supplier.client_secret_hash)
        if ok:  # the per-client rate limit counts only requests of the authenticated client
            g.authenticated_client_id = self.supplier.client_id
        return ok

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and bool(self._scopes & set(CUSTOMER_SCOPES))

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type in ("authorization_code", "refresh_token"):
            return bool(self._scopes & set(CUSTOMER_SCOPES))
        if grant_type == "client_credentials":
            return bool(self._scopes & set(BROKER_SCOPES))
        return False


class TokenRef(TokenMixin):  # type: ignore[misc]
    def __init__(self, row: OAuthToken, supplier: Supplier | None = None):
        self.row = row
        self.supplier = supplier

    def check_client(self, client: Client) -> bool:
        return bool(self.row.supplier_id == client.supplier.id)

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return max(0, int((self.row.expires_at - self.row.issued_at).total_seconds()))

    def is_expired(self) -> bool:
        return bool(self.row.expires_at <= utcnow())

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None

    def get_user(self) -> CustomerRef | None:
        return CustomerRef(self.row.customer_id) if self.row.customer_id else None

    def get_client(self) -> Client | None:
        return Client(self.supplier) if self.supplier else None


def query_client(client_id: str) -> Client | None:
    """The active client; a suspended one is refused, and its attempt logged."""
    session = _db()
    supplier = session.execute(
        select(Supplier).where(Supplier.client_id == client_id)
    ).scalar_one_or_none()
    if supplier is None:
        return None
    if supplier.status != SupplierStatus.ACTIVE:
        _refused(
            session, supplier.id, f"client refused at {request.path}: supplier {supplier.status}"
        )
        return None
    return Client(supplier)


def _refuse_revoked_consent(
    session: Session, row: AuthorizationCode | OAuthToken, what: str
) -> None:
    _refused(
        session,
        row.supplier_id,
        f"{what} refused: consent revoked",
        customer_id=row.customer_id,
        purpose=row.purpose,
    )


def _request_id() -> str:
    return str(g.get("request_id", "-"))


def save_token(token: dict[str, Any], oauth_request: Any) -> None:
    """Store hashes only. Called by authlib after a successful token request."""
    session = _db()
    client: Client = oauth_request.client
    now = utcnow()
    grant_type = oauth_request.payload.grant_type
    row = OAuthToken(
        id=str(uuid.uuid4()),
        supplier_id=client.supplier.id,
        access_token_hash=secret_hash(token["access_token"]),
        refresh_token_hash=secret_hash(token["refresh_token"])
        if token.get("refresh_token")
        else None,
        scope=token.get("scope") or "",
        issued_at=now,
        expires_at=now + timedelta(seconds=int(token["expires_in"])),
    )
    if grant_type == "authorization_code":
        code: AuthorizationCode = oauth_request.authorization_code.row
        row.customer_id, row.grant_id, row.purpose = code.customer_id, code.grant_id, code.purpose
        row.family_id = code.code_hash.hex()
    elif grant_type == "refresh_token":
        old: OAuthToken = oauth_request.refresh_token.row
        row.customer_id, row.grant_id, row.purpose = old.customer_id, old.grant_id, old.purpose
        row.family_id = old.family_id
    else:
        row.purpose = "broker"
        row.family_id = uuid.uuid4().hex
    if row.grant_id:
        row.expires_at, row.refresh_expires_at = tokens.lifetimes(
            session, row.grant_id, now, row.expires_at, refresh=row.refresh_token_hash is not None
        )
    session.add(row)


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE required of every client, confidential ones too, and only S256 (RFC 9700 §2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = [CodeChallengeMethod.S256]
    DEFAULT_CODE_CHALLENGE_METHOD = CodeChallengeMethod.S256

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != CodeChallengeMethod.S256:
            raise InvalidRequestError("PKCE 'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("PKCE is required: missing 'code_verifier'.")
        super().validate_code_verifier(grant, result)


@dataclass
class CodeRef:
    row: AuthorizationCode
    code_challenge: str
    code_challenge_method: str

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_authorization_request(self) -> str:
        redirect_uri: str = super().validate_authorization_request()
        scopes = parse_scopes(self.request.payload.scope)
        if not scopes or any(s not in CUSTOMER_SCOPES for s in scopes):
            raise InvalidScopeError(
                "Ask for customer-data scopes only (broker scopes use client credentials).",
                redirect_uri=redirect_uri,
            )
        if not self.request.scope:
            raise InvalidScopeError(
                "None of the requested scopes is registered for this client.",
                redirect_uri=redirect_uri,
            )
        purpose = self.request.payload.data.get("purpose")
        client: Client = self.request.client
        if not purpose or purpose not in parse_scopes(client.supplier.purposes):
            raise InvalidRequestError(
                "A 'purpose' declared by this client is required.", redirect_uri=redirect_uri
            )
        return redirect_uri

    def save_authorization_code(self, code: str, oauth_request: Any) -> None:
        data = oauth_request.payload.data
        session = _db()
        session.add(
            AuthorizationCode(
                code_hash=secret_hash(code),
                supplier_id=oauth_request.client.supplier.id,
                customer_id=oauth_request.user.id,
                grant_id=oauth_request.consent_grant_id,
                redirect_uri=oauth_request.payload.redirect_uri,
                scope=oauth_request.approved_scope,
                purpose=data["purpose"],
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                expires_at=utcnow() + tokens.CODE_LIFETIME,
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> CodeRef | None:
        """Consume the code atomically; a second redemption revokes what the first got."""
        session = _db()
        code_hash = secret_hash(code)
        row = session.get(AuthorizationCode, code_hash)
        if row is None or row.supplier_id != client.supplier.id:
            return None
        now = utcnow()
        claimed = rowcount(
            session.execute(
                update(AuthorizationCode)
                .where(
                    AuthorizationCode.code_hash == code_hash,
                    AuthorizationCode.consumed_at.is_(None),
                )
                .values(consumed_at=now)
            )
        )
        if not claimed:
            tokens.revoke_family(
                session,
                code_hash.hex(),
                f"authorization code reused by supplier {row.supplier_id}",
                _request_id(),
            )
            return None
        if row.expires_at <= now:
            raise InvalidGrantError("The authorization code has expired.")
        grant = session.get(ConsentGrant, row.grant_id)
        if grant is None or grant.revoked_at is not None:
            _refuse_revoked_consent(session, row, "authorization code")
            return None
        session.flush()
        return CodeRef(row, row.code_challenge, row.code_challenge_method)

    def delete_authorization_code(self, authorization_code: CodeRef) -> None:
        """Nothing to delete: the code was consumed atomically when it was looked up."""

    def authenticate_user(self, authorization_code: CodeRef) -> CustomerRef:
        return CustomerRef(authorization_code.row.customer_id)


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> TokenRef | None:
        session = _db()
        row = session.execute(
            select(OAuthToken).where(OAuthToken.refresh_token_hash == secret_hash(refresh_token))
        ).scalar_one_or_none()
        client: Client = self.request.client
        if row is None or row.supplier_id != client.supplier.id:
            return None
        now = utcnow()
        claimed = rowcount(
            session.execute(
                update(OAuthToken)
                .where(
                    OAuthToken.id == row.id,
                    OAuthToken.rotated_at.is_(None),
                    OAuthToken.revoked_at.is_(None),
                )
                .values(rotated_at=now, revoked_at=now)
            )
        )
        if not claimed:
            if row.rotated_at is not None:
                tokens.revoke_family(
                    session,
                    row.family_id,
                    f"refresh token reused by supplier {row.supplier_id}",
                    _request_id(),
                )
            return None
        if row.refresh_expires_at is None or row.refresh_expires_at <= now:
            return None
        grant = session.get(ConsentGrant, row.grant_id) if row.grant_id else None
        if grant is None or grant.revoked_at is not None:
            _refuse_revoked_consent(session, row, "refresh token")
            return None
        return TokenRef(row)

    def authenticate_user(self, refresh_token: TokenRef) -> CustomerRef | None:
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token: TokenRef) -> None:
        """Already done: the old pair was revoked when it was claimed."""


class BrokerCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self) -> None:
        super().validate_token_request()
        client: Client = self.request.client
        requested = parse_scopes(self.request.payload.scope)
        allowed = [s for s in parse_scopes(client.supplier.scopes) if s in BROKER_SCOPES]
        if any(s not in allowed for s in requested):
            raise InvalidScopeError("Client credentials carry only the client's broker scopes.")
        # No scope asked for: all the client's broker scopes (RFC 6749 §3.3 default). The
        # request's form is immutable, so the resolved scope lives on ``request.scope``.
        self.request.scope = " ".join(requested or allowed)

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, Any, Any]:
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRef | None:
        return find_token(token_string, refresh_too=True)

    def revoke_token(self, token: TokenRef, oauth_request: Any) -> None:
        row = token.row
        tokens.revoke_tokens(
            _db(),
            OAuthToken.id == row.id,
            reason=f"token revoked by supplier {row.supplier_id} (RFC 7009)",
            ctx=Context.supplier(row.supplier_id, _request_id()),
            customer_id=row.customer_id,
            purpose=row.purpose,
        )


class Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRef | None:
        return find_token(token_string, refresh_too=True)

    def check_permission(self, token: TokenRef, client: Client, oauth_request: Any) -> bool:
        return client.supplier.kind == SupplierKind.RESOURCE_SERVER

    def introspect_token(self, token: TokenRef) -> dict[str, Any]:
        row = token.row
        session = _db()
        supplier = session.get(Supplier, row.supplier_id)
        active = tokens.token_is_active(session, row)
        if not active or supplier is None:
            return {"active": False}

        body: dict[str, Any] = {
            "active": True,
            "client_id": supplier.client_id,
            "scope": row.scope,
            "token_type": "Bearer",
            "exp": int(row.expires_at.timestamp()),
            "iat": int(row.issued_at.timestamp()),
            "iss": issuer(),
            "purpose": row.purpose,
        }
        if row.customer_id:
            body["sub"] = pairwise_pseudonym(
                current_app.extensions["infomediary"], supplier.id, row.customer_id
            )
        return body


def find_token(token_string: str, *, refresh_too: bool = False) -> TokenRef | None:
    """The token row for a presented token, looked up once per request: the rate-limit key,
    the resource protector and the refusal log all ask for the same one."""
    found: dict[tuple[bytes, bool], TokenRef | None] = g.setdefault("found_tokens", {})
    key = (secret_hash(token_string), refresh_too)
    if key not in found:
        found[key] = _lookup_token(token_string, refresh_too=refresh_too)
    return found[key]


def _lookup_token(token_string: str, *, refresh_too: bool) -> TokenRef | None:
    session = _db()
    digest = secret_hash(token_string)
    condition = OAuthToken.access_token_hash == digest
    if refresh_too:
        condition = condition | (OAuthToken.refresh_token_hash == digest)
    row = session.execute(select(OAuthToken).where(condition)).scalar_one_or_none()
    if row is None:
        return None
    return TokenRef(row, session.get(Supplier, row.supplier_id))


class Validator(BearerTokenValidator):  # type: ignore[misc]
    def authenticate_token(self, token_string: str) -> TokenRef | None:
        return find_token(token_string)

    def validate_token(self, token: TokenRef | None, scopes: Any, oauth_request: Any) -> None:
        if token is None or not tokens.token_is_active(_db(), token.row):  # unknown token: 401
            raise InvalidTokenError(realm=self.realm, extra_attributes=self.extra_attributes)
        super().validate_token(token, scopes, oauth_request)


class Issuer(IssuerParameter):  # type: ignore[misc]
    def get_issuer(self) -> str:
        return issuer()


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
