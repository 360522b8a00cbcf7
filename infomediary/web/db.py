"""The request's database session, in the shape of flaskr's ``db.py``.

``db()`` opens a session from the instance's factory on first use in a request and keeps it in
``g``; it is closed at the end of the request, which also ends any transaction a failed view
left open. Use cases own their transactions (:mod:`infomediary.services.uow`): nothing here
commits, and nothing a view does is kept unless the use case it called committed it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy.orm import Session


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = current_app.extensions["infomediary"].sessions()
    session: Session = g.db
    return session


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def _end_transaction(response: Any) -> Any:
    """End the request's transaction before the response (and the login session) is saved,
    so a view that failed part-way neither keeps its work nor holds SQLite's write lock."""
    session = g.get("db")
    if session is not None and session.in_transaction():
        session.close()
    return response


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
    app.after_request(_end_transaction)
