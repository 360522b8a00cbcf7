"""The grants: authorization code with PKCE S256 for every client (codes single use, consumed
atomically; a replay revokes the family), rotating refresh tokens (reuse revokes the family),
client credentials for broker scopes only; and the token store (hashes only).

An operator-gated scope (``infomediary.scopes.OPERATOR_GATED``) reaches a token only when the
client's row holds it, which only the operator's approval writes: the client credentials grant
hands out no other, and the token store refuses any token that would carry one the client
does not hold, whichever grant made it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc7636 import CodeChallenge
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.db import rowcount
from infomediary.models import (
    AuthorizationCode,
    ConsentGrant,
    OAuthToken,
    utcnow,
)
from infomediary.oauth.clients import Client, CustomerRef, TokenRef
from infomediary.oauth.context import AUTH_METHODS, refused, request_id, request_session
from infomediary.scopes import BROKER_SCOPES, CUSTOMER_SCOPES, OPERATOR_GATED, parse_scopes
from infomediary.services import tokens
from infomediary.services.suppliers import secret_hash
from infomediary.services.tokens import token_is_active as token_is_active
from infomediary.services.tokens import token_refusal as token_refusal
from infomediary.statuses import CodeChallengeMethod


def _refuse_revoked_consent(
    session: Session, row: AuthorizationCode | OAuthToken, reason: Reason
) -> None:
    refused(
        session,
        row.supplier_id,
        reason,
        customer_id=row.customer_id,
        purpose=row.purpose,
    )


def save_token(token: dict[str, Any], oauth_request: Any) -> None:
    """Store hashes only. Called by authlib after a successful token request."""
    session = request_session()
    client: Client = oauth_request.client
    held = set(parse_scopes(client.supplier.scopes))
    if any(s in OPERATOR_GATED and s not in held for s in parse_scopes(token.get("scope"))):
        raise InvalidScopeError("Broker scopes are granted to a client by the operator only.")
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
        session = request_session()
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
        session = request_session()
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
                Reason("tokens.code_reused", {"supplier": row.supplier_id}),
                request_id(),
            )
            return None
        if row.expires_at <= now:
            raise InvalidGrantError("The authorization code has expired.")
        grant = session.get(ConsentGrant, row.grant_id)
        if grant is None or grant.revoked_at is not None:
            _refuse_revoked_consent(session, row, Reason("oauth.code_consent_revoked"))
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
        session = request_session()
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
                    Reason("tokens.refresh_reused", {"supplier": row.supplier_id}),
                    request_id(),
                )
            return None
        if row.refresh_expires_at is None or row.refresh_expires_at <= now:
            return None
        grant = session.get(ConsentGrant, row.grant_id) if row.grant_id else None
        if grant is None or grant.revoked_at is not None:
            _refuse_revoked_consent(session, row, Reason("oauth.refresh_consent_revoked"))
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
            raise InvalidScopeError(
                "Client credentials carry only the broker scopes the operator granted this client."
            )
        # No scope asked for: all the client's broker scopes (RFC 6749 §3.3 default). The
        # request's form is immutable, so the resolved scope lives on ``request.scope``.
        self.request.scope = " ".join(requested or allowed)

    @hooked  # type: ignore[untyped-decorator]
    def create_token_response(self) -> tuple[int, Any, Any]:
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
