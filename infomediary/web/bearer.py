"""What the API blueprints share: bearer tokens only from the Authorization header (refused, and
logged, with an RFC 6750 challenge), the operator's broker approval re-checked at every
request, JSON bodies read strictly, and request bodies loaded into frozen inputs.
"""

from __future__ import annotations

from typing import Any, TypeVar

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc6750 import InsufficientScopeError
from flask import request

from infomediary.audit.reasons import Reason
from infomediary.errors import BrokerNotApproved, InvalidRequest, TokenRefused
from infomediary.models import Supplier
from infomediary.oauth.server import TokenRef, find_token, resource_protector, token_refusal
from infomediary.scopes import BROKER_SCOPES, OPERATOR_GATED, parse_scopes
from infomediary.services import Context
from infomediary.services.refusals import refuse_supplier
from infomediary.services.suppliers import broker_approved
from infomediary.web.db import db
from infomediary.web.schemas import RequestSchema, load
from infomediary.web.security import request_id

REALM = "infomediary"


HEADER_ONLY = "Send the access token in the Authorization header only, never in the URL or body."
NOT_APPROVED = (
    "This client is not approved for the broker: its scopes (audience:count, offers:send) "
    "and its sector are granted by the operator only."
)


def refuse_tokens_outside_the_header() -> None:
    """RFC 9700 §4.3.2 / RFC 6750 §2.3: never accept access tokens in the URL or body."""
    if "access_token" in request.args or (
        request.mimetype == "application/x-www-form-urlencoded" and "access_token" in request.form
    ):
        raise InvalidRequest("invalid_request", {"access_token": HEADER_ONLY})


MAX_JSON_DEPTH = 32


Input = TypeVar("Input")


def json_body() -> Any:
    """The request's JSON, or None when it is not JSON we accept: malformed, nested deeper
    than any of our schemas (a hostile nesting would exhaust the parser's recursion), or
    holding text that is not valid Unicode (lone surrogates cannot be stored)."""
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        return None
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return None
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return None
        elif isinstance(value, dict):
            stack.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return data


def json_input(schema: RequestSchema, into: type[Input]) -> Input:
    """The request's JSON body loaded by ``schema`` into the frozen input ``into``: the one
    validation path of API bodies (:func:`infomediary.web.schemas.load`)."""
    body = json_body()
    if body is None:
        raise InvalidRequest("invalid_json", {"body": "Send a JSON object (application/json)."})
    return load(schema, body, into)


def _challenge(error: OAuth2Error, scopes: tuple[str, ...]) -> str:
    """RFC 6750 §3 ``WWW-Authenticate``: no error code when no token was presented."""
    params = [f'realm="{REALM}"']
    if error.error != "missing_authorization":
        description = str(error.get_error_description()).replace('"', "'")
        params += [f'error="{error.error}"', f'error_description="{description}"']
    if error.error == "insufficient_scope" and scopes:
        params.append(f'scope="{" ".join(scopes)}"')
    return "Bearer " + ", ".join(params)


def supplier_context(supplier_id: str) -> Context:
    """The supplier acting in this request, for its use cases and its log entries."""
    return Context.supplier(supplier_id, request_id())


def bearer_token(*scopes: str, action: str = "read") -> TokenRef:
    """The request's valid token, or :class:`TokenRefused` (RFC 6750: 401 ``invalid_token``,
    403 ``insufficient_scope``), answered as a problem with ``WWW-Authenticate``.

    A refused token that names a supplier (revoked, expired, suspended supplier, missing
    scope) leaves an entry with ``outcome=denied``, on the customer's timeline too when the
    token was theirs. An unknown token names nobody and is only counted by the rate limits.

    An operation needing a broker scope is refused with :class:`BrokerNotApproved` (403
    ``broker_not_approved``, logged) when the token's client is not approved for the broker
    now, whatever its token carries and before anything reads the request; a token carrying
    an operator-gated scope its client no longer holds is refused as lacking that scope.
    """
    try:
        token: TokenRef = resource_protector().acquire_token(list(scopes) or None)
    except OAuth2Error as error:
        if error.error == "insufficient_scope":
            _refuse_unapproved(_presented_token(), scopes, action)
        _log_refused_token(scopes, action)
        description = str(error.get_error_description() or error.description or error.error)
        raise TokenRefused(str(error.error), description, _challenge(error, scopes)) from None
    _refuse_unapproved(token, scopes, action)
    _refuse_gated_scopes_taken_back(token, scopes, action)
    return token


def _presented_token() -> TokenRef | None:
    header = request.headers.get("Authorization", "")
    return find_token(header[7:]) if header.startswith("Bearer ") else None


def _supplier_of(token: TokenRef) -> Supplier | None:
    return token.supplier or db().get(Supplier, token.row.supplier_id)


def _refuse_unapproved(token: TokenRef | None, scopes: tuple[str, ...], action: str) -> None:
    """Refuse, and log, a broker operation by a client the operator has not approved."""
    if token is None or not set(scopes) & set(BROKER_SCOPES):
        return
    supplier = _supplier_of(token)
    if supplier is not None and broker_approved(supplier):
        return
    row = token.row
    refuse_supplier(
        db(),
        supplier_context(row.supplier_id),
        action=action,
        reason=Reason("token.not_approved"),
        customer_id=row.customer_id,
        purpose=row.purpose,
    )
    raise BrokerNotApproved(NOT_APPROVED)


def _refuse_gated_scopes_taken_back(token: TokenRef, scopes: tuple[str, ...], action: str) -> None:
    """A token still carrying an operator-gated scope its client no longer holds is refused."""
    supplier = _supplier_of(token)
    held = set(parse_scopes(supplier.scopes)) if supplier is not None else set()
    taken_back = sorted((set(scopes) & OPERATOR_GATED) - held)
    if not taken_back:
        return
    row = token.row
    refuse_supplier(
        db(),
        supplier_context(row.supplier_id),
        action=action,
        reason=Reason("token.scope_taken_back", {"scopes": taken_back}),
        customer_id=row.customer_id,
        purpose=row.purpose,
    )
    error = InsufficientScopeError()
    description = str(error.get_error_description())
    raise TokenRefused(str(error.error), description, _challenge(error, scopes))


def _log_refused_token(scopes: tuple[str, ...], action: str) -> None:
    found = _presented_token()
    if found is None:
        return
    row = found.row
    reason = token_refusal(db(), row) or (
        Reason("token.scope_not_granted", {"scopes": list(scopes)})
        if scopes
        else Reason("token.refused")
    )
    refuse_supplier(
        db(),
        supplier_context(row.supplier_id),
        action=action,
        reason=reason,
        customer_id=row.customer_id,
        purpose=row.purpose,
    )
