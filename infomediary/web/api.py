"""The supplier-facing resource API. Bearer tokens only from the Authorization header.

Every view documents its operation in its docstring (YAML after ``---``), which
:mod:`infomediary.web.openapi` reads through apispec's Flask plugin. Errors are raised as
domain exceptions; :mod:`infomediary.web.errors` answers them as problem details.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from infomediary.services import resource
from infomediary.web.bearer import (
    bearer_token,
    refuse_tokens_outside_the_header,
    supplier_context,
)
from infomediary.web.db import db
from infomediary.web.limits import api_rate, limiter, supplier_key
from infomediary.web.schemas import MeResponseSchema
from infomediary.web.security import csrf_exempt, instance

bp = Blueprint("api", __name__, url_prefix="/api/v1")
bp.before_request(refuse_tokens_outside_the_header)


@bp.get("/me")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def me() -> ResponseReturnValue:
    """The customer's data this token may see now.
    ---
    get:
      operationId: readMe
      tags: [resource]
      summary: The customer's data this token may see now
      description: >-
        Token check, then the customer's policy, then only the allowed fields. Tokens are
        accepted only in the Authorization header.
      security:
        - oauth2: [profile.identity:read]
      responses:
        200:
          description: Allowed fields; withheld categories listed with reasons
          content:
            application/json:
              schema: MeResponseSchema
        400: InvalidRequest
        401: Unauthorized
        403:
          description: policy_denied - the customer's policy denies every requested category
          content:
            application/problem+json:
              schema: PolicyDeniedProblemSchema
        404: NotBoundToCustomer
        429: RateLimited
    """
    token = bearer_token()
    body = resource.read_me(db(), instance(), token.row, supplier_context(token.row.supplier_id))
    return jsonify(MeResponseSchema().dump(body))
