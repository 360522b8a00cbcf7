"""marshmallow schemas for every API request and response (input and output kept apart).

The OpenAPI document at ``/api/openapi.json`` is generated from these same classes, so the
contract suppliers read is the one the code enforces.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate

from infomediary.broker.attributes import ATTRIBUTES
from infomediary.errors import InvalidRequest
from infomediary.scopes import ALL_SCOPES
from infomediary.services.broker import DISJOINT, MAX_PREDICATES, CountQuery
from infomediary.services.offers import MAX_BODY, MAX_TITLE, OfferInput
from infomediary.services.suppliers import SECTORS
from infomediary.text import CONTROL_MESSAGE, MULTILINE_MESSAGE, has_control_characters
from policies.model import PURPOSES


class FieldError(str):
    """A field's error message that names its machine-readable code (``unknown_attribute``,
    ...): the problem's ``code`` when it is the first error of a request."""

    code: str

    def __new__(cls, code: str, message: str) -> FieldError:
        error = super().__new__(cls, message)
        error.code = code
        return error


class Text(fields.String):
    """A string with no control characters (:mod:`infomediary.text`): NUL cannot be stored
    by PostgreSQL, and the others have no place in a request. ``strip=True`` removes
    surrounding white space after that check, before validators run."""

    multiline = False

    def __init__(self, *args: Any, strip: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.strip = strip

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if has_control_characters(text, multiline=self.multiline):
            raise ValidationError(MULTILINE_MESSAGE if self.multiline else CONTROL_MESSAGE)
        return text.strip() if self.strip else text


class MultilineText(Text):
    """Text that may hold tabs and line breaks, such as an offer's body."""

    multiline = True


GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


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


class OAuthErrorSchema(Schema):
    error = fields.Str(required=True, metadata={"description": "RFC 6749 §5.2 error code."})
    error_description = fields.Str()


class WithheldSchema(Schema):
    category = fields.Str(required=True)
    reason = fields.Str(required=True, metadata={"description": "The policy's reason, in words."})


class PolicyDeniedProblemSchema(ProblemSchema):
    withheld = fields.List(fields.Nested(WithheldSchema), required=True)


class BudgetExhaustedProblemSchema(ProblemSchema):
    retry_after = fields.Int(
        required=True,
        metadata={"description": "Seconds until the budget period ends (also Retry-After)."},
    )


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


class Criteria(fields.Dict):
    """``where``: attribute -> list of values (OR within an attribute, AND across them)."""

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


class RequestSchema(Schema):
    """A request body: unknown fields are refused. ``codes`` names the machine-readable code
    of a field's error (unless the error names its own, :class:`FieldError`); any other
    error is ``default_code``."""

    class Meta:
        unknown = RAISE

    default_code = "validation_failed"
    codes: dict[str, str] = {}


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
        return CountQuery(purpose=data["purpose"], where=data["where"], breakdown=data["breakdown"])


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


Loaded = TypeVar("Loaded")


def _first_message(messages: Any) -> str:
    while isinstance(messages, dict | list) and messages:
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return messages if isinstance(messages, str) else "Invalid value."


def load(schema: RequestSchema, data: Any, into: type[Loaded]) -> Loaded:
    """The one validation path of API input: ``data`` loaded by ``schema`` into the frozen
    input ``into``, or :class:`InvalidRequest` with a code and one message per field."""
    try:
        loaded = schema.load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        errors: dict[str, str] = {}
        code = ""
        for name, field_messages in messages.items():
            message = _first_message(field_messages)
            field = "body" if name == "_schema" else str(name)
            errors[field] = str(message)
            if not code:
                code = getattr(message, "code", None) or schema.codes.get(
                    field, schema.default_code
                )
        if errors.get("body") == "Invalid input type.":
            errors["body"] = "The body must be a JSON object."
        raise InvalidRequest(code or schema.default_code, errors) from None
    if not isinstance(loaded, into):  # pragma: no cover - a schema whose post_load is wrong
        raise TypeError(f"{type(schema).__name__} did not load a {into.__name__}")
    return loaded
