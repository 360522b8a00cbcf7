"""The customer's site settings: language and time zone.

``GET /settings`` shows them (a logged read), ``POST /settings`` saves both; ``POST
/settings/terms`` the MyTerms agreement proffered by default; ``POST
/settings/timezone`` is what ``static/js/timezone.js`` sends once, while the customer has no
zone yet, with the zone the browser reports (``Intl.DateTimeFormat().resolvedOptions()``).
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from infomediary.errors import ValidationFailed
from infomediary.services import agreements, site_settings
from infomediary.services.site_settings import (
    DEFAULT_TIME_ZONE,
    SITE_LANGUAGES,
    SettingsInput,
    zone_groups,
)
from infomediary.web.db import db
from infomediary.web.i18n import current_locale, forget_settings
from infomediary.web.limits import SETTINGS_RATE, limiter
from infomediary.web.security import context, instance, login_required

bp = Blueprint("settings", __name__)


def _customer_id() -> str:
    return str(session["customer_id"])


def _settings_key() -> str:
    return f"settings:{session.get('customer_id', '-')}"


def _messages() -> dict[str, str]:
    return {
        "site_language": gettext("Choose one of the languages in the list."),
        "time_zone": gettext("Choose a time zone from the list."),
    }


def _render(
    language: str, zone: str, chosen_zone: bool, errors: dict[str, str], status: int = 200
) -> ResponseReturnValue:
    return render_template(
        "settings.html",
        language=language,
        zone=zone,
        chosen_zone=chosen_zone,
        errors=errors,
        languages=SITE_LANGUAGES,
        default_zone=DEFAULT_TIME_ZONE,
        zone_groups=zone_groups(),
        roster=agreements.roster(instance()).agreements(),
        default_terms=agreements.default_agreement(db(), _customer_id(), instance()),
    ), status


@bp.get("/settings")
@login_required
def show() -> ResponseReturnValue:
    found = site_settings.read_settings(db(), instance(), _customer_id(), context())
    language = found.site_language or current_locale()
    return _render(language, found.time_zone or DEFAULT_TIME_ZONE, found.time_zone is not None, {})


@bp.post("/settings")
@login_required
@limiter.limit(SETTINGS_RATE, key_func=_settings_key)
def save() -> ResponseReturnValue:
    raw = SettingsInput(
        site_language=request.form.get("site_language", ""),
        time_zone=request.form.get("time_zone", "").strip(),
    )
    try:
        changed = site_settings.change_settings(db(), instance(), _customer_id(), raw, context())
    except ValidationFailed as exc:
        # What was chosen comes back as chosen, each field with its own message.
        messages = _messages()
        errors = {field: messages.get(field, message) for field, message in exc.errors.items()}
        return _render(raw.site_language, raw.time_zone, True, errors, 400)
    forget_settings()  # the message below is already in the new language
    flash(gettext("Settings saved.") if changed else gettext("Nothing changed."))
    return redirect(url_for("settings.show"), 303)


@bp.post("/settings/terms")
@login_required
@limiter.limit(SETTINGS_RATE, key_func=_settings_key)
def save_terms() -> ResponseReturnValue:
    """The MyTerms agreement the customer proffers by default."""
    chosen = request.form.get("default_terms", "")
    try:
        agreements.set_default_agreement(db(), instance(), _customer_id(), chosen, context())
    except ValidationFailed:
        found = site_settings.display_settings(instance(), _customer_id())
        errors = {"default_terms": gettext("Choose one of the agreements in the list.")}
        language = found.site_language or current_locale()
        zone = found.time_zone or DEFAULT_TIME_ZONE
        return _render(language, zone, found.time_zone is not None, errors, 400)
    flash(gettext("Terms saved."))
    return redirect(url_for("settings.show"), 303)


@bp.post("/settings/timezone")
@login_required
@limiter.limit(SETTINGS_RATE, key_func=_settings_key)
def from_browser() -> ResponseReturnValue:
    """The browser's zone, taken only while the customer has none (204 either way)."""
    zone = request.form.get("time_zone", "").strip()
    site_settings.time_zone_from_browser(db(), instance(), _customer_id(), zone, context())
    return Response(status=204)
