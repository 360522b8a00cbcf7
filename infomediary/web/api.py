"""The supplier-facing resource API. Bearer tokens only from the Authorization header.

Every view documents its operation in its docstring (YAML after ``---``), which
:mod:`infomediary.web.openapi` reads through apispec's Flask plugin. Errors are raised as
domain exceptions; :mod:`infomediary.web.errors` answers them as problem details.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from infomediary.services import resource
from infomediary.services.resource import PurchaseQuery
from infomediary.web.bearer import (
    bearer_token,
    refuse_tokens_outside_the_header,
    supplier_context,
)
from infomediary.web.db import db
from infomediary.web.limits import api_rate, limiter, supplier_key
from infomediary.web.mailer import site_url
from infomediary.web.schemas import (
    MeResponseSchema,
    PurchaseListRequestSchema,
    PurchaseListSchema,
    load,
)
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


@bp.get("/purchases")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def purchases() -> ResponseReturnValue:
    """The customer's purchases this token may see now, newest first, a page at a time.
    ---
    get:
      operationId: listPurchases
      tags: [resource]
      summary: The customer's purchases this token may see now, newest first, a page at a time
      description: >-
        Token check (purchases:read, through the customer's consent), then the customer's
        policy for the purchases category and the grant's purpose, then a page of the lines
        the customer imported from retailers' files, newest first. since and until are UTC
        days, both included; retailer matches whatever its case. Follow next (the same
        filters, an opaque cursor) for the next page. Every call is on the customer's
        access log, allowed (with how many lines it released) or denied.
      security:
        - oauth2: [purchases:read]
      parameters:
        - in: query
          schema: PurchaseListRequestSchema
      responses:
        200:
          description: A page of purchase lines, and the next page's URL (null on the last)
          content:
            application/json:
              schema: PurchaseListSchema
        400:
          description: >-
            invalid_request: a date that is not YYYY-MM-DD, until before since, a limit
            outside 1 to 200, a cursor that no next link carried, an unknown parameter or an
            access token in the URL; errors names the parameter
          content:
            application/problem+json:
              schema: ProblemSchema
        401: Unauthorized
        403:
          description: >-
            insufficient_scope - the token lacks purchases:read; or policy_denied - the
            customer's policy denies purchases for this purpose now (withheld gives the reason)
          content:
            application/problem+json:
              schema: PurchasesRefusedProblemSchema
        404: NotBoundToCustomer
        429: RateLimited
    """
    token = bearer_token("purchases:read")
    query = load(PurchaseListRequestSchema(), request.args.to_dict(), PurchaseQuery)
    page = resource.read_purchases(
        db(), instance(), token.row, query, supplier_context(token.row.supplier_id)
    )
    following = None
    if page["next"] is not None:
        args = {k: v for k, v in request.args.items() if k != "cursor"} | {"cursor": page["next"]}
        following = f"{site_url()}{request.path}?{urlencode(args)}"
    return jsonify(PurchaseListSchema().dump({"purchases": page["purchases"], "next": following}))
