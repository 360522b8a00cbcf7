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
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete
from werkzeug.datastructures import CallbackDict

from infomediary.instance import Instance
from infomediary.models import WebSession, utcnow
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

    def rotate(self) -> None:
        """Issue a new token at the next save (call on login)."""
        self.regenerate = True
        self.modified = True

    def destroy(self) -> None:
        self.clear()
        self.destroyed = True


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
        with inst.sessions() as db, db.begin():
            row = db.get(WebSession, _hash(session.token))
            if row is None:
                row = WebSession(
                    token_hash=_hash(session.token),
                    created_at=now,
                    expires_at=now + timedelta(hours=settings(app).session_max_hours),
                )
                db.add(row)
            row.customer_id = session.get("customer_id")
            row.data = json.dumps(dict(session), separators=(",", ":"))
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
