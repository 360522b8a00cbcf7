"""The intents API: the customer's agent (``intents:write``, through the customer's consent)
posts intents, compares their bids and accepts one; suppliers the operator approved for a
sector (``intents:read``, ``intents:bid``, client credentials) list that sector's open intents
under their pseudonyms and bid. Every intent a supplier is shown is on its customer's log.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields, post_load, validate

from infomediary.errors import NotFound
from infomediary.models import OAuthToken, Supplier
from infomediary.services import Context, intents
from infomediary.services.intents import (
    MAX_BID_DESCRIPTION,
    MAX_DESCRIPTION,
    MAX_EVERY,
    MAX_PAGE,
    PAGE,
    AcceptInput,
    BidInput,
    IntentInput,
    IntentPage,
    Recurrence,
)
from infomediary.web.bearer import (
    bearer_token,
    json_body,
    json_input,
    refuse_tokens_outside_the_header,
    supplier_context,
)
from infomediary.web.db import db
from infomediary.web.limits import BID_RATE, INTENT_POST_RATE, api_rate, limiter, supplier_key
from infomediary.web.mailer import site_url
from infomediary.web.schemas import MultilineText, RequestSchema, Text, load
from infomediary.web.security import csrf_exempt, instance
from policies.taxonomy import INTEREST_TAGS, REGIONS

bp = Blueprint("intents_api", __name__, url_prefix="/api/v1")
bp.before_request(refuse_tokens_outside_the_header)

CURRENCY = validate.Regexp(r"^[A-Z]{3}\Z", error="An ISO 4217 code, such as AUD.")


# -- request schemas -------------------------------------------------------------------------


class RecurrenceRequestSchema(RequestSchema):
    """Every ``every`` weeks or months, from ``needed_by`` until ``until`` (the term)."""

    default_code = "invalid_intent"

    every = fields.Int(strict=True, required=True, validate=validate.Range(min=1, max=MAX_EVERY))
    unit = fields.Str(required=True, validate=validate.OneOf(["week", "month"]))
    until = fields.Date(required=True, metadata={"description": "The term's last day."})

    @post_load
    def make(self, data: dict[str, Any], **_kwargs: Any) -> Recurrence:
        return Recurrence(every=data["every"], unit=data["unit"], until=data["until"])


class IntentRequestSchema(RequestSchema):
    """An intent: what the customer wants, by when, and on which terms."""

    default_code = "invalid_intent"

    category = fields.Str(
        required=True,
        validate=validate.OneOf(sorted(INTEREST_TAGS)),
        metadata={"description": "An interest of the taxonomy; it decides the sector."},
    )
    description = MultilineText(
        required=True, strip=True, validate=validate.Length(min=1, max=MAX_DESCRIPTION)
    )
    needed_by = fields.Date(
        required=True, metadata={"description": "YYYY-MM-DD, today or later (UTC)."}
    )
    max_price_minor = fields.Int(
        strict=True,
        load_default=None,
        allow_none=True,
        metadata={"description": "Budget in the currency's minor unit, above zero."},
    )
    currency = fields.Str(
        load_default=None,
        allow_none=True,
        validate=CURRENCY,
        metadata={"description": "ISO 4217 code of the budget; with max_price_minor only."},
    )
    region = fields.Str(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(REGIONS),
        metadata={"description": "Your state or territory, never finer."},
    )
    recurrence = fields.Nested(
        RecurrenceRequestSchema,
        load_default=None,
        allow_none=True,
        metadata={"description": "Absent or null: one-off."},
    )
    terms = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "The agreement proffered (GET /api/v1/terms); default yours."},
    )

    deadline = fields.AwareDateTime(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "When bidding closes (RFC 3339 with an offset), in the future and "
            "no later than the end of needed_by. Bids are always sealed: no supplier sees "
            "another's."
        },
    )
    auto_accept = fields.Bool(
        load_default=False,
        truthy={True},
        falsy={False},
        metadata={
            "description": "At the deadline, accept the lowest bid within the budget from a "
            "verified supplier that accepts the proffered terms (needs a deadline and a budget)."
        },
    )

    @post_load
    def make(self, data: dict[str, Any], **_kwargs: Any) -> IntentInput:
        return IntentInput(**data)


class BidRequestSchema(RequestSchema):
    """A bid: price, what is offered, until when, and the agreement accepted."""

    default_code = "invalid_bid"

    price_minor = fields.Int(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=10**12),
        metadata={"description": "In the currency's minor unit (cents)."},
    )
    currency = fields.Str(required=True, validate=CURRENCY)
    description = MultilineText(
        required=True, strip=True, validate=validate.Length(min=1, max=MAX_BID_DESCRIPTION)
    )
    valid_until = fields.Date(required=True, metadata={"description": "YYYY-MM-DD."})
    terms = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "The intent's proffered agreement (default) or one alternative "
            "from the roster; sending the bid accepts it."
        },
    )

    @post_load
    def make(self, data: dict[str, Any], **_kwargs: Any) -> BidInput:
        return BidInput(**data)


class AcceptRequestSchema(RequestSchema):
    default_code = "invalid_request"

    share_contact = fields.Bool(
        load_default=False,
        truthy={True},
        falsy={False},
        metadata={
            "description": "Approve, in the same click, a grant for fulfilment: your identity "
            "and address to the winner, for delivery, until the intent ends."
        },
    )

    @post_load
    def make(self, data: dict[str, Any], **_kwargs: Any) -> AcceptInput:
        return AcceptInput(**data)


class IntentListRequestSchema(RequestSchema):
    default_code = "invalid_request"

    category = fields.Str(load_default=None, validate=validate.OneOf(sorted(INTEREST_TAGS)))
    region = fields.Str(load_default=None, validate=validate.OneOf(REGIONS))
    limit = fields.Int(load_default=PAGE, validate=validate.Range(min=1, max=MAX_PAGE))
    cursor = Text(load_default=None, validate=validate.Length(min=1, max=200))

    @post_load
    def make(self, data: dict[str, Any], **_kwargs: Any) -> IntentPage:
        return IntentPage(**data)


# -- response schemas ------------------------------------------------------------------------


class RecurrenceSchema(Schema):
    every = fields.Int()
    unit = fields.Str()
    until = fields.Str()


class IntentViewSchema(Schema):
    """An intent as a supplier sees it: under its pseudonym, only what the customer attached."""

    id = fields.Str(required=True)
    pseudonym = fields.Str(
        required=True, metadata={"description": "int_..., this intent's alone: unlinkable."}
    )
    category = fields.Str()
    description = fields.Str()
    needed_by = fields.Str()
    max_price_minor = fields.Int(allow_none=True)
    currency = fields.Str(allow_none=True)
    region = fields.Str(allow_none=True)
    recurrence = fields.Nested(RecurrenceSchema, allow_none=True)
    terms = fields.Str(metadata={"description": "The agreement the customer proffers."})
    deadline = fields.Str(
        allow_none=True, metadata={"description": "When bidding closes, or null: open until then."}
    )
    status = fields.Str(validate=validate.OneOf(["open", "accepted", "cancelled"]))
    created_at = fields.Str()


class OwnBidSchema(Schema):
    id = fields.Str()
    status = fields.Str(
        validate=validate.OneOf(["open", "won", "not_chosen"]),
        metadata={"description": "won, or not_chosen when the customer chose another."},
    )
    won = fields.Bool()
    price_minor = fields.Int()
    currency = fields.Str()
    description = fields.Str()
    valid_until = fields.Str()
    terms = fields.Str()
    agreement_record_id = fields.Str(allow_none=True)
    created_at = fields.Str()


class FulfilmentSchema(Schema):
    grant_expires_at = fields.Str(allow_none=True)
    token_endpoint = fields.Str(
        metadata={"description": "POST here (intents:bid) for an access token under the grant."}
    )


class FulfilmentTokenSchema(Schema):
    grant_expires_at = fields.Str(allow_none=True)
    access_token = fields.Str(
        metadata={"description": "For GET /api/v1/me; a new one each time, the one before revoked."}
    )
    token_type = fields.Str()
    expires_in = fields.Int()
    scope = fields.Str()
    resource = fields.Str()


class SupplierIntentSchema(IntentViewSchema):
    bid = fields.Nested(OwnBidSchema, allow_none=True)
    fulfilment = fields.Nested(
        FulfilmentSchema,
        allow_none=True,
        metadata={"description": "To the winner once the customer shared contact details."},
    )


class IntentPageSchema(Schema):
    intents = fields.List(fields.Nested(SupplierIntentSchema))
    next = fields.Str(allow_none=True, metadata={"description": "The next page's URL, or null."})


class CustomerIntentSchema(IntentViewSchema):
    auto_accept = fields.Bool()
    closed_at = fields.Str(allow_none=True)
    accepted_bid_id = fields.Str(allow_none=True)
    fulfilment_grant_id = fields.Str(allow_none=True)
    deliveries = fields.List(fields.Str())
    bids = fields.Int()


class CustomerIntentListSchema(Schema):
    intents = fields.List(fields.Nested(CustomerIntentSchema))


class BidderSchema(Schema):
    id = fields.Str()
    name = fields.Str()
    verified = fields.Bool()
    blocked_by = fields.Int(metadata={"description": "Customers who block this supplier."})
    customers = fields.Int(metadata={"description": "Customers it reached (offers, grants)."})
    block_share = fields.Float(allow_none=True)


class ComparedBidSchema(Schema):
    id = fields.Str()
    status = fields.Str()
    price_minor = fields.Int()
    currency = fields.Str()
    within_budget = fields.Bool(allow_none=True)
    description = fields.Str()
    valid_until = fields.Str()
    terms = fields.Str()
    terms_title = fields.Str()
    accepts_proffered_terms = fields.Bool()
    created_at = fields.Str()
    supplier = fields.Nested(BidderSchema)


class BidComparisonSchema(Schema):
    intent = fields.Nested(CustomerIntentSchema)
    bids = fields.List(fields.Nested(ComparedBidSchema))


class AcceptedBidSchema(Schema):
    id = fields.Str()
    status = fields.Str()


class AcceptanceSchema(Schema):
    intent = fields.Nested(CustomerIntentSchema)
    bid = fields.Nested(AcceptedBidSchema)


class CancellationSchema(Schema):
    intent = fields.Nested(CustomerIntentSchema)


CUSTOMER_INTENT = CustomerIntentSchema()
CUSTOMER_LIST = CustomerIntentListSchema()
COMPARISON = BidComparisonSchema()
ACCEPTANCE = AcceptanceSchema()
CANCELLATION = CancellationSchema()
SUPPLIER_INTENT = SupplierIntentSchema()
FULFILMENT_TOKEN = FulfilmentTokenSchema()
INTENT_PAGE = IntentPageSchema()


# -- the customer's agent --------------------------------------------------------------------


def _agent(action: str = "read") -> tuple[OAuthToken, Context]:
    row = bearer_token("intents:write", action=action).row
    return row, supplier_context(row.supplier_id)


def _supplier(scope: str, action: str = "read") -> tuple[Supplier, Context]:
    supplier = bearer_token(scope, action=action).supplier
    if supplier is None:  # pragma: no cover - the validator checked it
        raise NotFound("No such supplier.")
    return supplier, supplier_context(supplier.id)


def _posted(response: Response) -> bool:
    """Only intents actually posted count against the posting limit (refused ones write
    nothing, and the API's own limit still counts them)."""
    return response.status_code == 201


@bp.post("/me/intents")
@csrf_exempt
@limiter.limit(INTENT_POST_RATE, key_func=supplier_key, deduct_when=_posted)
@limiter.limit(api_rate)
def post_intent() -> ResponseReturnValue:
    """Post an intent for the customer: suppliers of its sector see it under a pseudonym.
    ---
    post:
      operationId: postIntent
      tags: [intents]
      summary: Post an intent for the customer
      description: >-
        Token check (intents:write, through the customer's consent). The category (an
        interest of the taxonomy) decides the sector whose approved suppliers see the intent;
        they see only what is sent here, under a pseudonym of this intent alone, and never
        each other's bids. The details are sealed under the customer's key. With a deadline,
        bidding closes then; with auto_accept, the lowest bid within the budget from a verified
        supplier accepting the proffered terms is accepted at the deadline (logged either
        way). terms defaults to the customer's default
        agreement. A refused intent writes nothing. At most 10 posted a minute, 100 a day,
        per client.
      security:
        - oauth2: [intents:write]
      requestBody:
        required: true
        content:
          application/json:
            schema: IntentRequestSchema
            examples:
              one_off:
                summary: A one-off intent with a budget
                value:
                  category: books
                  description: A hardback atlas of the world, recent edition.
                  needed_by: "2031-05-01"
                  max_price_minor: 9000
                  currency: AUD
                  region: NSW
              recurring:
                summary: Flowers every month for a year
                value:
                  category: gardening
                  description: A bunch of seasonal flowers delivered each month.
                  needed_by: "2031-02-14"
                  recurrence: {every: 1, unit: month, until: "2032-01-31"}
                  terms: sd-base-dp
              automatic:
                summary: Sealed bids until a deadline, the best one accepted then
                value:
                  category: parenting
                  description: Nappies, size 4, home delivery every four weeks for three years.
                  needed_by: "2031-03-01"
                  max_price_minor: 6000
                  currency: AUD
                  recurrence: {every: 4, unit: week, until: "2034-02-28"}
                  deadline: "2031-02-20T12:00:00+11:00"
                  auto_accept: true
      responses:
        201:
          description: The intent, open
          content:
            application/json:
              schema: CustomerIntentSchema
        400:
          description: >-
            invalid_intent (a past date, a budget of zero, a currency without a budget, free
            text over 2,000 characters, a category or region not of the taxonomy, a bad
            recurrence) or invalid_json; nothing written
          content:
            application/problem+json:
              schema: ProblemSchema
        401: Unauthorized
        403: InsufficientScope
        404: NotBoundToCustomer
        422: UnknownTerms
        429: RateLimited
    """
    token, ctx = _agent("create")
    data = json_input(IntentRequestSchema(), IntentInput)
    view = intents.post_intent(db(), instance(), token, data, ctx)
    response = jsonify(CUSTOMER_INTENT.dump(view))
    response.status_code = 201
    return response


@bp.get("/me/intents")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def own_intents() -> ResponseReturnValue:
    """The customer's intents, newest first, each with its number of bids.
    ---
    get:
      operationId: listOwnIntents
      tags: [intents]
      summary: The customer's intents, newest first
      security:
        - oauth2: [intents:write]
      responses:
        200:
          description: Every intent of the customer
          content:
            application/json:
              schema: CustomerIntentListSchema
        400: InvalidRequest
        401: Unauthorized
        403: InsufficientScope
        404: NotBoundToCustomer
        429: RateLimited
    """
    token, ctx = _agent()
    return jsonify(CUSTOMER_LIST.dump(intents.list_own(db(), instance(), token, ctx)))


@bp.get("/me/intents/<intent_id>/bids")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def bids(intent_id: str) -> ResponseReturnValue:
    """An intent's bids side by side, cheapest first, with each supplier's record.
    ---
    get:
      operationId: compareBids
      tags: [intents]
      summary: An intent's bids side by side
      description: >-
        Each bid with its price, whether it is within the budget, the agreement it accepts
        (and whether that is the one proffered), and its supplier: name, verified mark, how
        many customers block it out of those it reached.
      security:
        - oauth2: [intents:write]
      parameters:
        - {name: intent_id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: The intent and its bids
          content:
            application/json:
              schema: BidComparisonSchema
        400: InvalidRequest
        401: Unauthorized
        403: InsufficientScope
        404: NotFound
        429: RateLimited
    """
    token, ctx = _agent()
    return jsonify(COMPARISON.dump(intents.compare_bids(db(), instance(), token, intent_id, ctx)))


def _optional_body(schema: RequestSchema, into: type[AcceptInput]) -> AcceptInput:
    """An empty body is the schema's defaults; any other must be a JSON object it loads."""
    if not request.get_data():
        return into()
    if json_body() is None:
        return json_input(schema, into)  # raises invalid_json
    return load(schema, json_body(), into)


@bp.post("/me/intents/<intent_id>/bids/<bid_id>/accept")
@csrf_exempt
@limiter.limit(INTENT_POST_RATE, key_func=supplier_key)
@limiter.limit(api_rate)
def accept(intent_id: str, bid_id: str) -> ResponseReturnValue:
    """Accept one bid: it wins, the others are not chosen, its agreement is signed.
    ---
    post:
      operationId: acceptBid
      tags: [intents]
      summary: Accept one bid of an intent
      description: >-
        The winner learns it won under the intent's pseudonym, every other bidder that it
        was not chosen. The agreement the bid accepted is recorded and signed by the
        platform as the customer's agent. With share_contact (now, or in a second call on
        the won bid) the customer approves a consent grant for fulfilment: identity and
        address to the winner, for delivery, until the intent ends (a one-off one 30 days
        after its date, a recurring one at the end of its term).
      security:
        - oauth2: [intents:write]
      parameters:
        - {name: intent_id, in: path, required: true, schema: {type: string}}
        - {name: bid_id, in: path, required: true, schema: {type: string}}
      requestBody:
        required: false
        content:
          application/json:
            schema: AcceptRequestSchema
            examples:
              share:
                summary: Accept and share the address for delivery
                value: {share_contact: true}
      responses:
        200:
          description: Accepted
          content:
            application/json:
              schema: AcceptanceSchema
        400: InvalidRequest
        401: Unauthorized
        403: InsufficientScope
        404: NotFound
        409:
          description: >-
            intent_closed - the intent is accepted or cancelled already, or the bid expired
          content:
            application/problem+json:
              schema: ProblemSchema
        429: RateLimited
    """
    token, ctx = _agent("update")
    data = _optional_body(AcceptRequestSchema(), AcceptInput)
    answer = intents.accept_bid(
        db(), instance(), token, intent_id, bid_id, data, ctx, base_url=site_url()
    )
    return jsonify(ACCEPTANCE.dump(answer))


@bp.post("/me/intents/<intent_id>/cancel")
@csrf_exempt
@limiter.limit(INTENT_POST_RATE, key_func=supplier_key)
@limiter.limit(api_rate)
def cancel(intent_id: str) -> ResponseReturnValue:
    """Withdraw an intent: its open bids are not chosen; a standing agreement ends.
    ---
    post:
      operationId: cancelIntent
      tags: [intents]
      summary: Withdraw an intent
      description: >-
        Open bids are told not chosen. An accepted intent ends too, and its grant for
        fulfilment is revoked at once (with the tokens issued under it).
      security:
        - oauth2: [intents:write]
      parameters:
        - {name: intent_id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: Cancelled
          content:
            application/json:
              schema: CancellationSchema
        400: InvalidRequest
        401: Unauthorized
        403: InsufficientScope
        404: NotFound
        409:
          description: intent_closed - cancelled already
          content:
            application/problem+json:
              schema: ProblemSchema
        429: RateLimited
    """
    token, ctx = _agent("update")
    answer = intents.cancel_intent(db(), instance(), token, intent_id, ctx, base_url=site_url())
    return jsonify(CANCELLATION.dump(answer))


# -- suppliers -------------------------------------------------------------------------------


@bp.get("/intents")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def open_intents() -> ResponseReturnValue:
    """Open intents of your sector, newest first, a page at a time.
    ---
    get:
      operationId: listIntents
      tags: [intents]
      summary: Open intents of your sector, newest first
      description: >-
        Client credentials with intents:read, which the operator grants with a sector. Each
        intent under its own pseudonym (two intents of one customer are unlinkable), with
        only what the customer attached, and your bid if you bid. Every intent shown is an
        entry on its customer's access log. Follow next for the next page.
      security:
        - oauth2: [intents:read]
      parameters:
        - in: query
          schema: IntentListRequestSchema
      responses:
        200:
          description: A page of intents
          content:
            application/json:
              schema: IntentPageSchema
        400:
          description: >-
            invalid_request - a category not of your sector or the taxonomy, a region that is
            not a state, a limit outside 1 to 50, a cursor no next link carried
          content:
            application/problem+json:
              schema: ProblemSchema
        401: Unauthorized
        403: InsufficientScope
        429: RateLimited
    """
    supplier, ctx = _supplier("intents:read")
    page = load(IntentListRequestSchema(), request.args.to_dict(), IntentPage)
    found = intents.list_open(db(), instance(), supplier, page, ctx)
    following = None
    if found["next"] is not None:
        args = {k: v for k, v in request.args.items() if k != "cursor"} | {"cursor": found["next"]}
        following = f"{site_url()}{request.path}?{urlencode(args)}"
    return jsonify(INTENT_PAGE.dump({"intents": found["intents"], "next": following}))


@bp.get("/intents/<intent_id>")
@csrf_exempt
@limiter.limit(api_rate, key_func=supplier_key)
@limiter.limit(api_rate)
def intent(intent_id: str) -> ResponseReturnValue:
    """One intent of your sector: its status and, if you bid, whether your bid won.
    ---
    get:
      operationId: readIntent
      tags: [intents]
      summary: One intent of your sector
      description: >-
        Logged on the customer's access log. To a bidder, its bid with status won or
        not_chosen. To the winner, once the customer shared contact details for fulfilment,
        when that grant ends and the token_endpoint to POST to for an access token under it.
      security:
        - oauth2: [intents:read]
      parameters:
        - {name: intent_id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: The intent
          content:
            application/json:
              schema: SupplierIntentSchema
        400: InvalidRequest
        401: Unauthorized
        403:
          description: >-
            intent_outside_sector - not of your sector, or not open to you; or
            insufficient_scope
          content:
            application/problem+json:
              schema: ProblemSchema
        404: NotFound
        429: RateLimited
    """
    supplier, ctx = _supplier("intents:read")
    return jsonify(
        SUPPLIER_INTENT.dump(intents.read_intent(db(), instance(), supplier, intent_id, ctx))
    )


@bp.post("/intents/<intent_id>/fulfilment-token")
@csrf_exempt
@limiter.limit(BID_RATE, key_func=supplier_key)
@limiter.limit(api_rate)
def fulfilment_token(intent_id: str) -> ResponseReturnValue:
    """To the winner: an access token for GET /api/v1/me under the grant for fulfilment.
    ---
    post:
      operationId: issueFulfilmentToken
      tags: [intents]
      summary: An access token under the customer's grant for fulfilment
      description: >-
        Client credentials with intents:bid, by the supplier whose bid won, once the customer
        shared contact details for fulfilment. The token reads GET /api/v1/me (name, e-mail,
        phone and postal address, as the grant allows), ends with the grant at the latest,
        and replaces the one issued before, which is revoked. Each issue, and each refusal,
        is on the customer's access log.
      security:
        - oauth2: [intents:bid]
      parameters:
        - {name: intent_id, in: path, required: true, schema: {type: string}}
      responses:
        200:
          description: The access token
          content:
            application/json:
              schema: FulfilmentTokenSchema
        400: InvalidRequest
        401: Unauthorized
        403:
          description: intent_outside_sector, or insufficient_scope
          content:
            application/problem+json:
              schema: ProblemSchema
        404: NotFound
        409:
          description: >-
            fulfilment_not_shared - your bid did not win, or the customer has not shared
            (or has withdrawn) contact details; logged, nothing else written
          content:
            application/problem+json:
              schema: ProblemSchema
        429: RateLimited
    """
    supplier, ctx = _supplier("intents:bid", action="create")
    issued = intents.issue_fulfilment_token(db(), instance(), supplier, intent_id, ctx)
    response = jsonify(FULFILMENT_TOKEN.dump(issued))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/intents/<intent_id>/bids")
@csrf_exempt
@limiter.limit(BID_RATE, key_func=supplier_key)
@limiter.limit(api_rate)
def bid(intent_id: str) -> ResponseReturnValue:
    """Bid on an open intent of your sector; the request accepts the agreement it names.
    ---
    post:
      operationId: placeBid
      tags: [intents]
      summary: Bid on an open intent of your sector
      description: >-
        Client credentials with intents:bid. One bid per intent. terms is the intent's
        proffered agreement (the default) or exactly one alternative from the roster; the
        request, made with your own credentials, is your acceptance of it, and the platform
        records and signs it if the customer accepts the bid. A price must be in the
        currency of the customer's budget, when they gave one. Every refusal is logged and
        writes nothing. At most 30 a minute, 1,000 a day.
      security:
        - oauth2: [intents:bid]
      parameters:
        - {name: intent_id, in: path, required: true, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema: BidRequestSchema
            examples:
              proffered:
                summary: Accepting the proffered terms
                value:
                  price_minor: 8500
                  currency: AUD
                  description: The 2030 edition, delivered in two days.
                  valid_until: "2031-04-20"
              alternative:
                summary: Answering with one alternative from the roster
                value:
                  price_minor: 7900
                  currency: AUD
                  description: The 2029 edition, delivered in a week.
                  valid_until: "2031-04-20"
                  terms: no-ai-training
      responses:
        201:
          description: The bid, open
          content:
            application/json:
              schema: SupplierIntentSchema
        400:
          description: >-
            invalid_bid (a price of zero, free text over 2,000 characters, a past
            valid_until), currency_mismatch (not the budget's currency) or invalid_json;
            nothing written
          content:
            application/problem+json:
              schema: ProblemSchema
        401: Unauthorized
        403:
          description: intent_outside_sector, or insufficient_scope
          content:
            application/problem+json:
              schema: ProblemSchema
        404: NotFound
        409:
          description: >-
            intent_closed (accepted, cancelled or past its date) or bid_exists (you bid
            already); nothing written
          content:
            application/problem+json:
              schema: ProblemSchema
        422: UnknownTerms
        429: RateLimited
    """
    supplier, ctx = _supplier("intents:bid", action="create")
    data = json_input(BidRequestSchema(), BidInput)
    view = intents.place_bid(db(), instance(), supplier, intent_id, data, ctx)
    response = jsonify(SUPPLIER_INTENT.dump(view))
    response.status_code = 201
    return response
