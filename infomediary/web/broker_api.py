"""The broker API: audience attributes and differentially private counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from marshmallow import Schema
from sqlalchemy.orm import Session

from infomediary import errors
from infomediary.audit.reasons import Reason
from infomediary.broker.attributes import ATTRIBUTES, special, value_category
from infomediary.instance import Instance
from infomediary.models import Supplier
from infomediary.services import Context, broker, intent_demand
from infomediary.services.broker import CountQuery
from infomediary.services.intent_demand import DemandQuery
from infomediary.services.refusals import refuse_supplier
from infomediary.web.bearer import bearer_token, json_input, refuse_tokens_outside_the_header
from infomediary.web.db import db
from infomediary.web.limits import api_rate, broker_rate, limiter, supplier_key
from infomediary.web.schemas import (
    CountRequestSchema,
    CountResponseSchema,
    DemandRequestSchema,
    DemandResponseSchema,
)
from infomediary.web.schemas.loading import RequestSchema
from infomediary.web.security import csrf_exempt, instance, request_id

Query = TypeVar("Query", CountQuery, DemandQuery)

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
    return _answered(CountRequestSchema(), CountQuery, broker.count_audience, CountResponseSchema())


@bp.post("/intent-demand")
@csrf_exempt
@limiter.limit(broker_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def demand() -> ResponseReturnValue:
    """How many distinct customers have open intents in a category: noisy, per region.
    ---
    post:
      operationId: countIntentDemand
      tags: [audiences]
      summary: Distinct customers with open intents in a category, per region
      description: >-
        A differentially private release like a count, for any sector: each customer counts
        once (in the region of their newest open intent in the category, or `unspecified`),
        whatever the number of their intents. Charged to your privacy budget and to every
        customer counted; the same question in the same epoch is answered again for free.
      security:
        - oauth2: [audience:count]
      requestBody:
        required: true
        content:
          application/json:
            schema: DemandRequestSchema
            examples:
              per_region:
                summary: One category, one cell per region
                value: {purpose: analytics, category: books}
              one_region:
                summary: One category in one region
                value: {purpose: analytics, category: books, region: NSW}
      responses:
        200:
          description: Noisy cells (or one count); null where below k
          content:
            application/json:
              schema: DemandResponseSchema
        400: InvalidQuery
        401: Unauthorized
        403: InsufficientScope
        429: BudgetExhausted
    """
    return _answered(
        DemandRequestSchema(), DemandQuery, intent_demand.demand_count, DemandResponseSchema()
    )


def _answered(
    request_schema: RequestSchema,
    into: type[Query],
    release: Callable[[Session, Instance, Supplier, Query, Context], dict[str, Any]],
    response_schema: Schema,
) -> ResponseReturnValue:
    """A release for the token's supplier: the body loaded, then answered; a refused query or
    an exhausted budget is logged as a refusal (and costs nothing) before its problem."""
    supplier = bearer_token("audience:count", action="count").supplier
    if supplier is None:  # pragma: no cover - token validation checked the supplier
        raise errors.NotFound("No such supplier.")
    try:
        query = json_input(request_schema, into)
        answer = release(
            db(), instance(), supplier, query, Context.supplier(supplier.id, request_id())
        )
    except errors.ValidationFailed as exc:
        _refused(supplier.id, Reason("broker.count_refused", {"error": exc.code}))
        raise
    except errors.BudgetExhausted:
        _refused(supplier.id, Reason("broker.count_refused_budget"))
        raise
    return jsonify(response_schema.dump(answer))
