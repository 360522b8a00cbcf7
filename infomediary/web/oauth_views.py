"""OAuth endpoints: authorize (consent screen), token, revoke, introspect, register,
metadata (RFC 8414) and the JWKS that consent receipts verify against."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error
from flask import (
    Blueprint,
    Response,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from marshmallow import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from infomediary import errors
from infomediary.errors import ValidationFailed
from infomediary.models import Supplier, utcnow
from infomediary.oauth.server import (
    CustomerRef,
    authorization_server,
    error_redirect,
    metadata,
)
from infomediary.scopes import CUSTOMER_SCOPES, categories_for, parse_scopes
from infomediary.services import (
    authorization,
    customer_keys,
    decisions,
    suppliers,
)
from infomediary.services import consent_screen as screens
from infomediary.web.bearer import json_body
from infomediary.web.db import db
from infomediary.web.forms import EXPIRY_CHOICES
from infomediary.web.limits import (
    basic_credentials,
    client_authenticated,
    client_key,
    has_basic_header,
    limiter,
    oauth_rate,
    throttle_failed_client_auth,
)
from infomediary.web.schemas import (
    ClientRegistrationRequestSchema,
    ClientRegistrationResponseSchema,
    JwksSchema,
    MetadataSchema,
)
from infomediary.web.security import (
    CSP,
    context,
    csrf_exempt,
    current_customer_id,
    instance,
    settings,
)

bp = Blueprint("oauth", __name__)
#: The expiry choice that keeps an active grant's end date when it is authorised again.
KEEP = "keep"


def _oauth_error_page(error: OAuth2Error) -> BaseResponse:
    target = error_redirect(error)
    if target:
        return redirect(target)
    # Unknown client or unregistered redirect URI: never redirect (RFC 9700 §4.1.1).
    html = render_template("oauth_error.html", error=error.error, description=error.description)
    return Response(html, status=400, mimetype="text/html")


def _expiry_choices(existing: Any) -> dict[str, tuple[str, datetime | None]]:
    """The end dates the customer can choose, each with the date it means; with an active
    grant of the same supplier and purpose, keeping its end date comes first."""
    now = utcnow()
    choices: dict[str, tuple[str, datetime | None]] = {}
    if existing is not None:
        choices[KEEP] = (gettext("Keep the current end date"), existing.expires_at)
    for key, (label, days) in EXPIRY_CHOICES.items():
        choices[key] = (label, now + timedelta(days=days) if days else None)
    return choices


def _consent_context(
    grant: Any, *, chosen_scopes: set[str] | None = None, chosen_expiry: str | None = None
) -> dict[str, Any]:
    client = grant.request.client
    supplier: Supplier = client.supplier
    scopes = parse_scopes(grant.request.scope)
    purpose = grant.request.payload.data.get("purpose", "")
    screen = screens.consent_screen(
        db(), instance(), current_customer_id() or "", supplier, scopes, purpose
    )
    choices = _expiry_choices(screen.existing)
    default_expiry = KEEP if screen.existing is not None else "90d"
    expiry = chosen_expiry if chosen_expiry in choices else default_expiry
    return {
        "supplier": supplier,
        "screen": screen,
        "purpose": purpose,
        "purpose_label": screen.purpose_words,
        "rows": screen.scopes,
        "chosen_scopes": chosen_scopes,
        "expiry_choices": choices,
        "expiry": expiry,
        "until": choices[expiry][1],
        "existing": screen.existing,
        # Who is really asking: where the answer goes, how long they have been registered,
        # and whether the operator vouched for them (a look-alike name cannot fake these).
        "redirect_host": suppliers.redirect_host(grant.request.payload.redirect_uri),
        "registered_on": supplier.created_at,
        "verified_on": supplier.verified_at,
        # An unconfirmed account may look but not allow (the approval would be refused).
        "confirmed": customer_keys.is_confirmed(db(), current_customer_id() or ""),
    }


def _consent_page(grant: Any, html: str, status: int = 200) -> Response:
    """The consent form posts here and is answered by a redirect to the client: browsers apply
    the page's ``form-action`` to that redirect, so it names the validated redirect URI's
    origin (CSP Level 3 §6.4.1), and nothing else."""
    target = urlsplit(grant.request.payload.redirect_uri)
    response = Response(html, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP.replace(
        "form-action 'self'", f"form-action 'self' {target.scheme}://{target.netloc}"
    )
    return response


def _validated_consent_grant() -> tuple[str, Any] | BaseResponse:
    """The logged-in customer and authlib's validated authorization request, or the response
    (a login redirect or an RFC 6749 §4.1.2.1 error) that takes their place."""
    customer_id = current_customer_id()
    if customer_id is None:
        return redirect(url_for("auth.login", next=request.full_path))
    try:
        grant = authorization.exchange(
            db(),
            lambda: authorization_server().get_consent_grant(end_user=CustomerRef(customer_id)),
        )
        return customer_id, grant
    except OAuth2Error as error:
        return _oauth_error_page(error)


@bp.get("/oauth/authorize")
def consent_screen() -> ResponseReturnValue:
    found = _validated_consent_grant()
    if isinstance(found, BaseResponse):
        return found
    _customer_id, grant = found
    return _consent_page(grant, render_template("consent.html", **_consent_context(grant)))


@bp.post("/oauth/authorize")
def authorize() -> ResponseReturnValue:
    found = _validated_consent_grant()
    if isinstance(found, BaseResponse):
        return found
    customer_id, grant = found
    user = CustomerRef(customer_id)
    if request.form.get("decision") != "approve":
        return cast(
            Response,
            authorization.exchange(
                db(),
                lambda: authorization_server().create_authorization_response(
                    grant_user=None, grant=grant
                ),
            ),
        )
    requested = set(parse_scopes(grant.request.scope))
    purpose = grant.request.payload.data.get("purpose", "")
    blocked = decisions.blocked_by_policy(
        db(),
        instance(),
        customer_id,
        grant.request.client.supplier,
        purpose,
        categories_for(sorted(requested)),
    )
    approved = sorted(
        s
        for s in set(request.form.getlist("approve_scope")) & requested
        if CUSTOMER_SCOPES[s].category not in blocked  # a disabled box cannot be forced
    )
    existing = screens.active_grant(db(), customer_id, grant.request.client.supplier.id, purpose)
    expiry = request.form.get("expiry", KEEP if existing is not None else "90d")
    choices = _expiry_choices(existing)
    if not approved or expiry not in choices:
        ctx = _consent_context(grant, chosen_scopes=set(approved), chosen_expiry=expiry)
        message = (
            gettext("Choose at least one kind of data, or deny.")
            if not approved
            else gettext("Choose an expiry.")
        )
        return _consent_page(grant, render_template("consent.html", error=message, **ctx), 400)
    keep = expiry == KEEP
    # Keeping applies only while the grant is active; should it end meanwhile, the default.
    days = EXPIRY_CHOICES["90d" if keep else expiry][1]
    expires_at = utcnow() + timedelta(days=days) if days else None
    grant.request.approved_scope = " ".join(approved)

    def issue_code(grant_id: str) -> Response:
        grant.request.consent_grant_id = grant_id
        return cast(
            Response,
            authorization_server().create_authorization_response(grant_user=user, grant=grant),
        )

    return authorization.approve(
        db(),
        instance(),
        customer_id,
        grant.request.client.supplier,
        scopes=approved,
        purpose=grant.request.payload.data["purpose"],
        expires_at=expires_at,
        ctx=context(),
        base_url=request.host_url.rstrip("/"),
        issue_code=issue_code,
        keep_expiry=keep,
    )


def _malformed_client_auth() -> Response | None:
    """RFC 6749 §2.3.1: a Basic header must be base64 of UTF-8 ``id:secret``; anything else
    is ``invalid_client`` here rather than an error deep inside the library."""
    if not has_basic_header() or basic_credentials() is not None:
        return None
    response = jsonify(error="invalid_client", error_description="Malformed client credentials.")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Basic realm="infomediary"'
    response.headers["Cache-Control"] = "no-store"
    return response


_CLIENT_AUTH_ENDPOINTS = ("oauth.token", "oauth.revoke", "oauth.introspect")


@bp.before_request
def _check_client_auth() -> Response | None:
    if request.endpoint in _CLIENT_AUTH_ENDPOINTS:
        return _malformed_client_auth()
    return None


@bp.after_request
def _throttle_client_auth(response: Response) -> Response:
    if request.endpoint in _CLIENT_AUTH_ENDPOINTS:
        return throttle_failed_client_auth(response)
    return response


def _client_rate() -> str:
    return settings().oauth_client_rate_limit


_per_address = limiter.limit(oauth_rate)
_per_client = limiter.limit(_client_rate, key_func=client_key, deduct_when=client_authenticated)


@bp.post("/oauth/token")
@csrf_exempt
@_per_address
@_per_client
def token() -> ResponseReturnValue:
    return cast(
        Response, authorization.exchange(db(), authorization_server().create_token_response)
    )


@bp.post("/oauth/revoke")
@csrf_exempt
@_per_address
@_per_client
def revoke() -> ResponseReturnValue:
    return cast(
        Response,
        authorization.exchange(
            db(), lambda: authorization_server().create_endpoint_response("revocation")
        ),
    )


@bp.post("/oauth/introspect")
@csrf_exempt
@_per_address
@_per_client
def introspect() -> ResponseReturnValue:
    return cast(
        Response,
        authorization.exchange(
            db(), lambda: authorization_server().create_endpoint_response("introspection")
        ),
    )


_METADATA_NAMES = {"name": "client_name", "privacy_policy_url": "policy_uri"}


def _registration_error(code: str, description: str, status: int = 400) -> Response:
    response = jsonify(error=code, error_description=description)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _missing_initial_access_token() -> Response:
    response = _registration_error(
        "invalid_token", "A valid initial access token is required.", 401
    )
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


@bp.post("/oauth/register")
@csrf_exempt
@_per_address
def register() -> ResponseReturnValue:
    """RFC 7591 dynamic registration, protected by an operator-issued initial access token."""
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not suppliers.initial_access_token_usable(db(), auth[7:]):
        return _missing_initial_access_token()
    try:
        data = ClientRegistrationRequestSchema().load(json_body() or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{field}: {messages}"
            for field, messages in (
                exc.messages_dict if isinstance(exc.messages, dict) else {"body": exc.messages}
            ).items()
        )
        return _registration_error("invalid_client_metadata", problems)
    grant_types = data["grant_types"]
    method = data["token_endpoint_auth_method"]
    try:
        created = suppliers.register_client(
            db(),
            auth[7:],
            name=data["client_name"],
            redirect_uris=data["redirect_uris"],
            scopes=parse_scopes(data["scope"]),
            purposes=data["purposes"],
            privacy_policy_url=data["policy_uri"],
            sector=data["sector"],
        )
    except errors.InvalidInitialAccessToken:
        return _missing_initial_access_token()
    except errors.InvalidRedirectUri as exc:
        return _registration_error("invalid_redirect_uri", exc.message)
    except ValidationFailed as exc:
        return _registration_error(  # fields named as RFC 7591 §2 names the metadata
            "invalid_client_metadata",
            "; ".join(f"{_METADATA_NAMES.get(k, k)}: {v}" for k, v in exc.errors.items()),
        )
    supplier = created.supplier
    body = {
        "client_id": supplier.client_id,
        "client_secret": created.client_secret,
        "client_id_issued_at": int(supplier.created_at.timestamp()),
        "client_secret_expires_at": 0,
        "client_name": supplier.name,
        "redirect_uris": suppliers.redirect_uris(supplier),
        "scope": supplier.scopes,
        "purposes": supplier.purposes.split(),
        "grant_types": grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        "policy_uri": supplier.privacy_policy_url,
    }
    response = jsonify(ClientRegistrationResponseSchema().dump(body))
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/.well-known/oauth-authorization-server")
def authorization_server_metadata() -> ResponseReturnValue:
    return jsonify(MetadataSchema().dump(metadata()))


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    return jsonify(JwksSchema().dump(instance().receipt_signer.jwks()))
