"""The customer's data as a supplier reads it (``/api/v1/me``), and what the policy withheld."""

from __future__ import annotations

from marshmallow import Schema, fields

from infomediary.web.schemas.problems import ProblemSchema


class WithheldSchema(Schema):
    category = fields.Str(required=True)
    reason = fields.Str(required=True, metadata={"description": "The policy's reason, in words."})


class PolicyDeniedProblemSchema(ProblemSchema):
    withheld = fields.List(fields.Nested(WithheldSchema), required=True)


class AddressSchema(Schema):
    street = fields.Str(allow_none=True)
    locality = fields.Str(allow_none=True)
    postcode = fields.Str(allow_none=True)


class IdentitySchema(Schema):
    name = fields.Str(allow_none=True)
    email = fields.Email(allow_none=True)
    phone = fields.Str(allow_none=True)
    address = fields.Nested(AddressSchema)


class DemographicsSchema(Schema):
    age_band = fields.Str(allow_none=True, metadata={"example": "35-44"})
    region = fields.Str(allow_none=True, metadata={"example": "NSW"})
    household_size = fields.Int(allow_none=True)


class PreferencesSchema(Schema):
    contact_channel = fields.Str()
    offer_frequency = fields.Str()
    language = fields.Str()


class MeResponseSchema(Schema):
    sub = fields.Str(
        required=True,
        metadata={
            "description": "Pairwise pseudonym: stable for your client, different for every other."
        },
    )
    purpose = fields.Str(required=True)
    identity = fields.Nested(IdentitySchema)
    demographics = fields.Nested(DemographicsSchema)
    interests = fields.List(fields.Str())
    interests_from_purchases = fields.List(
        fields.Str(),
        metadata={
            "description": "Interests the customer's purchases suggest and they kept: only with "
            "both an interests scope and purchases:read, where the policy allows both."
        },
    )
    preferences = fields.Nested(PreferencesSchema, allow_none=True)
    withheld = fields.List(fields.Nested(WithheldSchema), required=True)
