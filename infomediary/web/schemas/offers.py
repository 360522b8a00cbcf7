"""Offers: the request a supplier sends, what it is told back, its view of an offer, and its
list of offers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, fields, post_load, validate

from infomediary.services.broker import CountQuery
from infomediary.services.offers import MAX_BODY, MAX_PAGE, MAX_TITLE, PAGE, OfferInput, OfferPage
from infomediary.web.schemas.broker import AudienceSchema
from infomediary.web.schemas.fields import MultilineText, Text
from infomediary.web.schemas.loading import RequestSchema

STATUSES = ("queued", "delivered", "too_small", "closed")


class OfferRequestSchema(AudienceSchema):
    """An offer: a count's criteria (no breakdown) and the offer itself."""

    default_code = "invalid_offer"
    codes = {"purpose": "unknown_purpose", "where": "invalid_query"}

    title = Text(required=True, strip=True, validate=validate.Length(min=1, max=MAX_TITLE))
    body = MultilineText(required=True, strip=True, validate=validate.Length(min=1, max=MAX_BODY))
    reward_cents = fields.Int(
        strict=True,
        load_default=0,
        validate=validate.Range(min=0, max=100_000),
        metadata={"description": "Reward per acceptance, in whole cents."},
    )
    max_recipients = fields.Int(
        strict=True, required=True, validate=validate.Range(min=1, max=1_000_000)
    )
    expires_in_days = fields.Int(
        strict=True, load_default=14, validate=validate.Range(min=1, max=90)
    )

    @post_load
    def make_offer(self, data: dict[str, Any], **_kwargs: Any) -> OfferInput:
        return OfferInput(
            query=CountQuery(purpose=data["purpose"], where=data["where"], breakdown=None),
            title=data["title"],
            body=data["body"],
            reward_cents=data["reward_cents"],
            max_recipients=data["max_recipients"],
            expires_at=datetime.now(UTC) + timedelta(days=data["expires_in_days"]),
        )


class OfferCreatedSchema(Schema):
    """The answer to ``POST /api/v1/offers``: the offer is queued; its delivery job decides."""

    id = fields.Str(required=True)
    status = fields.Str(
        required=True,
        validate=validate.OneOf(["queued"]),
        metadata={"description": "Always queued: read the offer for the outcome."},
    )
    epsilon_spent = fields.Float(metadata={"description": "Charged now, whatever the outcome."})
    budget_remaining = fields.Float()
    created_at = fields.Str()
    expires_at = fields.Str()


class AcceptedSchema(Schema):
    sub = fields.Str(
        required=True,
        metadata={
            "description": "The accepter's pseudonym for this offer alone (off_...): another "
            "offer, or a direct grant (psn_...), shows the same customer under another one."
        },
    )
    accepted_at = fields.Str(allow_none=True)
    contact_shared = fields.Bool(
        metadata={
            "description": "The customer chose to share contact details: GET .../contacts/{sub}."
        }
    )


class OfferTotalsSchema(Schema):
    declined = fields.Int(
        allow_none=True, metadata={"description": "Noisy number of declines; null below k."}
    )
    reached = fields.Int(
        allow_none=True,
        metadata={"description": "Noisy number of inboxes the offer reached; null below k."},
    )


class OfferSummarySchema(Schema):
    id = fields.Str(required=True)
    status = fields.Str(
        required=True,
        validate=validate.OneOf(STATUSES),
        metadata={
            "description": "queued (its delivery job has not decided yet), delivered, "
            "too_small (not delivered) or closed (expired)"
        },
    )
    title = fields.Str()
    created_at = fields.Str()
    expires_at = fields.Str()
    reach = fields.Int(
        allow_none=True,
        metadata={"description": "Noisy reach of a delivered offer; null otherwise."},
    )


class OfferViewSchema(OfferSummarySchema):
    purpose = fields.Str()
    criteria = fields.Dict()
    reward_cents = fields.Int()
    suppressed = fields.Bool(metadata={"description": "True when the offer was too small."})
    response_totals = fields.Nested(
        OfferTotalsSchema,
        allow_none=True,
        metadata={
            "description": "Noisy totals of what the accepters list does not show, released "
            "once per broker epoch by a scheduled job (never by a view); null until the first."
        },
    )
    totals_as_of = fields.Str(
        allow_none=True,
        metadata={
            "description": "When the totals were released: a spent budget leaves them as of then."
        },
    )
    accepted = fields.List(fields.Nested(AcceptedSchema))
    budget_remaining = fields.Float()


class OfferListRequestSchema(RequestSchema):
    """A page of the supplier's offers (query parameters)."""

    default_code = "invalid_request"

    limit = fields.Int(
        load_default=PAGE,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"Offers per page, 1 to {MAX_PAGE}."},
    )
    cursor = Text(
        load_default=None,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "The next_cursor of the page before."},
    )

    @post_load
    def make_page(self, data: dict[str, Any], **_kwargs: Any) -> OfferPage:
        return OfferPage(limit=data["limit"], cursor=data["cursor"])


class OfferListSchema(Schema):
    offers = fields.List(fields.Nested(OfferSummarySchema), required=True)
    next_cursor = fields.Str(
        allow_none=True,
        metadata={"description": "Pass as cursor for the next page; null on the last page."},
    )
