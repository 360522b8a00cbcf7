"""The broker API: audience attributes and differentially private counts."""

from __future__ import annotations

from flask import Blueprint, g, jsonify
from flask.typing import ResponseReturnValue

from infomediary import errors
from infomediary.broker.attributes import ATTRIBUTES, special, value_category
from infomediary.models import Supplier
from infomediary.services import broker
from infomediary.services.refusals import refuse_supplier
from infomediary.web import db, limiter
from infomediary.web.api import bearer_token, json_body, refuse_tokens_outside_the_header
from infomediary.web.limits import api_rate, broker_rate, budget_exhausted, supplier_key
from infomediary.web.schemas import CountResponseSchema
from infomediary.web.security import csrf_exempt, instance

bp = Blueprint("broker_api", __name__, url_prefix="/api/v1/audiences")
bp.before_request(refuse_tokens_outside_the_header)


def _refused(supplier_id: str, reason: str) -> None:
    refuse_supplier(
        db(),
        supplier_id=supplier_id,
        action="count",
        reason=reason,
        request_id=g.get("request_id", "-"),
    )


@bp.get("/attributes")
@csrf_exempt
@limiter.limit(broker_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def attributes() -> ResponseReturnValue:
    """Queryable attributes and values; sensitive values count only customers who allow it."""
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
    token = bearer_token("audience:count", action="count")
    session = db()
    supplier = session.get(Supplier, token.row.supplier_id)
    if supplier is None:  # pragma: no cover - token validation checked the supplier
        return jsonify(error="invalid_token"), 401
    body = json_body()
    if body is None:
        return jsonify(error="invalid_json", message="Send a JSON object (application/json)."), 400
    try:
        answer = broker.count_audience(
            session, instance(), supplier, body, g.get("request_id", "-")
        )
    except errors.QueryRejected as exc:
        _refused(supplier.id, f"count refused: {exc.code}")
        return jsonify(error=exc.code, message=exc.message, fields=exc.errors), 400
    except errors.BudgetExhausted as exc:
        _refused(supplier.id, "count refused: privacy budget exhausted")
        return budget_exhausted(exc.code, exc.message, exc.retry_after)
    return jsonify(CountResponseSchema().dump(answer))
