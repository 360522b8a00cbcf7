"""Purchases a retailer pushes (``POST /api/v1/purchases``): one line of the batch, the batch
loaded strictly (every bad line named by JSON Pointer, nothing written), and the answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from connectors.lines import LineStatus, PurchaseLine
from infomediary.errors import InvalidPurchases, TooManyLines
from infomediary.services.purchase_push import MAX_LINES
from infomediary.web.schemas.fields import Text
from infomediary.web.schemas.loading import RequestSchema

STATUSES = [str(status) for status in LineStatus]
#: Bad lines named in one refusal, at most.
MAX_NAMED = 100
NOT_AN_ARRAY = f"Send a JSON array of 1 to {MAX_LINES} purchase lines."
TOO_MANY = f"At most {MAX_LINES} lines per request: send the others in another request."


class OffsetDateTime(fields.AwareDateTime):
    """An ISO 8601 date and time with its UTC offset (``Z`` or ``+02:00``), read as UTC."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise ValidationError("An ISO 8601 date and time with its offset, as a string.")
        moment = super()._deserialize(value, attr, data, **kwargs)
        return moment.astimezone(UTC)


def _text(length: int, **kwargs: Any) -> Text:
    return Text(strip=True, validate=validate.Length(min=1, max=length), **kwargs)


class PushLineSchema(RequestSchema):
    """One purchase line, in the normalised shape every retailer's file is read into."""

    retailer = _text(200, required=True, metadata={"example": "Corner Books"})
    order_id = _text(200, required=True, metadata={"example": "CB-10442"})
    line_key = _text(
        200,
        required=True,
        metadata={
            "description": "The line's key within your orders: the same line pushed again "
            "has the same key, and is not added twice.",
            "example": "CB-10442/1",
        },
    )
    ordered_at = OffsetDateTime(
        required=True,
        metadata={
            "description": "When it was ordered: ISO 8601 with its offset (stored in UTC).",
            "example": "2024-03-05T18:22:41+01:00",
        },
    )
    product_name = _text(500, required=True, metadata={"example": "The Left Hand of Darkness"})
    product_id = _text(
        200,
        load_default=None,
        allow_none=True,
        metadata={"description": "ISBN, SKU, GTIN or your own id.", "example": "9780441478125"},
    )
    category = _text(
        200,
        load_default=None,
        allow_none=True,
        metadata={"description": "Your own category.", "example": "Books"},
    )
    quantity = fields.Int(strict=True, required=True, validate=validate.Range(min=0, max=1_000_000))
    unit_price_minor = fields.Int(
        strict=True,
        required=True,
        validate=validate.Range(min=-(10**12), max=10**12),
        metadata={
            "description": "Price per unit before tax, in the currency's minor unit (cents).",
            "example": 1299,
        },
    )
    currency = fields.Str(
        required=True,
        validate=validate.Regexp(r"^[A-Z]{3}\Z", error="An ISO 4217 code, such as EUR."),
        metadata={"description": "ISO 4217 code, upper case.", "example": "EUR"},
    )
    status = fields.Str(required=True, validate=validate.OneOf(STATUSES))


def _first(messages: Any) -> str:
    while isinstance(messages, dict | list) and messages:
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return str(messages) if isinstance(messages, str) else "Invalid value."


def _line(data: dict[str, Any], number: int) -> PurchaseLine:
    return PurchaseLine(
        retailer=data["retailer"],
        order_id=data["order_id"],
        line_key=data["line_key"],
        ordered_at=data["ordered_at"],
        product_name=data["product_name"],
        product_id=data["product_id"],
        category=data["category"],
        quantity=data["quantity"],
        unit_price_minor=data["unit_price_minor"],
        currency=data["currency"],
        status=LineStatus(data["status"]),
        source="",
        line_number=number,
    )


def load_push(body: Any) -> tuple[PurchaseLine, ...]:
    """The pushed batch's lines, or :class:`InvalidPurchases` naming every bad line's field by
    JSON Pointer (``/3/quantity``; ``/3`` for a line that is not an object), or
    :class:`TooManyLines`."""
    if not isinstance(body, list) or not body:
        raise InvalidPurchases({"body": NOT_AN_ARRAY}, NOT_AN_ARRAY)
    if len(body) > MAX_LINES:
        raise TooManyLines({"body": TOO_MANY}, TOO_MANY)
    schema = PushLineSchema()
    errors: dict[str, str] = {}
    lines: list[PurchaseLine] = []
    bad = 0
    for index, item in enumerate(body):
        try:
            data = schema.load(item) if isinstance(item, dict) else None
        except ValidationError as exc:
            bad += 1
            messages = exc.messages if isinstance(exc.messages, dict) else {}
            for name, field_messages in messages.items():
                if len(errors) < MAX_NAMED:
                    pointer = f"/{index}" if name == "_schema" else f"/{index}/{name}"
                    errors[pointer] = _first(field_messages)
            continue
        if data is None:
            bad += 1
            if len(errors) < MAX_NAMED:
                errors[f"/{index}"] = "A purchase line is a JSON object."
            continue
        lines.append(_line(data, index + 1))
    if errors:
        first = next(iter(errors.items()))
        raise InvalidPurchases(
            errors,
            f"{bad} line(s) refused, nothing written: {first[0]}: {first[1]}",
        )
    return tuple(lines)


class PushImportedSchema(Schema):
    """201: the batch was imported at once."""

    imported = fields.Int(required=True, metadata={"description": "Lines added."})
    duplicates = fields.Int(
        required=True, metadata={"description": "Lines the customer already held (same key)."}
    )
    rejected = fields.Int(required=True, metadata={"description": "Always 0: see 422."})
    import_ = fields.Str(
        required=True,
        attribute="import",
        data_key="import",
        metadata={"description": "The import's id, as the customer sees it."},
    )


class PushQueuedSchema(Schema):
    """202: the batch is kept sealed and imported by a job; poll ``status_url``."""

    job = fields.Str(required=True, metadata={"description": "The job's id."})
    status = fields.Str(required=True, validate=validate.OneOf(["queued"]))
    status_url = fields.Str(
        required=True,
        metadata={"format": "uri", "description": "GET it (same token) for the job's status."},
    )


class PushJobSchema(Schema):
    """A pushed batch's job: its status, and the counts once it ended."""

    job = fields.Str(required=True)
    status = fields.Str(
        required=True, validate=validate.OneOf(["queued", "running", "done", "failed"])
    )
    read = fields.Int(metadata={"description": "While running: lines read so far."})
    imported = fields.Int(metadata={"description": "Once ended: lines added."})
    duplicates = fields.Int(metadata={"description": "Once ended: lines already held."})
    rejected = fields.Int(metadata={"description": "Once ended: lines refused."})
    import_ = fields.Str(
        allow_none=True,
        attribute="import",
        data_key="import",
        metadata={"description": "Once done: the import's id."},
    )
    error = fields.Str(metadata={"description": "Once failed: a code, never a line."})
