"""The customer's rewards wallet: balance, history, payout requests and their cancellation."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from infomediary.errors import ValidationFailed
from infomediary.services import wallet
from infomediary.services.access_log import parse_page
from infomediary.web.db import db
from infomediary.web.limits import PAYOUT_RATE, limiter
from infomediary.web.security import context, instance, login_required

bp = Blueprint("wallet", __name__)


def _customer_id() -> str:
    return str(session["customer_id"])


def _wallet_key() -> str:
    return f"wallet:{session.get('customer_id', '-')}"


def _page(
    errors: dict[str, str], form: dict[str, str], status: int = 200, page: int = 1
) -> ResponseReturnValue:
    found = wallet.wallet(db(), instance(), _customer_id(), page, context())
    return render_template("wallet.html", wallet=found, errors=errors, form=form), status


@bp.get("/wallet")
@login_required
def index() -> ResponseReturnValue:
    return _page({}, {}, page=parse_page(request.args.get("page")))


@bp.post("/wallet/payouts")
@login_required
@limiter.limit(PAYOUT_RATE, key_func=_wallet_key)
def request_payout() -> ResponseReturnValue:
    form = {
        "amount": request.form.get("amount", ""),
        "destination": request.form.get("destination", ""),
    }
    try:
        payout = wallet.request_payout(
            db(),
            instance(),
            _customer_id(),
            wallet.PayoutInput(form["amount"], form["destination"]),
            context(),
        )
    except ValidationFailed as exc:
        # the form comes back as typed, every field's error shown at once
        return _page(exc.errors, form, 400)
    amount = "%.2f" % (payout.amount_cents / 100)
    flash(
        gettext(
            "Payout of $%(amount)s requested to %(destination)s. "
            "It stays pending until it is paid.",
            amount=amount,
            destination=payout.destination_masked,
        )
    )
    return redirect(url_for("wallet.index"), 303)


@bp.post("/wallet/payouts/<payout_id>/cancel")
@login_required
@limiter.limit(PAYOUT_RATE, key_func=_wallet_key)
def cancel_payout(payout_id: str) -> ResponseReturnValue:
    try:
        cents = wallet.cancel_payout(db(), instance(), _customer_id(), payout_id, context())
    except ValidationFailed:
        # Another customer's payout, or none, is a 404 (raised); only one that is no longer
        # pending comes back here.
        flash(gettext("This payout can no longer be cancelled."))
        return redirect(url_for("wallet.index"), 303)
    amount = "%.2f" % (cents / 100)
    flash(gettext("Payout cancelled: $%(amount)s is back in your balance.", amount=amount))
    return redirect(url_for("wallet.index"), 303)
