"""authlib's views of our rows: the client (a supplier), the resource owner, a presented token, and
the lookups that find them (a suspended client refused and logged; a token looked up once per
request).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import (
    ClientMixin,
    TokenMixin,
)
from flask import g, request
from sqlalchemy import bindparam, select

from infomediary.audit.reasons import Reason
from infomediary.models import (
    ConsentGrant,
    OAuthToken,
    Supplier,
    utcnow,
)
from infomediary.oauth.context import AUTH_METHODS, refused, request_session
from infomediary.scopes import BROKER_SCOPES, CUSTOMER_SCOPES, parse_scopes
from infomediary.services.suppliers import redirect_uris, secret_hash
from infomediary.services.tokens import token_is_active as token_is_active
from infomediary.services.tokens import token_refusal as token_refusal
from infomediary.statuses import SupplierStatus


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
    def __init__(
        self, row: OAuthToken, supplier: Supplier | None = None, grant: ConsentGrant | None = None
    ):
        self.row = row
        self.supplier = supplier
        #: Held so that the session's (weak) identity map keeps it for the checks by key.
        self.grant = grant

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
    session = request_session()
    supplier = session.execute(
        select(Supplier).where(Supplier.client_id == client_id)
    ).scalar_one_or_none()
    if supplier is None:
        return None
    if supplier.status != SupplierStatus.ACTIVE:
        refused(
            session,
            supplier.id,
            Reason("oauth.client_refused", {"path": request.path, "status": str(supplier.status)}),
        )
        return None
    return Client(supplier)


def find_token(token_string: str, *, refresh_too: bool = False) -> TokenRef | None:
    """The token row for a presented token, looked up once per request: the rate-limit key,
    the resource protector and the refusal log all ask for the same one."""
    found: dict[tuple[bytes, bool], TokenRef | None] = g.setdefault("found_tokens", {})
    key = (secret_hash(token_string), refresh_too)
    if key not in found:
        found[key] = _lookup_token(token_string, refresh_too=refresh_too)
    return found[key]


_TOKEN_ROWS = (
    select(OAuthToken, Supplier, ConsentGrant)
    .join(Supplier, Supplier.id == OAuthToken.supplier_id)
    .outerjoin(ConsentGrant, ConsentGrant.id == OAuthToken.grant_id)
)
#: Built once: an access token's rows by its hash, or a token's by either of its hashes.
_TOKEN = _TOKEN_ROWS.where(OAuthToken.access_token_hash == bindparam("digest"))
_TOKEN_OR_REFRESH = _TOKEN_ROWS.where(
    (OAuthToken.access_token_hash == bindparam("digest"))
    | (OAuthToken.refresh_token_hash == bindparam("digest"))
)


def _lookup_token(token_string: str, *, refresh_too: bool) -> TokenRef | None:
    """The token, its supplier and its consent grant in one query, read live on every request
    (a revoked token or grant, a suspended supplier take effect on the next call); the supplier
    and grant are then in the session for the checks that ask for them by key."""
    statement = _TOKEN_OR_REFRESH if refresh_too else _TOKEN
    found = (
        request_session().execute(statement, {"digest": secret_hash(token_string)}).one_or_none()
    )
    if found is None:
        return None
    return TokenRef(found[0], found[1], found[2])
