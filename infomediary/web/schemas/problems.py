"""RFC 9457 problem details of the API's errors."""

from __future__ import annotations

from marshmallow import Schema, fields


class ProblemSchema(Schema):
    """RFC 9457 problem details (``application/problem+json``), with ``code`` and ``errors``."""

    type = fields.Str(
        required=True,
        metadata={
            "format": "uri",
            "description": "The problem type: tag:infomediary.example,2026:problems/<code>.",
            "example": "tag:infomediary.example,2026:problems/unknown_attribute",
        },
    )
    title = fields.Str(required=True, metadata={"description": "The same for every code."})
    status = fields.Int(required=True, metadata={"description": "The HTTP status, repeated."})
    detail = fields.Str(required=True, metadata={"description": "This occurrence, in words."})
    code = fields.Str(
        required=True,
        metadata={"description": "Machine-readable code.", "example": "unknown_attribute"},
    )
    errors = fields.Dict(
        keys=fields.Str(),
        values=fields.Str(),
        metadata={"description": "Per field: what is wrong with it (validation errors)."},
    )


class BudgetExhaustedProblemSchema(ProblemSchema):
    retry_after = fields.Int(
        required=True,
        metadata={"description": "Seconds until the budget period ends (also Retry-After)."},
    )
