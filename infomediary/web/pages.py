"""Public pages: home, privacy notice, how counting works."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from infomediary.broker.attributes import customer_attributes
from infomediary.web.security import current_customer_id

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    if current_customer_id():
        return redirect(url_for("dashboard.overview"))
    return render_template("index.html")


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    return render_template("privacy.html", attributes=customer_attributes())


@bp.get("/counting")
def counting() -> ResponseReturnValue:
    return render_template("counting.html", attributes=customer_attributes())
