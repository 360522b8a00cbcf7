"""RFC 7009 revocation (through the one logged revocation path), RFC 7662 introspection for
resource servers, the RFC 6750 bearer-token validator and the RFC 9207 issuer parameter.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import current_app

from infomediary.audit.reasons import Reason
from infomediary.models import (
    OAuthToken,
    Supplier,
)
from infomediary.oauth.clients import Client, TokenRef, find_token
from infomediary.oauth.context import AUTH_METHODS, issuer, request_id, request_session
from infomediary.services import Context, tokens
from infomediary.services.pseudonyms import pairwise_pseudonym
from infomediary.services.tokens import token_is_active as token_is_active
from infomediary.services.tokens import token_refusal as token_refusal
from infomediary.statuses import SupplierKind


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRef | None:
        return find_token(token_string, refresh_too=True)

    def revoke_token(self, token: TokenRef, oauth_request: Any) -> None:
        row = token.row
        tokens.revoke_tokens(
            request_session(),
            OAuthToken.id == row.id,
            reason=Reason("tokens.by_supplier", {"supplier": row.supplier_id}),
            ctx=Context.supplier(row.supplier_id, request_id()),
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
        session = request_session()
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


class Validator(BearerTokenValidator):  # type: ignore[misc]
    def authenticate_token(self, token_string: str) -> TokenRef | None:
        return find_token(token_string)

    def validate_token(self, token: TokenRef | None, scopes: Any, oauth_request: Any) -> None:
        if token is None or not tokens.token_is_active(
            request_session(), token.row
        ):  # unknown token: 401
            raise InvalidTokenError(realm=self.realm, extra_attributes=self.extra_attributes)
        super().validate_token(token, scopes, oauth_request)


class Issuer(IssuerParameter):  # type: ignore[misc]
    def get_issuer(self) -> str:
        return issuer()
