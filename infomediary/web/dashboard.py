"""The customer's dashboard: overview, profile, activity ("Who accessed my data"), export,
password and erasure. Every view acts on the logged-in customer only; no URL names a
customer, so there is no other customer's id to try."""

from __future__ import annotations

import json
from typing import Any, cast

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from infomediary.errors import NotFound, ValidationFailed
from infomediary.services import (
    access_log,
    customer_keys,
    customers,
    derived_interests,
    email_change,
    erasure,
    export_csv,
    exports,
    exposure,
    intents_dashboard,
    privacy_ledger,
    profiles,
    wallet,
)
from infomediary.services.profile_fields import (
    CONTACT_CHANNELS,
    DEFAULT_PREFERENCES,
    FIELDS,
    LANGUAGES,
    OFFER_FREQUENCIES,
)
from infomediary.web.db import db
from infomediary.web.limits import EXPORT_RATE, limiter, login_rate
from infomediary.web.mailer import deliver, site_url
from infomediary.web.security import context, instance, login_required
from infomediary.web.sessions import ServerSession

bp = Blueprint("dashboard", __name__)

_TEXT_FIELDS = (
    "name",
    "phone",
    "street_address",
    "locality",
    "postcode",
    "birth_year",
    "household_size",
)


def _customer_id() -> str:
    return str(session["customer_id"])


@bp.get("/dashboard")
@login_required
def overview() -> ResponseReturnValue:
    recent = access_log.timeline(
        db(), instance(), _customer_id(), access_log.TimelineFilter(), 1, 5
    )
    standing = privacy_ledger.standing(db(), instance(), _customer_id())
    rewards_wallet = {
        "available_cents": wallet.available_cents(db(), _customer_id()),
        "pending_cents": wallet.pending_cents(db(), _customer_id()),
        "pending_offers": wallet.pending_offers(db(), _customer_id()),
    }
    return render_template(
        "dashboard.html",
        recent=recent,
        standing=standing,
        rewards_wallet=rewards_wallet,
        since_last_visit=wallet.since_last_visit(db(), _customer_id()),
        intents=intents_dashboard.overview(db(), _customer_id()),
    )


def _profile_form() -> dict[str, Any]:
    """Turn the HTML form into the service's field mapping (the service validates).

    Only fields the form actually sent are included, so a partial post never clears the
    others. Checkboxes send nothing when none is ticked: the form marks the interests
    fieldset as shown with a hidden ``interests_shown`` field.
    """
    form = request.form
    raw: dict[str, Any] = {name: form[name] for name in _TEXT_FIELDS if name in form}
    if "interests" in form or "interests_shown" in form:
        raw["interests"] = form.getlist("interests")
    sent_prefs = {key: form[f"pref_{key}"] for key in DEFAULT_PREFERENCES if f"pref_{key}" in form}
    if sent_prefs:
        raw["preferences"] = {**DEFAULT_PREFERENCES, **sent_prefs}
    return raw


def _render_profile(
    values: dict[str, Any], errors: dict[str, str], status: int = 200, email: str | None = None
) -> ResponseReturnValue:
    derived = derived_interests.customer_view(db(), instance(), _customer_id(), context())
    return render_template(
        "profile.html",
        email=email,
        derived=derived,
        values=values,
        errors=errors,
        fields=FIELDS,
        channels=CONTACT_CHANNELS,
        frequencies=OFFER_FREQUENCIES,
        languages=LANGUAGES,
        defaults=DEFAULT_PREFERENCES,
    ), status


@bp.get("/profile")
@login_required
def profile() -> ResponseReturnValue:
    values = profiles.read_profile(db(), instance(), _customer_id(), context())
    return _render_profile(values, {}, email=values.pop("email"))


@bp.post("/profile")
@login_required
def edit_profile() -> ResponseReturnValue:
    raw = _profile_form()
    try:
        changed = profiles.update_profile(db(), instance(), _customer_id(), raw, context())
    except ValidationFailed as exc:
        # Show what was typed, so the customer can correct it; the email is not editable here.
        return _render_profile(raw, exc.errors, 400)
    flash(gettext("Profile saved.") if changed else gettext("Nothing changed."))
    return redirect(url_for("dashboard.profile"))


@bp.post("/profile/from-purchases")
@login_required
def choose_derived() -> ResponseReturnValue:
    """Remove, restore or adopt one interest the customer's purchases suggest."""
    tag, action = request.form.get("interest", ""), request.form.get("action", "")
    try:
        derived_interests.choose(db(), instance(), _customer_id(), tag, action, context())
    except NotFound:
        flash(gettext("Your purchases suggest no such interest."))
        return redirect(url_for("dashboard.profile", _anchor="from-purchases")), 303
    except ValidationFailed:
        flash(gettext("Choose remove, restore or add to my interests."))
        return redirect(url_for("dashboard.profile", _anchor="from-purchases")), 303
    flash(
        {
            "remove": gettext("Removed: it will not be used until you restore it."),
            "restore": gettext("Restored."),
            "adopt": gettext("Added to your interests."),
        }[action]
    )
    return redirect(url_for("dashboard.profile", _anchor="from-purchases"))


@bp.get("/activity")
@login_required
def activity() -> ResponseReturnValue:
    args = request.args.to_dict()
    filters = access_log.TimelineFilter.parse(args)
    page_number = access_log.parse_page(args.get("page"))
    page = access_log.timeline(db(), instance(), _customer_id(), filters, page_number)
    standing = privacy_ledger.standing(db(), instance(), _customer_id())
    return render_template(
        "activity.html",
        page=page,
        standing=standing,
        filters=filters,
        actions=access_log.ACTIONS,
        outcomes=access_log.OUTCOMES,
    )


@bp.get("/counts")
@login_required
def counts() -> ResponseReturnValue:
    """Every release that used the customer's data, newest first, with totals and their cap."""
    before = _cursor(request.args.get("before"))
    page = exposure.exposure_page(db(), instance(), _customer_id(), before)
    return render_template("counts.html", exposure=page, first_page=before is None)


def _cursor(raw: str | None) -> int | None:
    """A page cursor from the query string; anything else is the first page."""
    if raw is None or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


def _account_page(errors: dict[str, str], status: int = 200, **form: str) -> ResponseReturnValue:
    verified = customer_keys.is_confirmed(db(), _customer_id())
    return render_template("account.html", errors=errors, verified=verified, form=form), status


@bp.get("/account")
@login_required
def account() -> ResponseReturnValue:
    return _account_page({})


def _export_key() -> str:
    return f"export:{session.get('customer_id', '-')}"


@bp.post("/account/export")
@login_required
@limiter.limit(EXPORT_RATE, key_func=_export_key)
def export() -> ResponseReturnValue:
    """Everything held about the customer: one JSON document (``format=json``, the default)
    or a zip of CSV files (``format=csv``), each described by the published schema."""
    chosen = request.form.get("format", "json")
    if chosen not in ("json", "csv"):
        return _account_page({"format": gettext("Choose JSON or CSV files.")}, 400)
    schema_url = site_url() + url_for("static", filename="export.schema.json")
    if chosen == "csv":
        data, exported_at = export_csv.export_zip(
            db(), instance(), _customer_id(), context(), schema_url=schema_url
        )
        return _download(data, "application/zip", exported_at, "zip")
    document = exports.export(db(), instance(), _customer_id(), context(), schema_url=schema_url)
    body = json.dumps(document, indent=2, ensure_ascii=False)
    return _download(body.encode("utf-8"), "application/json", document["exported_at"], "json")


def _download(data: bytes, mimetype: str, exported_at: str, suffix: str) -> Response:
    stamp = exported_at[:10].replace("-", "")
    return Response(
        data,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="infomediary-export-{stamp}.{suffix}"',
            "Cache-Control": "no-store",
        },
    )


def _account_key() -> str:
    """Password checks on a logged-in account are limited per account, not per address."""
    return f"account:{session.get('customer_id', '-')}"


@bp.post("/account/password")
@login_required
@limiter.limit(login_rate, key_func=_account_key)
def change_password() -> ResponseReturnValue:
    customer_id = _customer_id()
    try:
        customers.change_password(
            db(),
            instance(),
            customer_id,
            request.form.get("current_password", ""),
            request.form.get("new_password", ""),
            context(),
        )
    except ValidationFailed as exc:
        return _account_page(exc.errors, 400)
    sess = cast(ServerSession, session)
    sess.clear()
    sess.rotate()
    sess["customer_id"] = customer_id
    flash(gettext("Password changed. Every other session has been signed out."))
    return redirect(url_for("dashboard.account"))


@bp.post("/account/email")
@login_required
@limiter.limit(login_rate, key_func=_account_key)
def change_email() -> ResponseReturnValue:
    """Ask to move the account to another address: confirmed from a link sent there."""
    new_email = request.form.get("new_email", "")
    try:
        email_change.request_email_change(
            db(),
            instance(),
            deliver,
            _customer_id(),
            password=request.form.get("email_current_password", ""),
            new_email=new_email,
            base_url=site_url(),
            ctx=context(),
        )
    except ValidationFailed as exc:
        # this form's password field has its own id on a page with two password forms
        errors = {
            "email_current_password" if name == "current_password" else name: message
            for name, message in exc.errors.items()
        }
        return _account_page(errors, 400, new_email=new_email)
    flash(
        gettext(
            "We sent a confirmation link to the new address; your address changes when you "
            "open it. Until then, log in with the current one."
        )
    )
    return redirect(url_for("dashboard.account"))


@bp.post("/account/delete")
@login_required
@limiter.limit(login_rate, key_func=_account_key)
def delete_account() -> ResponseReturnValue:
    if request.form.get("confirm") != "DELETE":
        return _account_page({"confirm": "Type DELETE to confirm."}, 400)
    try:
        erasure.erase(db(), instance(), _customer_id(), request.form.get("password", ""), context())
    except ValidationFailed as exc:
        return _account_page(exc.errors, 400)
    sess = cast(ServerSession, session)
    sess.clear()
    sess.rotate()
    flash(gettext("Your account and profile are erased. Their encryption key has been destroyed."))
    return redirect(url_for("pages.index"))
