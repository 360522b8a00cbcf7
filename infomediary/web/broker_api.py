"""The broker API: audience attributes and differentially private counts."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from infomediary import errors
from infomediary.audit.reasons import Reason
from infomediary.broker.attributes import ATTRIBUTES, special, value_category
from infomediary.services import Context, broker
from infomediary.services.broker import CountQuery
from infomediary.services.refusals import refuse_supplier
from infomediary.web.bearer import bearer_token, json_input, refuse_tokens_outside_the_header
from infomediary.web.db import db
from infomediary.web.limits import api_rate, broker_rate, limiter, supplier_key
from infomediary.web.schemas import CountRequestSchema, CountResponseSchema
from infomediary.web.security import csrf_exempt, instance, request_id

bp = Blueprint("broker_api", __name__, url_prefix="/api/v1/audiences")
bp.before_request(refuse_tokens_outside_the_header)


def _refused(supplier_id: str, reason: Reason) -> None:
    refuse_supplier(
        db(), Context.supplier(supplier_id, request_id()), action="count", reason=reason
    )


@bp.get("/attributes")
@csrf_exempt
@limiter.limit(broker_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def attributes() -> ResponseReturnValue:
    """Queryable attributes and values; sensitive values count only customers who allow it.
    ---
    get:
      operationId: listAudienceAttributes
      tags: [audiences]
      summary: Queryable attributes and values
      security:
        - oauth2: [audience:count]
      responses:
        200:
          description: Attributes, the most predicates a query may have, breakdowns
          content:
            application/json:
              schema: AttributesResponseSchema
        400: InvalidRequest
        401: Unauthorized
        403: InsufficientScope
        429: RateLimited
    """
    bearer_token("audience:count", action="count")
    return jsonify(
        attributes=[
            {
                "name": a.name,
                "description": a.description,
                "category": a.category,
                "values": list(a.values),
                "sensitive_values": [v for v in a.values if special(value_category(a.name, v))],
            }
            for a in ATTRIBUTES.values()
        ],
        max_predicates=broker.MAX_PREDICATES,
        breakdowns=list(broker.DISJOINT),
    )


@bp.post("/count")
@csrf_exempt
@limiter.limit(broker_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def count() -> ResponseReturnValue:
    """A differentially private, thresholded audience count.
    ---
    post:
      operationId: countAudience
      tags: [audiences]
      summary: A differentially private, thresholded audience count
      description: >-
        Validated first (nothing is charged for a refused query), then answered from the
        cache of this data epoch for free, or charged to your privacy budget and computed.
      security:
        - oauth2: [audience:count]
      requestBody:
        required: true
        content:
          application/json:
            schema: CountRequestSchema
            examples:
              count:
                summary: One attribute, two values
                value: {purpose: marketing, where: {region: [NSW, VIC]}}
              breakdown:
                summary: Two attributes, broken down by age band
                value:
                  purpose: marketing
                  where: {region: [NSW], interests: [books, travel]}
                  breakdown: age_band
      responses:
        200:
          description: Noisy count (or cells); null where below k
          content:
            application/json:
              schema: CountResponseSchema
        400: InvalidQuery
        401: Unauthorized
        403: InsufficientScope
        429: BudgetExhausted
    """
    supplier = bearer_token("audience:count", action="count").supplier
    session = db()
    if supplier is None:  # pragma: no cover - token validation checked the supplier
        raise errors.NotFound("No such supplier.")
    try:
        query = json_input(CountRequestSchema(), CountQuery)
        answer = broker.count_audience(
            session, instance(), supplier, query, Context.supplier(supplier.id, request_id())
        )
    except errors.ValidationFailed as exc:
        _refused(supplier.id, Reason("broker.count_refused", {"error": exc.code}))
        raise
    except errors.BudgetExhausted:
        _refused(supplier.id, Reason("broker.count_refused_budget"))
        raise
    return jsonify(CountResponseSchema().dump(answer))
