"""The public API reference, generated from the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_reference", __name__)
