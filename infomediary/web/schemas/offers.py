"""Offers: the request a supplier sends, what it is told back, and its view of an offer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, fields, post_load, validate

from infomediary.services.broker import CountQuery
from infomediary.services.offers import MAX_BODY, MAX_TITLE, OfferInput
from infomediary.web.schemas.broker import AudienceSchema
from infomediary.web.schemas.fields import MultilineText, Text


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
    id = fields.Str(required=True)
    status = fields.Str(required=True, metadata={"description": "delivered or too_small"})
    reach = fields.Int(allow_none=True, metadata={"description": "Noisy reach; null below k."})
    suppressed = fields.Bool(required=True)
    k = fields.Int()
    epsilon_spent = fields.Float()
    budget_remaining = fields.Float()
    expires_at = fields.Str()


class AcceptedSchema(Schema):
    sub = fields.Str(required=True, metadata={"description": "Pairwise pseudonym of an accepter."})
    accepted_at = fields.Str(allow_none=True)
    contact_shared = fields.Bool(
        metadata={
            "description": "The customer chose to share contact details: GET .../contacts/{sub}."
        }
    )


class OfferViewSchema(Schema):
    id = fields.Str(required=True)
    status = fields.Str()
    title = fields.Str()
    purpose = fields.Str()
    criteria = fields.Dict()
    reward_cents = fields.Int()
    reach = fields.Int(allow_none=True)
    suppressed = fields.Bool()
    expires_at = fields.Str()
    response_totals = fields.Dict(
        allow_none=True,
        metadata={"description": "Noisy accepted/declined totals, released once per data epoch."},
    )
    accepted = fields.List(fields.Nested(AcceptedSchema))
    budget_remaining = fields.Float()
