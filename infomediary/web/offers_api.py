"""The offers API (scope ``offers:send``): send an offer, read its noisy outcome."""

from __future__ import annotations

from flask import Blueprint, g, jsonify
from flask.typing import ResponseReturnValue

from infomediary import errors
from infomediary.errors import InsufficientFunds, NotFound
from infomediary.models import Supplier
from infomediary.services import offers
from infomediary.services.refusals import refuse_supplier
from infomediary.web import db, limiter
from infomediary.web.api import bearer_token, json_body, refuse_tokens_outside_the_header
from infomediary.web.limits import api_rate, broker_rate, budget_exhausted, supplier_key
from infomediary.web.schemas import MeResponseSchema, OfferCreatedSchema, OfferViewSchema
from infomediary.web.security import csrf_exempt, instance

bp = Blueprint("offers_api", __name__, url_prefix="/api/v1/offers")
bp.before_request(refuse_tokens_outside_the_header)


def _supplier() -> Supplier:
    token = bearer_token("offers:send", action="offer")
    supplier = db().get(Supplier, token.row.supplier_id)
    if supplier is None:  # pragma: no cover - the validator checked it
        raise NotFound("No such supplier.")
    return supplier


def _refused(supplier_id: str, reason: str) -> None:
    refuse_supplier(
        db(),
        supplier_id=supplier_id,
        action="offer",
        reason=reason,
        request_id=g.get("request_id", "-"),
    )


def _error(code: str, message: str, status: int) -> ResponseReturnValue:
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


@bp.post("")
@csrf_exempt
@limiter.limit(broker_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def send() -> ResponseReturnValue:
    supplier = _supplier()
    body = json_body()
    if body is None:
        return _error("invalid_json", "Send a JSON object (application/json).", 400)
    try:
        result = offers.send_offer(db(), instance(), supplier, body, g.get("request_id", "-"))
    except errors.QueryRejected as exc:
        _refused(supplier.id, f"offer refused: {exc.code}")
        return jsonify(error=exc.code, message=exc.message, fields=exc.errors), 400
    except errors.BudgetExhausted as exc:
        _refused(supplier.id, "offer refused: privacy budget exhausted")
        return budget_exhausted(exc.code, exc.message, exc.retry_after)
    except InsufficientFunds as exc:
        _refused(supplier.id, "offer refused: insufficient funds for the escrow")
        return _error(exc.code, exc.message, 402)
    response = jsonify(OfferCreatedSchema().dump(result))
    response.status_code = 201
    return response


@bp.get("/<offer_id>")
@csrf_exempt
@limiter.limit(broker_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def view(offer_id: str) -> ResponseReturnValue:
    supplier = _supplier()
    try:
        return jsonify(
            OfferViewSchema().dump(
                offers.offer_view(db(), instance(), supplier, offer_id, g.get("request_id", "-"))
            )
        )
    except errors.BudgetExhausted as exc:
        _refused(supplier.id, "offer totals refused: privacy budget exhausted")
        return budget_exhausted(exc.code, exc.message, exc.retry_after)


@bp.get("/<offer_id>/contacts/<sub>")
@csrf_exempt
@limiter.limit(broker_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def contact(offer_id: str, sub: str) -> ResponseReturnValue:
    """An accepter's contact details, only if they chose to share them (and their policy allows)."""
    supplier = _supplier()
    try:
        body = offers.contact_of(
            db(), instance(), supplier, offer_id, sub, g.get("request_id", "-")
        )
    except errors.PolicyDenied as exc:
        return jsonify(error=exc.code, message=exc.message, withheld=exc.withheld), 403
    return jsonify(MeResponseSchema().dump(body))
