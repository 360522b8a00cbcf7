"""A customer's purchases as a supplier reads them (``/api/v1/purchases``): the page asked
for (query parameters) and the page answered."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from infomediary.services.resource import MAX_PURCHASE_PAGE, PURCHASE_PAGE, PurchaseQuery
from infomediary.web.schemas.fields import Text
from infomediary.web.schemas.loading import RequestSchema
from infomediary.web.schemas.problems import ProblemSchema
from infomediary.web.schemas.resource import WithheldSchema

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
DATE_MESSAGE = "A date as YYYY-MM-DD."


class Day(fields.Date):
    """A calendar day, exactly ``YYYY-MM-DD`` (a UTC day): no week dates, no basic format."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if not isinstance(value, str) or not _DATE_RE.match(value):
            raise ValidationError(DATE_MESSAGE)
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValidationError(DATE_MESSAGE) from None


class PurchaseListRequestSchema(RequestSchema):
    """A page of the customer's purchases (query parameters)."""

    default_code = "invalid_request"

    since = Day(
        load_default=None,
        metadata={"description": "Only lines ordered on or after this UTC day (YYYY-MM-DD)."},
    )
    until = Day(
        load_default=None,
        metadata={"description": "Only lines ordered on or before this UTC day (YYYY-MM-DD)."},
    )
    retailer = Text(
        load_default=None,
        strip=True,
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "Only this retailer's lines (case does not matter).",
            "example": "Amazon.com",
        },
    )
    limit = fields.Int(
        load_default=PURCHASE_PAGE,
        validate=validate.Range(min=1, max=MAX_PURCHASE_PAGE),
        metadata={"description": f"Lines per page, 1 to {MAX_PURCHASE_PAGE}."},
    )
    cursor = Text(
        load_default=None,
        validate=validate.Length(min=1, max=1000),
        metadata={"description": "Opaque: set by the next link of the page before."},
    )

    @validates_schema
    def since_before_until(self, data: dict[str, Any], **_kwargs: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and since > until:
            raise ValidationError("until is before since.", "until")

    @post_load
    def make_query(self, data: dict[str, Any], **_kwargs: Any) -> PurchaseQuery:
        return PurchaseQuery(
            since=data["since"],
            until=data["until"],
            retailer=data["retailer"],
            limit=data["limit"],
            cursor=data["cursor"],
        )


class PurchaseLineSchema(Schema):
    """One purchase line, normalised whatever the retailer's file."""

    retailer = fields.Str(required=True, metadata={"example": "Amazon.com"})
    order_id = fields.Str(required=True, metadata={"example": "111-0000001-0000001"})
    line_key = fields.Str(
        required=True, metadata={"description": "The line's key within its retailer's orders."}
    )
    ordered_at = fields.AwareDateTime(
        required=True, metadata={"description": "When it was ordered, ISO 8601 in UTC."}
    )
    product_name = fields.Str(required=True)
    product_id = fields.Str(allow_none=True)
    category = fields.Str(allow_none=True)
    quantity = fields.Int(required=True)
    unit_price_minor = fields.Int(
        required=True,
        metadata={
            "description": "Unit price in the currency's minor unit (cents).",
            "example": 1999,
        },
    )
    currency = fields.Str(
        required=True, metadata={"description": "ISO 4217 code.", "example": "USD"}
    )
    status = fields.Str(
        required=True,
        validate=validate.OneOf(["ordered", "shipped", "cancelled", "returned", "refunded"]),
    )


class PurchaseListSchema(Schema):
    purchases = fields.List(fields.Nested(PurchaseLineSchema), required=True)
    next = fields.Str(
        required=True,
        allow_none=True,
        metadata={
            "format": "uri",
            "description": "The next page's URL, same filters; null on the last page.",
        },
    )


class PurchasesRefusedProblemSchema(ProblemSchema):
    """403 of ``/api/v1/purchases``: insufficient_scope, or policy_denied with ``withheld``."""

    withheld = fields.List(
        fields.Nested(WithheldSchema),
        metadata={"description": "With policy_denied: the purchases category and the reason."},
    )
