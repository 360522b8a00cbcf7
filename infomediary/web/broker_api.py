"""The broker API: audience attributes and differentially private counts."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from infomediary.broker.attributes import ATTRIBUTES, special, value_category
from infomediary.models import Supplier
from infomediary.oauth.server import find_token
from infomediary.services import broker
from infomediary.web import db, limiter
from infomediary.web.api import bearer_token, json_body, refuse_tokens_outside_the_header
from infomediary.web.schemas import CountResponseSchema
from infomediary.web.security import csrf_exempt, instance

bp = Blueprint("broker_api", __name__, url_prefix="/api/v1/audiences")
bp.before_request(refuse_tokens_outside_the_header)


def _supplier_key() -> str:
    """Rate-limit per supplier (not per address): the supplier behind the bearer token."""
    header = request.headers.get("Authorization", "")
    found = find_token(header[7:]) if header.startswith("Bearer ") else None
    return f"supplier:{found.row.supplier_id}" if found else f"anonymous:{request.remote_addr}"


def _rate() -> str:
    return str(current_app.config["BROKER_RATE_LIMIT"])


@bp.get("/attributes")
@csrf_exempt
@limiter.limit(_rate, key_func=_supplier_key)
def attributes() -> ResponseReturnValue:
    """Queryable attributes and values; sensitive values count only customers who allow it."""
    bearer_token("audience:count")
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
@limiter.limit(_rate, key_func=_supplier_key)
def count() -> ResponseReturnValue:
    token = bearer_token("audience:count")
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
    except broker.QueryRejected as exc:
        session.rollback()
        return jsonify(error=exc.code, message=exc.message, fields=exc.errors), 400
    except broker.BudgetExhausted as exc:
        session.rollback()
        response = jsonify(error=exc.code, message=exc.message)
        response.status_code = 429
        return response
    return jsonify(CountResponseSchema().dump(answer))
