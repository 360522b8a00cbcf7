"""The customer's notifications.

``GET /notifications`` lists them, newest first, unread ones marked; ``POST
/notifications/read`` marks every one read; ``GET``/``POST /notifications/settings`` show and
save which kinds appear here and which the e-mail digest tells of. The navigation's badge is
``notification_badge()``, a template global computed only for a logged-in customer, once per
request, by a bounded count (:func:`infomediary.services.notifications.badge`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from sqlalchemy.exc import SQLAlchemyError

from infomediary.errors import ValidationFailed
from infomediary.logs import get_logger
from infomediary.services import access_log, notifications
from infomediary.services.notifications import KINDS, Preferences, PreferencesInput
from infomediary.web.db import db
from infomediary.web.limits import NOTIFICATION_RATE, limiter
from infomediary.web.security import context, current_customer_id, instance, login_required

bp = Blueprint("notifications", __name__)
log = get_logger("notifications")


def _customer_id() -> str:
    return str(session["customer_id"])


def _rate_key() -> str:
    return f"notifications:{session.get('customer_id', '-')}"


@bp.app_context_processor
def _badge() -> dict[str, Any]:
    def notification_badge() -> str | None:
        customer_id = current_customer_id()
        if customer_id is None:
            return None
        if "notification_badge" not in g:
            try:
                g.notification_badge = notifications.badge(instance(), customer_id)
            except SQLAlchemyError:
                # an error page must still render: without the database, no badge
                log.warning("notification badge not counted: database unavailable")
                g.notification_badge = None
        found: str | None = g.notification_badge
        return found

    return {"notification_badge": notification_badge}


def _labels() -> dict[str, str]:
    return {
        notifications.SUPPLIER_READ: gettext("A supplier read your data"),
        notifications.NEW_GRANT: gettext("A new consent"),
        notifications.CONSENT_EXPIRING: gettext("A consent expires within 7 days"),
        notifications.NEW_OFFER: gettext("A new offer"),
        notifications.AUDITOR_READ: gettext("An auditor looked at your log entries"),
        notifications.IMPORT_FINISHED: gettext("A purchase import finished"),
        notifications.NEW_BID: gettext("A new bid on one of your intents"),
        notifications.INTENT_DUE: gettext("An intent is needed within 2 days"),
        notifications.INTENT_REVIEW: gettext("A standing agreement comes to its end"),
    }


@bp.get("/notifications")
@login_required
def index() -> ResponseReturnValue:
    number = access_log.parse_page(request.args.get("page"))
    page = notifications.list_notifications(db(), instance(), _customer_id(), number)
    return render_template("notifications.html", page=page)


@bp.post("/notifications/read")
@login_required
@limiter.limit(NOTIFICATION_RATE, key_func=_rate_key)
def mark_read() -> ResponseReturnValue:
    notifications.mark_all_read(db(), instance(), _customer_id(), context())
    flash(gettext("Every notification is marked as read."))
    return redirect(url_for("notifications.index"), 303)


def _render(prefs: Preferences, errors: dict[str, str], status: int = 200) -> ResponseReturnValue:
    return render_template(
        "notification_settings.html", prefs=prefs, errors=errors, kinds=KINDS, labels=_labels()
    ), status


@bp.get("/notifications/settings")
@login_required
def settings_page() -> ResponseReturnValue:
    return _render(notifications.preferences(db(), instance(), _customer_id()), {})


@bp.post("/notifications/settings")
@login_required
@limiter.limit(NOTIFICATION_RATE, key_func=_rate_key)
def save_settings() -> ResponseReturnValue:
    raw = PreferencesInput(
        in_app=tuple(request.form.getlist("in_app")),
        digest_kinds=tuple(request.form.getlist("digest_kinds")),
        digest=request.form.get("digest") == "on",
    )
    try:
        changed = notifications.change_preferences(db(), instance(), _customer_id(), raw, context())
    except ValidationFailed as exc:
        # what was ticked comes back ticked, each field with its own message
        messages = {
            "in_app": gettext("Choose only kinds from the list."),
            "digest_kinds": gettext("Choose at least one kind for the digest, or turn it off.")
            if raw.digest and not raw.digest_kinds
            else gettext("Choose only kinds from the list."),
        }
        errors = {name: messages.get(name, message) for name, message in exc.errors.items()}
        chosen = Preferences(
            frozenset(k for k in raw.in_app if k in KINDS),
            frozenset(k for k in raw.digest_kinds if k in KINDS),
            raw.digest,
        )
        return _render(chosen, errors, 400)
    flash(gettext("Notification choices saved.") if changed else gettext("Nothing changed."))
    return redirect(url_for("notifications.settings_page"), 303)
