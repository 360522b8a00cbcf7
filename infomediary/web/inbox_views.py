"""The customer's offer inbox and earnings."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from infomediary.models import utcnow
from infomediary.services import offer_contacts, offer_inbox, rewards
from infomediary.web.db import db
from infomediary.web.forms import EXPIRY_CHOICES
from infomediary.web.security import context, instance, login_required
from policies.model import PURPOSES

bp = Blueprint("inbox", __name__)


def _customer_id() -> str:
    return str(session["customer_id"])


@bp.get("/inbox")
@login_required
def index() -> ResponseReturnValue:
    s = db()
    items = offer_inbox.inbox(s, _customer_id())
    earnings = rewards.earnings_by_supplier(s, _customer_id())
    return render_template("inbox.html", items=items, earnings=earnings)


@bp.post("/inbox/<offer_id>/<action>")
@login_required
def respond(offer_id: str, action: str) -> ResponseReturnValue:
    message = offer_inbox.respond(db(), instance(), _customer_id(), offer_id, action, context())
    flash(message[0].upper() + message[1:] + ".")
    return redirect(url_for("inbox.index"))


@bp.get("/inbox/<offer_id>/share")
@login_required
def share_form(offer_id: str) -> ResponseReturnValue:
    """Share contact details with an offer's supplier: the consent screen for named fields."""
    s = db()
    offer, supplier = offer_contacts.accepted_offer(s, _customer_id(), offer_id)
    known = offer_contacts.identity_grants(s, _customer_id(), supplier.id)
    shared = offer_contacts.contact_shared(s, offer.id, _customer_id())
    return render_template(
        "share.html",
        offer=offer,
        supplier=supplier,
        expiry_choices=EXPIRY_CHOICES,
        identity_grants=known,
        shared=shared,
        purpose_labels=PURPOSES,
    )


@bp.post("/inbox/<offer_id>/share")
@login_required
def share(offer_id: str) -> ResponseReturnValue:
    s = db()
    offer, supplier = offer_contacts.accepted_offer(s, _customer_id(), offer_id)
    choice = request.form.get("expiry", "90d")
    if choice not in EXPIRY_CHOICES:
        return render_template(
            "share.html",
            offer=offer,
            supplier=supplier,
            expiry_choices=EXPIRY_CHOICES,
            identity_grants=offer_contacts.identity_grants(s, _customer_id(), supplier.id),
            shared=offer_contacts.contact_shared(s, offer.id, _customer_id()),
            purpose_labels=PURPOSES,
            error="Choose an expiry.",
        ), 400
    days = EXPIRY_CHOICES[choice][1]
    name = offer_contacts.share_contact(
        s,
        instance(),
        _customer_id(),
        offer_id,
        utcnow() + timedelta(days=days) if days else None,
        context(),
        base_url=request.host_url.rstrip("/"),
    )
    flash(
        gettext(
            "Your contact details are shared with %(name)s. You can revoke this under Consents.",
            name=name,
        )
    )
    return redirect(url_for("inbox.index"))
