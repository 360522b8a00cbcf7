"""The web edge: blueprints, sessions, CSRF, headers, rate limits and error mapping."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

from infomediary.logs import get_logger
from infomediary.oauth.server import init_oauth
from infomediary.services.profile_fields import FIELDS
from infomediary.web import (
    api,
    api_reference,
    auditor_views,
    auth,
    broker_api,
    consent_views,
    dashboard,
    db,
    erasure_api,
    errors,
    health,
    i18n,
    inbox_views,
    intent_views,
    intents_api,
    log_proof_views,
    notification_views,
    oauth_views,
    offers_api,
    openapi,
    pages,
    policy_views,
    purchase_duplicates_views,
    purchases_views,
    security,
    security_views,
    settings_views,
    supplier_views,
    terms_api,
    wallet_views,
)
from infomediary.web.limits import limiter
from infomediary.web.sessions import DatabaseSessionInterface
from policies.taxonomy import CATEGORIES, INTEREST_TAGS

access = get_logger("access")


def _log_request(response: Any) -> Any:
    # Route pattern, not path: paths and query strings can carry identifiers or tokens.
    if not health.is_probe():  # probes come every few seconds and say nothing
        rule = request.url_rule or "<unmatched>"
        access.info("%s %s %s", request.method, rule, response.status_code)
    return response


def init_app(app: Flask) -> None:
    hops = security.settings(app).proxy_hops
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.session_interface = DatabaseSessionInterface()
    health.init_app(app)  # first: its request timing covers every other hook
    security.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    limiter.init_app(app)
    db.init_app(app)
    app.after_request(_log_request)

    init_oauth(app, db.db)
    app.register_blueprint(pages.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(oauth_views.bp)
    app.register_blueprint(consent_views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(broker_api.bp)
    app.register_blueprint(offers_api.bp)
    app.register_blueprint(intents_api.bp)
    app.register_blueprint(intent_views.bp)
    app.register_blueprint(inbox_views.bp)
    app.register_blueprint(purchases_views.bp)
    app.register_blueprint(purchase_duplicates_views.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(auditor_views.bp)
    app.register_blueprint(log_proof_views.bp)
    app.register_blueprint(supplier_views.bp)
    app.register_blueprint(erasure_api.bp)
    app.register_blueprint(terms_api.bp)
    app.register_blueprint(wallet_views.bp)
    app.register_blueprint(api_reference.bp)
    app.register_blueprint(notification_views.bp)
    app.register_blueprint(settings_views.bp)
    app.register_blueprint(security_views.bp)
    app.register_blueprint(policy_views.bp)
    security.check_method_split(app)

    app.jinja_env.globals.update(
        FIELD_LABELS={f.name: f.label for f in FIELDS},
        current_customer_id=security.current_customer_id,
        CATEGORIES=CATEGORIES,
        INTEREST_TAGS=INTEREST_TAGS,
    )
