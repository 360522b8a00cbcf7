"""Suppliers confirm erasure requests."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("erasure_api", __name__)
