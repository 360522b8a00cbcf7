"""The customer's site settings: language and time zone."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("settings", __name__)
