"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("health", __name__)
