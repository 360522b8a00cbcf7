"""The site's language and the customer's time: Flask-Babel, and the filters templates use.

Templates write every sentence through ``{% trans %}`` or ``_()``, and every instant through
the ``localtime`` (date and time) or ``localdate`` filters, never ``strftime``: the instant
is shown in the customer's own time zone and the site speaks the customer's chosen language.
"""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from flask_babel import Babel, format_date, format_datetime


def _localtime(value: datetime | None) -> str:
    return "" if value is None else format_datetime(value, "medium")


def _localdate(value: datetime | None) -> str:
    return "" if value is None else format_date(value, "medium")


def init_app(app: Flask) -> None:
    Babel(app, default_locale="en", default_timezone="UTC")
    app.jinja_env.filters["localtime"] = _localtime
    app.jinja_env.filters["localdate"] = _localdate
