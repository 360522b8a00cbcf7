"""The web edge: blueprints, sessions, CSRF, headers, rate limits and error mapping."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from infomediary.logs import get_logger
from infomediary.web import errors, security
from infomediary.web.sessions import DatabaseSessionInterface


def _write_rate() -> str:
    return str(current_app.config["WRITE_RATE_LIMIT"])


def _is_safe_method() -> bool:
    return request.method in security.SAFE_METHODS


#: One limiter for the app. Every unsafe request also counts against an application-wide
#: ceiling per address; safe methods are exempt, since no view they reach changes anything.
limiter = Limiter(
    key_func=get_remote_address,
    default_limits=[],
    application_limits=[_write_rate],
    application_limits_exempt_when=_is_safe_method,
    strategy="fixed-window",
)
access = get_logger("access")


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = security.instance().sessions()
    session: Session = g.db
    return session


def _close_db(_exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def _release_db(response: Any) -> Any:
    """End any transaction a view left open before the session is saved.

    Use cases commit their own work; whatever is still pending here belongs to a request
    that failed part-way and must not be kept (nor hold SQLite's write lock).
    """
    session = g.get("db")
    if session is not None and session.in_transaction():
        session.rollback()
    return response


def _log_request(response: Any) -> Any:
    # Route pattern, not path: paths and query strings can carry identifiers or tokens.
    access.info("%s %s %s", request.method, request.url_rule or "<unmatched>", response.status_code)
    return response


def init_app(app: Flask) -> None:
    if int(app.config["PROXY_HOPS"]) > 0:
        hops = int(app.config["PROXY_HOPS"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.session_interface = DatabaseSessionInterface()
    security.init_app(app)
    errors.init_app(app)
    limiter.init_app(app)
    app.teardown_appcontext(_close_db)
    app.after_request(_log_request)
    app.after_request(_release_db)

    from infomediary.oauth.server import init_oauth
    from infomediary.web import (
        api,
        auth,
        broker_api,
        consent_views,
        dashboard,
        inbox_views,
        oauth_views,
        offers_api,
        openapi,
        pages,
    )

    init_oauth(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(oauth_views.bp)
    app.register_blueprint(consent_views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(broker_api.bp)
    app.register_blueprint(offers_api.bp)
    app.register_blueprint(inbox_views.bp)
    app.register_blueprint(openapi.bp)
    security.check_method_split(app)

    from infomediary.services.profile import FIELDS
    from policies.taxonomy import CATEGORIES, INTEREST_TAGS

    app.jinja_env.globals.update(
        FIELD_LABELS={f.name: f.label for f in FIELDS},
        current_customer_id=security.current_customer_id,
        CATEGORIES=CATEGORIES,
        INTEREST_TAGS=INTEREST_TAGS,
    )
