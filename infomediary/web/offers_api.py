"""The offers API (scope ``offers:send``): send an offer, list them, read one's noisy outcome."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from infomediary import errors
from infomediary.audit.reasons import Reason
from infomediary.errors import InsufficientFunds, NotFound
from infomediary.models import Supplier
from infomediary.services import Context, offer_contacts, offers
from infomediary.services.offers import OfferInput, OfferPage
from infomediary.services.refusals import refuse_supplier
from infomediary.web.bearer import bearer_token, json_input, refuse_tokens_outside_the_header
from infomediary.web.db import db
from infomediary.web.limits import api_rate, broker_rate, limiter, supplier_key
from infomediary.web.schemas import (
    MeResponseSchema,
    OfferCreatedSchema,
    OfferListRequestSchema,
    OfferListSchema,
    OfferRequestSchema,
    OfferViewSchema,
    load,
)
from infomediary.web.security import csrf_exempt, instance, request_id

bp = Blueprint("offers_api", __name__, url_prefix="/api/v1/offers")
bp.before_request(refuse_tokens_outside_the_header)


def _supplier() -> Supplier:
    supplier = bearer_token("offers:send", action="offer").supplier
    if supplier is None:  # pragma: no cover - the validator checked it
        raise NotFound("No such supplier.")
    return supplier


def _refused(supplier_id: str, reason: Reason) -> None:
    refuse_supplier(
        db(), Context.supplier(supplier_id, request_id()), action="offer", reason=reason
    )


def _ctx(supplier: Supplier) -> Context:
    return Context.supplier(supplier.id, request_id())


@bp.post("")
@csrf_exempt
@limiter.limit(broker_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def send() -> ResponseReturnValue:
    """Send an offer to matching customers' inboxes, pseudonymously.
    ---
    post:
      operationId: sendOffer
      tags: [offers]
      summary: Send an offer to matching customers' inboxes, pseudonymously
      description: >-
        The criteria are a count's (no breakdown). Answered at once with 202 and status
        queued, in a time that does not depend on the audience: the request only validates,
        checks the funds and escrows the rewards for the cap, and charges epsilon (so 400, 402
        and 429 come back here, and a refused request costs nothing). A delivery job then
        selects the audience and decides: the offer becomes delivered only if its noisy reach
        passes k + ln(1/(2 delta))/epsilon and its true eligible audience is at least the
        minimum; otherwise too_small, its escrow refunded. Both refusals look the same. Read
        the offer (GET /api/v1/offers/{offer_id}) for the outcome.
      security:
        - oauth2: [offers:send]
      requestBody:
        required: true
        content:
          application/json:
            schema: OfferRequestSchema
            examples:
              offer:
                summary: A rewarded offer to two regions
                value:
                  purpose: marketing
                  where: {region: [NSW, VIC]}
                  title: 10% off books
                  body: Show this at the counter.
                  reward_cents: 150
                  max_recipients: 100
                  expires_in_days: 7
              minimal:
                summary: Only the required fields (no reward, 14 days)
                value:
                  purpose: marketing
                  where: {interests: [books]}
                  title: New arrivals
                  body: "Our autumn list is out.\\nSee you soon."
                  max_recipients: 10
      responses:
        202:
          description: Offer queued; its delivery job decides delivered or too_small
          content:
            application/json:
              schema: OfferCreatedSchema
        400: InvalidOffer
        401: Unauthorized
        402: InsufficientFunds
        403: InsufficientScope
        429: BudgetExhausted
    """
    supplier = _supplier()
    try:
        offer_in = json_input(OfferRequestSchema(), OfferInput)
        result = offers.send_offer(db(), instance(), supplier, offer_in, _ctx(supplier))
    except errors.ValidationFailed as exc:
        _refused(supplier.id, Reason("offers.refused", {"error": exc.code}))
        raise
    except errors.BudgetExhausted:
        _refused(supplier.id, Reason("offers.refused_budget"))
        raise
    except InsufficientFunds:
        _refused(supplier.id, Reason("offers.refused_funds"))
        raise
    response = jsonify(OfferCreatedSchema().dump(result))
    response.status_code = 202
    return response


@bp.get("")
@csrf_exempt
@limiter.limit(api_rate)
def index() -> ResponseReturnValue:
    """Your offers, newest first, a page at a time.
    ---
    get:
      operationId: listOffers
      tags: [offers]
      summary: Your offers, newest first, a page at a time
      description: >-
        Each offer with its status, title, creation and expiry times and noisy reach. Free:
        listing never charges the privacy budget. Follow next_cursor for the next page.
      security:
        - oauth2: [offers:send]
      parameters:
        - in: query
          schema: OfferListRequestSchema
      responses:
        200:
          description: A page of offers
          content:
            application/json:
              schema: OfferListSchema
        400: InvalidRequest
        401: Unauthorized
        403: InsufficientScope
        429: RateLimited
    """
    supplier = _supplier()
    page = load(OfferListRequestSchema(), request.args.to_dict(), OfferPage)
    return jsonify(OfferListSchema().dump(offers.list_offers(db(), supplier, page)))


@bp.get("/<offer_id>")
@csrf_exempt
@limiter.limit(api_rate)
def view(offer_id: str) -> ResponseReturnValue:
    """Your offer: status, noisy reach, noisy response totals, accepters' pseudonyms.
    ---
    get:
      operationId: readOffer
      tags: [offers]
      summary: "Your offer: status, noisy reach, noisy response totals, accepters' pseudonyms"
      description: >-
        Free, however often it is read, and readable with the privacy budget spent: a view
        never releases anything new. Acceptances appear one by one, each under the accepter's
        pseudonym for this offer alone. What the list cannot show (declines, inboxes
        reached) is released as noisy totals once per broker epoch by a scheduled job, with
        totals_as_of; when the budget is spent they stay as of their last release.
      security:
        - oauth2: [offers:send]
      parameters:
        - {name: offer_id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: The offer
          content:
            application/json:
              schema: OfferViewSchema
        400: InvalidRequest
        401: Unauthorized
        403: InsufficientScope
        404: NotFound
        429: RateLimited
    """
    supplier = _supplier()
    return jsonify(
        OfferViewSchema().dump(
            offers.offer_view(db(), instance(), supplier, offer_id, _ctx(supplier))
        )
    )


@bp.get("/<offer_id>/contacts/<sub>")
@csrf_exempt
@limiter.limit(broker_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def contact(offer_id: str, sub: str) -> ResponseReturnValue:
    """An accepter's contact details, only if they chose to share them (and their policy allows).
    ---
    get:
      operationId: readOfferContact
      tags: [offers]
      summary: An accepter's contact details, if they chose to share them
      security:
        - oauth2: [offers:send]
      parameters:
        - {name: offer_id, in: path, required: true, schema: {type: string}}
        - {name: sub, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: Identity fields
          content:
            application/json:
              schema: MeResponseSchema
        400: InvalidRequest
        401: Unauthorized
        403:
          description: >-
            insufficient_scope (with WWW-Authenticate), or policy_denied: not shared, or the
            policy denies it (with withheld)
          headers:
            WWW-Authenticate: {$ref: "#/components/headers/WWW-Authenticate"}
          content:
            application/problem+json:
              schema:
                anyOf:
                  - {$ref: "#/components/schemas/PolicyDeniedProblem"}
                  - {$ref: "#/components/schemas/Problem"}
        404: NotFound
        429: RateLimited
    """
    supplier = _supplier()
    body = offer_contacts.contact_of(db(), instance(), supplier, offer_id, sub, _ctx(supplier))
    return jsonify(MeResponseSchema().dump(body))
