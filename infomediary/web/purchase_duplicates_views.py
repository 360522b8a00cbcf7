"""Possible duplicates among the customer's purchases: lines of one order seen through two
sources, each pair shown with a choice of the line to keep, merged or marked as different.

An order is named in forms by an opaque reference, the base64url of its ``order_token`` (a
keyed hash, per customer: it says nothing of the order). A reference that names none of the
customer's groups, or a line of none of its pairs, gets the "not found" page.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, ngettext

from connectors.money import exponent
from infomediary.errors import NotFound
from infomediary.services import purchase_duplicates as duplicates
from infomediary.web.db import db
from infomediary.web.security import context, current_customer_id, instance, login_required

bp = Blueprint("purchase_duplicates", __name__)

#: How each source format is named to the customer.
SOURCES = {
    "amazon-retail": "Amazon order history",
    "amazon-legacy": "Amazon order history (items)",
    "shopify": "Shopify orders export",
    "schema-org": "order e-mail",
    "google-takeout": "Google Takeout",
    "generic-csv": "retailer's file",
    "push": "sent by the retailer",
}
_REFERENCE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_KEEP_PREFIX = "keep-"


def reference(token: bytes) -> str:
    """The order's reference in a form: base64url of its token, unpadded."""
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def token_of(raw: str | None) -> bytes:
    """The token a reference names (NotFound for anything that is not one)."""
    if raw is None or not _REFERENCE_RE.match(raw):
        raise NotFound("No such possible duplicates.")
    try:
        return base64.urlsafe_b64decode(raw + "=")
    except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only these
        raise NotFound("No such possible duplicates.") from None


def _customer_id() -> str:
    return str(session["customer_id"])


def _price(minor: Any, currency: Any) -> str:
    if not isinstance(minor, int) or not currency:
        return ""
    digits = exponent(str(currency))
    value = abs(minor) / (10**digits) if digits else abs(minor)
    return f"{'-' if minor < 0 else ''}{value:,.{digits}f} {currency}"


def _line(line: duplicates.DuplicateLine) -> dict[str, Any]:
    record = line.record
    return {
        "id": line.id,
        "product_name": record.get("product_name", ""),
        "product_id": record.get("product_id"),
        "category": record.get("category"),
        "quantity": record.get("quantity"),
        "price": _price(record.get("unit_price_minor"), record.get("currency")),
        "status": record.get("status", ""),
        "format": line.format,
        "source": SOURCES.get(line.format, line.format),
        "imported": line.imported_at.strftime("%Y-%m-%d"),
    }


def _group(group: duplicates.DuplicateGroup) -> dict[str, Any]:
    return {
        "reference": reference(group.order_token),
        "retailer": group.retailer,
        "order_id": group.order_id,
        "date": group.ordered_at,
        "pairs": [
            {"keep": pair.keep, "lines": [_line(line) for line in pair.lines]}
            for pair in group.pairs
        ],
    }


@bp.app_template_global()
def possible_duplicates_count() -> int:
    """How many pairs the logged-in customer may merge (for the purchases page's notice)."""
    customer_id = current_customer_id()
    if customer_id is None:
        return 0
    groups = duplicates.possible_duplicates(db(), instance(), customer_id)
    return sum(len(group.pairs) for group in groups)


@bp.get("/purchases/duplicates")
@login_required
def index() -> ResponseReturnValue:
    groups = duplicates.possible_duplicates(db(), instance(), _customer_id(), ctx=context())
    return render_template("purchase_duplicates.html", groups=[_group(g) for g in groups])


def _kept() -> list[str]:
    return [
        value
        for name, value in request.form.items(multi=True)
        if name.startswith(_KEEP_PREFIX) and value
    ]


@bp.post("/purchases/duplicates/merge")
@login_required
def merge() -> ResponseReturnValue:
    token = token_of(request.form.get("order"))
    count = duplicates.merge(db(), instance(), context(), _customer_id(), token, _kept())
    flash(
        ngettext(
            "Merged: %(num)d duplicate line removed.",
            "Merged: %(num)d duplicate lines removed.",
            count,
        )
    )
    return redirect(url_for("purchase_duplicates.index"))


@bp.post("/purchases/duplicates/dismiss")
@login_required
def dismiss() -> ResponseReturnValue:
    token = token_of(request.form.get("order"))
    duplicates.dismiss(db(), instance(), context(), _customer_id(), token)
    flash(gettext("Kept apart: these lines will not be shown as possible duplicates again."))
    return redirect(url_for("purchase_duplicates.index"))
