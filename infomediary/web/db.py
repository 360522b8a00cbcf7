"""The request's database session, in the shape of flaskr's ``db.py``.

``db()`` opens a session from the instance's factory on first use in a request and keeps it in
``g``; it is closed at the end of the request, which also ends any transaction a failed view
left open. Use cases own their transactions (:mod:`infomediary.services.uow`): nothing here
commits, and nothing a view does is kept unless the use case it called committed it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from infomediary.db import begin_read

_P = ParamSpec("_P")
_R = TypeVar("_R")


def db() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = current_app.extensions["infomediary"].sessions()
    session: Session = g.db
    return session


def reads_first(view: Callable[_P, _R]) -> Callable[_P, _R]:
    """Begin the view's transaction as a read phase (:func:`infomediary.db.begin_read`), before
    the rate limiter's key looks the token up: for a hot read whose only write is its log
    entry, appended after the decision in a transaction of its own."""

    @functools.wraps(view)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        begin_read(db())
        return view(*args, **kwargs)

    return wrapper


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
