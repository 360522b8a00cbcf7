"""Account security: second factors, recovery codes, sessions."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("security", __name__)
