"""The supplier-facing resource API. Bearer tokens only from the Authorization header."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from flask import Blueprint, abort, g, jsonify, request
from flask.typing import ResponseReturnValue

from infomediary import errors
from infomediary.oauth.server import TokenRef, find_token, require_oauth, token_refusal
from infomediary.services import resource
from infomediary.services.refusals import refuse_supplier
from infomediary.web import db, limiter
from infomediary.web.limits import api_rate, supplier_key
from infomediary.web.schemas import MeResponseSchema
from infomediary.web.security import csrf_exempt, instance

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def refuse_tokens_outside_the_header() -> None:
    """RFC 9700 §4.3.2 / RFC 6750 §2.3: never accept access tokens in the URL or body."""
    if "access_token" in request.args or (
        request.mimetype == "application/x-www-form-urlencoded" and "access_token" in request.form
    ):
        abort(400, description="token_in_query")


MAX_JSON_DEPTH = 32


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


def bearer_token(*scopes: str, action: str = "read") -> TokenRef:
    """The request's valid token, or an RFC 6750 error response (401 / 403 insufficient_scope).

    A refused token that names a supplier (revoked, expired, suspended supplier, missing
    scope) leaves an entry with ``outcome=denied``, on the customer's timeline too when the
    token was theirs. An unknown token names nobody and is only counted by the rate limits.
    """
    try:
        token: TokenRef = require_oauth.acquire_token(list(scopes) or None)
    except OAuth2Error as error:
        _log_refused_token(scopes, action)
        require_oauth.raise_error_response(error)
        raise  # raise_error_response always raises; this line is for the type checker
    return token


def _log_refused_token(scopes: tuple[str, ...], action: str) -> None:
    header = request.headers.get("Authorization", "")
    found = find_token(header[7:]) if header.startswith("Bearer ") else None
    if found is None:
        return
    row = found.row
    reason = token_refusal(db(), row) or (
        f"scope {' '.join(scopes)} not granted to this token" if scopes else "token refused"
    )
    refuse_supplier(
        db(),
        supplier_id=row.supplier_id,
        action=action,
        customer_id=row.customer_id,
        purpose=row.purpose,
        reason=reason,
        request_id=g.get("request_id", "-"),
    )


@bp.get("/me")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def me() -> ResponseReturnValue:
    token = bearer_token()
    try:
        body = resource.read_me(db(), instance(), token.row, g.get("request_id", "-"))
    except errors.PolicyDenied as exc:
        response = jsonify(error=exc.code, message=exc.message, withheld=exc.withheld)
        response.status_code = 403
        return response
    return jsonify(MeResponseSchema().dump(body))
