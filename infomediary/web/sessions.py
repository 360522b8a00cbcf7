"""Server-side sessions: the cookie carries a random 256-bit token, the database its SHA-256.

Logging out or changing the password deletes rows, so the session really ends (a signed
cookie session cannot be revoked). Sessions end after ``SESSION_IDLE_MINUTES`` without a
request and ``SESSION_MAX_HOURS`` after login. Login issues a new token (no fixation).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from datetime import timedelta
from typing import Any, cast

from flask import Flask, Request, Response, request, session
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import CursorResult, delete, update
from werkzeug.datastructures import CallbackDict

from infomediary.instance import Instance
from infomediary.models import WebSession, utcnow
from infomediary.services import web_sessions
from infomediary.web.security import settings

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_TOUCH_AFTER = timedelta(seconds=60)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def cookie_name(app: Flask) -> str:
    # The __Host- prefix makes browsers insist on Secure, Path=/ and no Domain (RFC 6265bis).
    return "__Host-infomediary" if settings(app).production else "infomediary_session"


class ServerSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, data: dict[str, Any], token: str, stored: bool):
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(data, on_update)
        self.token = token
        self.stored = stored
        self.modified = False
        self.regenerate = False
        self.destroyed = False
        self.token_used = False
        self.touch = False
        #: The id the session list names this session by (not the token, nor its hash).
        self.public_id: str | None = None

    def rotate(self) -> None:
        """Issue a new token at the next save (call on login)."""
        self.regenerate = True
        self.modified = True

    def destroy(self) -> None:
        self.clear()
        self.destroyed = True


def public_id_of(session: SessionMixin) -> str | None:
    """The public id of the request's stored session (None before it is first saved)."""
    return session.public_id if isinstance(session, ServerSession) else None


#: How long the half-logged-in state between the password and the second step lasts.
PENDING_SECONDS = 300


def start_pending(customer_id: str, target: str | None) -> None:
    """The password was right and a second factor is set up: a new token, nothing logged in."""
    if not isinstance(session, ServerSession):
        raise TypeError("a login needs a server session")
    sess = session
    sess.clear()
    sess.rotate()
    sess["pending_customer_id"] = customer_id
    sess["pending_until"] = int(time.time()) + PENDING_SECONDS
    if target:
        sess["pending_next"] = target


def pending_customer_id() -> str | None:
    value = session.get("pending_customer_id")
    until = session.get("pending_until")
    if isinstance(value, str) and isinstance(until, int) and until > time.time():
        return value
    return None


def _pending_of(session: ServerSession) -> str | None:
    """The half-logged-in customer, kept in its own column so that ending the customer's
    sessions ends this one too."""
    value = session.get("pending_customer_id")
    return value if isinstance(value, str) else None


class DatabaseSessionInterface(SessionInterface):
    def _instance(self, app: Flask) -> Instance:
        inst: Instance = app.extensions["infomediary"]
        return inst

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        token = request.cookies.get(cookie_name(app), "")
        if _TOKEN_RE.match(token):
            inst = self._instance(app)
            now = utcnow()
            idle = timedelta(minutes=settings(app).session_idle_minutes)
            with inst.sessions() as db, db.begin():
                row = db.get(WebSession, _hash(token))
                if row is not None and row.expires_at > now and row.last_seen_at + idle > now:
                    session = ServerSession(json.loads(row.data), token, stored=True)
                    session.touch = now - row.last_seen_at > _TOUCH_AFTER
                    session.public_id = row.public_id
                    return session
                if row is None:
                    # An anonymous visitor's token: it only binds CSRF tokens, grants nothing,
                    # and is replaced at login.
                    return ServerSession({}, token, stored=False)
                db.delete(row)
            # An expired session's token is never reused: a fresh one is issued.
        return ServerSession({}, secrets.token_urlsafe(32), stored=False)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, ServerSession):
            raise TypeError("DatabaseSessionInterface saves only its own sessions")
        name = cookie_name(app)
        inst = self._instance(app)
        secure = settings(app).production
        if session.destroyed or session.regenerate:
            if session.stored:
                with inst.sessions() as db, db.begin():
                    db.execute(
                        delete(WebSession).where(WebSession.token_hash == _hash(session.token))
                    )
            session.stored = False
            if session.destroyed:
                response.delete_cookie(
                    name, path="/", secure=secure, httponly=True, samesite="Strict"
                )
                return
            session.token = secrets.token_urlsafe(32)
            session.public_id = None
        if not session:
            was_stored = session.stored
            if session.stored:
                with inst.sessions() as db, db.begin():
                    db.execute(
                        delete(WebSession).where(WebSession.token_hash == _hash(session.token))
                    )
                session.stored = False
            if session.token_used:
                # An anonymous visitor who was shown a form: the CSRF token is bound to this cookie.
                self._set_cookie(app, response, session.token)
            elif was_stored:
                # The session's data is gone (flash shown); nothing binds the token any more.
                response.delete_cookie(
                    name, path="/", secure=secure, httponly=True, samesite="Strict"
                )
            return
        if session.stored and not session.modified and not session.touch:
            return
        now = utcnow()
        data = json.dumps(dict(session), separators=(",", ":"))
        if session.stored:
            # A session loaded from its row is only ever updated: when the row is gone, the
            # session was ended (logged out everywhere, a new password) while this request ran.
            with inst.sessions() as db, db.begin():
                result = db.execute(
                    update(WebSession)
                    .where(WebSession.token_hash == _hash(session.token))
                    .values(
                        customer_id=session.get("customer_id"),
                        pending_customer_id=_pending_of(session),
                        data=data,
                        last_seen_at=now,
                    )
                )
                ended = cast(CursorResult[Any], result).rowcount == 0
            if ended:
                session.stored = False
                response.delete_cookie(
                    name, path="/", secure=secure, httponly=True, samesite="Strict"
                )
                return
            self._set_cookie(app, response, session.token)
            return
        with inst.sessions() as db, db.begin():
            row = db.get(WebSession, _hash(session.token))
            if row is None:
                row = WebSession(
                    token_hash=_hash(session.token),
                    created_at=now,
                    expires_at=now + timedelta(hours=settings(app).session_max_hours),
                    public_id=secrets.token_urlsafe(16),
                )
                customer_id = session.get("customer_id")
                if isinstance(customer_id, str):
                    # Sealed: the session list's "Firefox on Linux" is the customer's to see.
                    row.device = web_sessions.seal_device(
                        db, inst, customer_id, str(row.public_id), request.user_agent.string
                    )
                db.add(row)
            session.public_id = row.public_id
            row.customer_id = session.get("customer_id")
            row.pending_customer_id = _pending_of(session)
            row.data = data
            row.last_seen_at = now
        session.stored = True
        self._set_cookie(app, response, session.token)

    def _set_cookie(self, app: Flask, response: Response, token: str) -> None:
        response.set_cookie(
            cookie_name(app),
            token,
            path="/",
            secure=settings(app).production,
            httponly=True,
            samesite="Strict",
        )
        response.vary.add("Cookie")
