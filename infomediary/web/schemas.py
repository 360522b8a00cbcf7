"""marshmallow schemas for every API request and response (input and output kept apart).

The OpenAPI document at ``/api/openapi.json`` is generated from these same classes, so the
contract suppliers read is the one the code enforces.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from infomediary.scopes import ALL_SCOPES
from infomediary.services.suppliers import SECTORS
from infomediary.text import CONTROL_MESSAGE, MULTILINE_MESSAGE, has_control_characters
from policies.model import PURPOSES


class Text(fields.String):
    """A string with no control characters (:mod:`infomediary.text`): NUL cannot be stored
    by PostgreSQL, and the others have no place in a request."""

    multiline = False

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if has_control_characters(text, multiline=self.multiline):
            raise ValidationError(MULTILINE_MESSAGE if self.multiline else CONTROL_MESSAGE)
        return text


class MultilineText(Text):
    """Text that may hold tabs and line breaks, such as an offer's body."""

    multiline = True


GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class ErrorSchema(Schema):
    error = fields.Str(required=True, metadata={"description": "Machine-readable code."})
    message = fields.Str(metadata={"description": "What went wrong, in words."})
    fields_ = fields.Dict(data_key="fields", keys=fields.Str(), values=fields.Str())


class OAuthErrorSchema(Schema):
    error = fields.Str(required=True, metadata={"description": "RFC 6749 §5.2 error code."})
    error_description = fields.Str()


class WithheldSchema(Schema):
    category = fields.Str(required=True)
    reason = fields.Str(required=True, metadata={"description": "The policy's reason, in words."})


class PolicyDeniedSchema(Schema):
    error = fields.Str(required=True, metadata={"example": "policy_denied"})
    message = fields.Str(required=True)
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
    preferences = fields.Nested(PreferencesSchema, allow_none=True)
    purchases = fields.List(fields.Dict())
    withheld = fields.List(fields.Nested(WithheldSchema), required=True)


class TokenRequestSchema(Schema):
    grant_type = Text(required=True, validate=validate.OneOf(GRANT_TYPES))
    code = Text()
    redirect_uri = Text()
    code_verifier = Text(metadata={"description": "PKCE verifier (RFC 7636), required."})
    refresh_token = Text()
    scope = Text()


class TokenResponseSchema(Schema):
    access_token = fields.Str(required=True)
    token_type = fields.Str(required=True, metadata={"example": "Bearer"})
    expires_in = fields.Int(required=True, metadata={"description": "At most 3600."})
    refresh_token = fields.Str(metadata={"description": "Rotated on every use."})
    scope = fields.Str()


class TokenActionRequestSchema(Schema):
    token = Text(required=True)
    token_type_hint = Text(validate=validate.OneOf(("access_token", "refresh_token")))


class IntrospectionResponseSchema(Schema):
    active = fields.Bool(required=True)
    client_id = fields.Str()
    scope = fields.Str()
    sub = fields.Str()
    exp = fields.Int()
    iat = fields.Int()
    iss = fields.Str()
    purpose = fields.Str()
    token_type = fields.Str()


class ClientRegistrationRequestSchema(Schema):
    """RFC 7591 §2 client metadata, plus ``purposes`` and ``sector``."""

    class Meta:
        unknown = EXCLUDE  # RFC 7591 §2: unknown metadata is ignored

    client_name = Text(required=True, validate=validate.Length(min=1, max=120))
    redirect_uris = fields.List(Text(), load_default=list)
    scope = Text(required=True, metadata={"example": "profile.identity:read"})
    purposes = fields.List(Text(validate=validate.OneOf(tuple(PURPOSES))), load_default=list)
    grant_types = fields.List(
        Text(validate=validate.OneOf(GRANT_TYPES)),
        load_default=lambda: ["authorization_code", "refresh_token"],
    )
    token_endpoint_auth_method = Text(
        validate=validate.OneOf(AUTH_METHODS), load_default="client_secret_basic"
    )
    policy_uri = Text(allow_none=True, load_default=None)
    sector = Text(validate=validate.OneOf(SECTORS), load_default="other")


class ClientRegistrationResponseSchema(Schema):
    client_id = fields.Str(required=True)
    client_secret = fields.Str(required=True)
    client_id_issued_at = fields.Int(required=True)
    client_secret_expires_at = fields.Int(required=True)
    client_name = fields.Str()
    redirect_uris = fields.List(fields.Str())
    scope = fields.Str()
    purposes = fields.List(fields.Str())
    grant_types = fields.List(fields.Str())
    response_types = fields.List(fields.Str())
    token_endpoint_auth_method = fields.Str()
    policy_uri = fields.Str(allow_none=True)


class MetadataSchema(Schema):
    issuer = fields.Str(required=True)
    authorization_endpoint = fields.Str()
    token_endpoint = fields.Str()
    revocation_endpoint = fields.Str()
    introspection_endpoint = fields.Str()
    registration_endpoint = fields.Str()
    jwks_uri = fields.Str()
    scopes_supported = fields.List(fields.Str())
    response_types_supported = fields.List(fields.Str())
    response_modes_supported = fields.List(fields.Str())
    grant_types_supported = fields.List(fields.Str())
    token_endpoint_auth_methods_supported = fields.List(fields.Str())
    revocation_endpoint_auth_methods_supported = fields.List(fields.Str())
    introspection_endpoint_auth_methods_supported = fields.List(fields.Str())
    code_challenge_methods_supported = fields.List(fields.Str())
    authorization_response_iss_parameter_supported = fields.Bool()
    service_documentation = fields.Str()


class JwkSchema(Schema):
    kty = fields.Str()
    crv = fields.Str()
    x = fields.Str()
    kid = fields.Str()
    use = fields.Str()
    alg = fields.Str()


class JwksSchema(Schema):
    keys = fields.List(fields.Nested(JwkSchema), required=True)


SCOPE_NAMES = tuple(ALL_SCOPES)


class CountRequestSchema(Schema):
    purpose = Text(required=True, validate=validate.OneOf(tuple(PURPOSES)))
    where = fields.Dict(
        required=True,
        keys=Text(),
        values=fields.List(Text()),
        metadata={
            "description": "At most 5 attributes; values of one attribute are OR-ed.",
            "example": {"region": ["NSW"], "interests": ["books", "travel"]},
        },
    )
    breakdown = Text(
        allow_none=True, validate=validate.OneOf(("age_band", "region", "area", "household"))
    )


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


class OfferRequestSchema(CountRequestSchema):
    title = Text(required=True, validate=validate.Length(min=1, max=120))
    body = MultilineText(required=True, validate=validate.Length(min=1, max=2000))
    reward_cents = fields.Int(load_default=0, validate=validate.Range(min=0, max=100_000))
    max_recipients = fields.Int(required=True, validate=validate.Range(min=1, max=1_000_000))
    expires_in_days = fields.Int(load_default=14, validate=validate.Range(min=1, max=90))


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
