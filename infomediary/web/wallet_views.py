"""The customer's rewards wallet."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("wallet", __name__)
