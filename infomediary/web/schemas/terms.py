"""MyTerms: the roster's agreements as the API lists them, and what a supplier publishes it
accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, fields, post_load, validate

from infomediary.web.schemas.fields import Text
from infomediary.web.schemas.loading import RequestSchema
from policies.terms import MAX_AGREEMENTS, MAX_ID


class TermsRuleSchema(Schema):
    """A policy rule an agreement implies: always ``never`` (agreements only restrict)."""

    category = fields.Str(
        required=True, metadata={"description": "A data category, or * for every category."}
    )
    purpose = fields.Str(required=True, metadata={"description": "A purpose, or * for every one."})
    mode = fields.Str(required=True, validate=validate.OneOf(["never"]))


class TermsAgreementSchema(Schema):
    """One agreement of the roster."""

    id = fields.Str(required=True, metadata={"description": "Stable id, e.g. sd-base."})
    title = fields.Str(required=True)
    summary = fields.Str(
        required=True, metadata={"description": "Plain words; see official and note."}
    )
    kind = fields.Str(required=True, metadata={"description": "The type of agreement."})
    official = fields.Bool(
        required=True, metadata={"description": "Whether the summary is the official text."}
    )
    note = fields.Str(required=True)
    url = fields.Str(allow_none=True, metadata={"description": "The official text, if known."})
    rules = fields.List(fields.Nested(TermsRuleSchema), required=True)


class TermsRosterSchema(Schema):
    """``GET /api/v1/terms``: the roster (with ``supplier``, what that supplier accepts)."""

    agreements = fields.List(fields.Nested(TermsAgreementSchema), required=True)
    supplier = fields.Str(
        metadata={"description": "The supplier asked about (?supplier=<client_id>)."}
    )
    accepted = fields.List(
        fields.Str(), metadata={"description": "The roster agreements that supplier accepts."}
    )


@dataclass(frozen=True, slots=True)
class AcceptedTermsInput:
    accepted: tuple[str, ...]


class AcceptedTermsRequestSchema(RequestSchema):
    """``POST /api/v1/supplier/terms``: every agreement of the roster you accept (the list
    replaces the one published before; empty: none)."""

    default_code = "invalid_request"

    accepted = fields.List(
        Text(validate=validate.Length(min=1, max=MAX_ID)),
        required=True,
        validate=validate.Length(max=MAX_AGREEMENTS),
        metadata={"description": "Ids from GET /api/v1/terms."},
    )

    @post_load
    def make_input(self, data: dict[str, Any], **_kwargs: Any) -> AcceptedTermsInput:
        return AcceptedTermsInput(tuple(data["accepted"]))


class AcceptedTermsSchema(Schema):
    """What the supplier now publishes it accepts."""

    supplier = fields.Str(required=True, metadata={"description": "Your client_id."})
    accepted = fields.List(fields.Str(), required=True)


class AgreementCopySchema(Schema):
    """``GET /api/v1/supplier/agreements/{record_id}``: your copy of an agreement you made."""

    id = fields.Str(required=True)
    agreement_id = fields.Str(required=True, metadata={"description": "The roster id."})
    jws = fields.Str(
        required=True,
        metadata={
            "description": "The record as the platform signed it: compact JWS, Ed25519, typ "
            "myterms-agreement+jwt; verify it against /.well-known/jwks.json."
        },
    )
    created_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(allow_none=True)
