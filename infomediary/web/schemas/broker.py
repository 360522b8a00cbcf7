"""Audience counts and offers: their requests, loaded into frozen inputs, and responses."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from infomediary.broker.attributes import ATTRIBUTES
from infomediary.broker.canonical import DISJOINT, MAX_PREDICATES, InvalidQuery
from infomediary.services.broker import CountQuery
from infomediary.services.intent_demand import DemandQuery
from infomediary.web.schemas.fields import FieldError, Text
from infomediary.web.schemas.loading import RequestSchema
from policies.model import PURPOSES
from policies.taxonomy import INTEREST_TAGS, REGIONS


class Criteria(fields.Dict):
    """``where``: attribute -> list of values (OR within an attribute, AND across them).

    Refuses what is no query, with a code, before anything is charged; the ``CountQuery`` it
    becomes is then put in canonical form (:mod:`infomediary.broker.canonical`), so spellings
    equivalent for every customer are one query."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict) or not value:
            raise ValidationError(
                FieldError("invalid_query", "'where' must name at least one attribute.")
            )
        if len(value) > MAX_PREDICATES:
            raise ValidationError(
                FieldError("too_many_predicates", f"At most {MAX_PREDICATES} attributes.")
            )
        clean: dict[str, list[str]] = {}
        for attribute, values in value.items():
            known = ATTRIBUTES.get(attribute) if isinstance(attribute, str) else None
            if known is None:
                raise ValidationError(
                    FieldError(
                        "unknown_attribute",
                        f"Unknown attribute {attribute!r}; see /api/v1/audiences/attributes.",
                    )
                )
            if not isinstance(values, list) or not values or len(values) > len(known.values):
                raise ValidationError(
                    FieldError("invalid_values", f"{attribute}: give a list of values.")
                )
            bad = [v for v in values if not isinstance(v, str) or v not in known.values]
            if bad:
                raise ValidationError(
                    FieldError("unknown_value", f"{attribute}: unknown value(s) {bad[:3]!r}.")
                )
            clean[attribute] = sorted(set(values))
        return dict(sorted(clean.items()))

    def json_schema(self) -> dict[str, Any]:
        """The exact rules, for the OpenAPI document."""
        return {
            "type": "object",
            "minProperties": 1,
            "maxProperties": MAX_PREDICATES,
            "additionalProperties": False,
            "properties": {
                name: {
                    "type": "array",
                    "items": {"type": "string", "enum": list(a.values)},
                    "minItems": 1,
                    "maxItems": len(a.values),
                }
                for name, a in ATTRIBUTES.items()
            },
        }


class AudienceSchema(RequestSchema):
    purpose = Text(
        required=True,
        validate=validate.OneOf(tuple(PURPOSES)),
        metadata={"description": "One of the purposes your client declared."},
    )
    where = Criteria(
        required=True,
        metadata={
            "description": f"At most {MAX_PREDICATES} attributes; values of one attribute are "
            "OR-ed, attributes AND-ed. Values are always a list.",
            "example": {"region": ["NSW"], "interests": ["books", "travel"]},
        },
    )


class CountRequestSchema(AudienceSchema):
    default_code = "invalid_query"
    codes = {"purpose": "unknown_purpose", "breakdown": "invalid_breakdown"}

    breakdown = Text(
        allow_none=True,
        load_default=None,
        validate=validate.OneOf(
            DISJOINT,
            error="Break down by one of: {choices} (their values are disjoint).",
        ),
    )

    @post_load
    def make_query(self, data: dict[str, Any], **_kwargs: Any) -> CountQuery:
        try:
            return CountQuery(
                purpose=data["purpose"], where=data["where"], breakdown=data["breakdown"]
            )
        except InvalidQuery as error:  # the fields above refuse all of it first
            raise ValidationError(FieldError("invalid_query", str(error)), "where") from None


class CellSchema(Schema):
    value = fields.Str(required=True)
    count = fields.Int(allow_none=True, metadata={"description": "Noisy; null when suppressed."})
    suppressed = fields.Bool(required=True)


class CountResponseSchema(Schema):
    count = fields.Int(allow_none=True, metadata={"description": "Noisy count; null below k."})
    suppressed = fields.Bool(required=True)
    epsilon = fields.Float(metadata={"description": "Epsilon of the release."})
    epsilon_spent = fields.Float(required=True, metadata={"description": "0 for a cached answer."})
    budget_remaining = fields.Float(required=True)
    cached = fields.Bool(required=True)
    k = fields.Int(required=True)
    purpose = fields.Str()
    query_id = fields.Str()
    breakdown = fields.Str()
    cells = fields.List(fields.Nested(CellSchema))


class DemandRequestSchema(RequestSchema):
    """A count of the distinct customers with open intents in a category (per region)."""

    default_code = "invalid_query"
    codes = {"purpose": "unknown_purpose", "category": "unknown_value", "region": "unknown_value"}

    purpose = Text(
        required=True,
        validate=validate.OneOf(tuple(PURPOSES)),
        metadata={"description": "One of the purposes your client declared."},
    )
    category = Text(
        required=True,
        error_messages={
            "required": FieldError("invalid_query", "Name a category: an interest of the taxonomy.")
        },
        validate=validate.OneOf(tuple(INTEREST_TAGS)),
        metadata={"description": "An interest of the taxonomy, of any sector."},
    )
    region = Text(
        allow_none=True,
        load_default=None,
        validate=validate.OneOf(REGIONS),
        metadata={"description": "One region; without it, one cell per region."},
    )

    @post_load
    def make_query(self, data: dict[str, Any], **_kwargs: Any) -> DemandQuery:
        return DemandQuery(
            purpose=data["purpose"], category=data["category"], region=data["region"]
        )


class DemandResponseSchema(CountResponseSchema):
    category = fields.Str(required=True)
    region = fields.Str(metadata={"description": "The region asked for, if one was."})


class AttributeSchema(Schema):
    name = fields.Str(required=True)
    description = fields.Str()
    category = fields.Str()
    values = fields.List(fields.Str())
    sensitive_values = fields.List(fields.Str())


class AttributesResponseSchema(Schema):
    attributes = fields.List(fields.Nested(AttributeSchema), required=True)
    max_predicates = fields.Int()
    breakdowns = fields.List(fields.Str())
