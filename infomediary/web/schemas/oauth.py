"""The authorization server's bodies: tokens, introspection, registration, metadata, keys."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from infomediary.scopes import ALL_SCOPES
from infomediary.services.suppliers import SECTORS
from infomediary.web.schemas.fields import Text
from policies.model import PURPOSES

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class OAuthErrorSchema(Schema):
    error = fields.Str(required=True, metadata={"description": "RFC 6749 §5.2 error code."})
    error_description = fields.Str()


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
