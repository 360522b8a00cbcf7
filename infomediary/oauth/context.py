"""The request's side of the OAuth adapter: the app's server and resource protector, the session
and request id its callbacks use, the issuer, and refused protocol steps logged in the
exchange's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from flask import current_app, g, request
from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.config import Settings
from infomediary.services import Context
from infomediary.services.tokens import token_is_active as token_is_active
from infomediary.services.tokens import token_refusal as token_refusal

AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class OAuthServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's authorization server, built per app (:func:`init_oauth`) and kept in
    ``app.extensions["oauth_server"]``, with the session provider its callbacks use (authlib's
    ``sqla_oauth2`` functions take their session the same way, through a closure)."""

    def __init__(self, sessions: Callable[[], Session]):
        super().__init__()
        self.sessions = sessions


def authorization_server() -> OAuthServer:
    server: OAuthServer = current_app.extensions["oauth_server"]
    return server


def resource_protector() -> ResourceProtector:
    protector: ResourceProtector = current_app.extensions["oauth_protector"]
    return protector


def request_session() -> Session:
    """The session of the request being served, from the app's server."""
    return authorization_server().sessions()


def refused(
    session: Session,
    supplier_id: str,
    reason: Reason,
    customer_id: str | None = None,
    **entry: Any,
) -> None:
    """A refused step of the protocol, logged in the exchange's own transaction: what the
    exchange claimed (a code, a refresh token) stays claimed, and the refusal with it."""
    Context.supplier(supplier_id, request_id()).log(
        session, "login", customer_id=customer_id, reason=reason, allowed=False, **entry
    )


def request_id() -> str:
    return str(g.get("request_id", "-"))


def issuer() -> str:
    configured: Settings = current_app.config["SETTINGS"]
    return configured.issuer or request.host_url.rstrip("/")
