"""The customer's offer inbox and earnings."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue

from infomediary.services import offers, rewards
from infomediary.web import db
from infomediary.web.security import context, instance, login_required

bp = Blueprint("inbox", __name__)


def _customer_id() -> str:
    return str(session["customer_id"])


@bp.get("/inbox")
@login_required
def index() -> ResponseReturnValue:
    s = db()
    items = offers.inbox(s, _customer_id())
    earnings = rewards.earnings_by_supplier(s, _customer_id())
    s.rollback()
    return render_template("inbox.html", items=items, earnings=earnings)


@bp.post("/inbox/<offer_id>/<action>")
@login_required
def respond(offer_id: str, action: str) -> ResponseReturnValue:
    message = offers.respond(db(), instance(), _customer_id(), offer_id, action, context())
    flash(message[0].upper() + message[1:] + ".")
    return redirect(url_for("inbox.index"))
