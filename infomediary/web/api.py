"""The supplier-facing resource API. Bearer tokens only from the Authorization header."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import OAuth2Error
from flask import Blueprint, abort, g, jsonify, request
from flask.typing import ResponseReturnValue

from infomediary.oauth.server import TokenRef, require_oauth
from infomediary.services import resource
from infomediary.web import db
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


def bearer_token(*scopes: str) -> TokenRef:
    """The request's valid token, or an RFC 6750 error response (401 / 403 insufficient_scope)."""
    try:
        token: TokenRef = require_oauth.acquire_token(list(scopes) or None)
    except OAuth2Error as error:
        require_oauth.raise_error_response(error)
        raise  # raise_error_response always raises; this line is for the type checker
    return token


@bp.get("/me")
@csrf_exempt
def me() -> ResponseReturnValue:
    token = bearer_token()
    try:
        body = resource.read_me(db(), instance(), token.row, g.get("request_id", "-"))
    except resource.PolicyDenied as exc:
        response = jsonify(error=exc.code, message=exc.message, withheld=exc.withheld)
        response.status_code = 403
        return response
    return jsonify(MeResponseSchema().dump(body))
