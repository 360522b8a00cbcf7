"""The customer's intents: ``/intents`` lists them with the form to post one, ``/intents/<id>``
shows one with its bids side by side, to accept one (and share what delivery needs, or not
yet) or to cancel the intent. The form is read here, every field's error at once in the page's
language; the use cases (:mod:`infomediary.services.intents_dashboard`) check again, seal and
log as the agent's API does."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision
from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_currency, format_date, gettext

from infomediary.errors import IntentClosed, ValidationFailed
from infomediary.models import utcnow
from infomediary.services import intents_dashboard
from infomediary.services.intents import MAX_DESCRIPTION, MAX_EVERY, IntentInput, Recurrence, today
from infomediary.statuses import RecurrenceUnit
from infomediary.text import has_control_characters, parse_int
from infomediary.web.db import db
from infomediary.web.i18n import select_time_zone
from infomediary.web.limits import INTENT_ACTION_RATE, INTENT_POST_RATE, limiter
from infomediary.web.mailer import site_url
from infomediary.web.security import context, instance, login_required

bp = Blueprint("intents", __name__)

#: The currencies a budget may be given in, the first preselected.
CURRENCIES = ("AUD", "NZD", "USD", "EUR", "GBP")
#: An amount as the form takes it: ASCII digits, and at most two decimals after a point or comma.
AMOUNT = re.compile(r"[0-9]{1,9}(?:[.,][0-9]{1,2})?")
#: The largest budget the form takes, in major units.
MAX_BUDGET = Decimal("1000000")
#: The longest term of a recurring intent, as the API allows.
MAX_TERM_DAYS = 5 * 366
FIELDS = (
    "category",
    "description",
    "needed_by",
    "budget",
    "currency",
    "region",
    "recurrence",
    "every",
    "unit",
    "until",
    "terms",
    "closes",
    "auto_accept",
)


def _customer_id() -> str:
    return str(session["customer_id"])


def _rate_key() -> str:
    return f"intents:{session.get('customer_id', '-')}"


def _posted(response: Response) -> bool:
    """Only intents actually posted count against the posting limit."""
    return response.status_code == 303


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _read_form(
    form: dict[str, str], options: dict[str, Any]
) -> tuple[IntentInput | None, dict[str, str]]:
    """The form as an intent, or every field's error at once."""
    errors: dict[str, str] = {}
    now = today()
    category = form["category"]
    if category not in {row[0] for row in options["interests"]}:
        errors["category"] = gettext("Choose what the intent is about from the list.")
    description = form["description"].strip()
    if not description:
        errors["description"] = gettext("Say what you want.")
    elif len(description) > MAX_DESCRIPTION:
        errors["description"] = gettext("Use at most %(limit)d characters.", limit=MAX_DESCRIPTION)
    elif has_control_characters(description, multiline=True):
        errors["description"] = gettext("Control characters (such as NUL) are not allowed here.")
    needed_by = _date(form["needed_by"])
    if needed_by is None:
        errors["needed_by"] = gettext("Enter a date such as %(example)s.", example=now)
    elif needed_by < now:
        errors["needed_by"] = gettext("Choose a date that is not in the past.")
    budget: int | None = None
    if form["budget"].strip():
        written = form["budget"].strip()
        amount = Decimal(written.replace(",", ".")) if AMOUNT.fullmatch(written) else None
        if amount is None:
            errors["budget"] = gettext("Enter an amount such as 90 or 89.50.")
        elif amount <= 0 or amount > MAX_BUDGET:
            errors["budget"] = gettext(
                "Enter a budget above zero and at most %(max)s.", max=f"{MAX_BUDGET:,}"
            )
        else:
            budget = int(amount * 100)
    currency = form["currency"] or CURRENCIES[0]
    if currency not in CURRENCIES:
        errors["currency"] = gettext("Choose a currency from the list.")
    region = form["region"] or None
    if region is not None and region not in options["regions"]:
        errors["region"] = gettext("Choose your state or territory from the list, or none.")
    recurrence: Recurrence | None = None
    if form["recurrence"] not in ("once", "repeat"):
        errors["recurrence"] = gettext("Choose once, or repeatedly.")
    elif form["recurrence"] == "repeat":
        every = parse_int(form["every"].strip(), low=1, high=MAX_EVERY) or 0
        if not every:
            errors["every"] = gettext("Enter a number from 1 to %(max)d.", max=MAX_EVERY)
        if form["unit"] not in tuple(RecurrenceUnit):
            errors["unit"] = gettext("Choose weeks or months.")
        until = _date(form["until"])
        if until is None:
            errors["until"] = gettext(
                "Enter the term's last day, such as %(example)s.", example=now
            )
        elif needed_by is not None and (
            until <= needed_by or until - needed_by > timedelta(days=MAX_TERM_DAYS)
        ):
            errors["until"] = gettext(
                "The term ends after the first date, and within five years of it."
            )
        if not errors.keys() & {"every", "unit", "until"} and until is not None:
            recurrence = Recurrence(every, form["unit"], until)
    deadline = _deadline(form, needed_by, errors)
    auto_accept = form["auto_accept"] == "yes"
    said_already = "closes" in errors or "budget" in errors
    if auto_accept and (deadline is None or budget is None) and not said_already:
        errors["auto_accept"] = gettext("The automatic choice needs a closing date and a budget.")
    terms = form["terms"]
    if terms not in {agreement_id for agreement_id, _, _ in options["agreements"]}:
        errors["terms"] = gettext("Choose one of the agreements listed.")
    if errors or needed_by is None:
        return None, errors
    return IntentInput(
        category=category,
        description=description,
        needed_by=needed_by,
        max_price_minor=budget,
        currency=currency if budget is not None else None,
        region=region,
        recurrence=recurrence,
        terms=terms,
        deadline=deadline,
        auto_accept=auto_accept,
    ), {}


def _deadline(
    form: dict[str, str], needed_by: date | None, errors: dict[str, str]
) -> datetime | None:
    """When bidding closes: the end of the chosen day in the customer's time zone (at the
    latest the end of the date needed), or None when no day is chosen."""
    if not form["closes"].strip():
        return None
    day = _date(form["closes"])
    if day is None:
        errors["closes"] = gettext("Enter a date such as %(example)s.", example=today())
        return None
    if day < today():
        errors["closes"] = gettext("Choose a date that is not in the past.")
        return None
    if needed_by is not None and day > needed_by:
        errors["closes"] = gettext("Bidding closes on or before the date needed.")
        return None
    end = datetime.combine(day + timedelta(days=1), time(), ZoneInfo(select_time_zone()))
    if needed_by is None:
        return end.astimezone(UTC)
    latest = datetime.combine(needed_by + timedelta(days=1), time(), UTC)
    closes = min(end.astimezone(UTC), latest)
    if closes <= utcnow():
        errors["closes"] = gettext("Choose a date that is not in the past.")
        return None
    return closes


def _render(
    form: dict[str, str], errors: dict[str, str], status: int = 200, again: str | None = None
) -> ResponseReturnValue:
    options = intents_dashboard.form_options(db(), instance(), _customer_id())
    mine = intents_dashboard.list_intents(db(), instance(), _customer_id(), context())
    renewed = next((v for v in mine if v["id"] == again), None) if again else None
    if renewed is not None:  # "post it again": the form filled in for another term
        form = intents_dashboard.renewal_form(renewed)
    shown = {"terms": options["default_terms"], "recurrence": "once", "unit": "month"} | {
        k: v for k, v in form.items() if v
    }
    return render_template(
        "intents.html",
        intents=mine,
        options=options,
        currencies=CURRENCIES,
        form=shown,
        errors=errors,
        max_description=MAX_DESCRIPTION,
        max_every=MAX_EVERY,
        today=today(),
    ), status


@bp.get("/intents")
@login_required
def index() -> ResponseReturnValue:
    return _render({}, {}, again=request.args.get("again"))


@bp.post("/intents")
@login_required
@limiter.limit(INTENT_POST_RATE, key_func=_rate_key, deduct_when=_posted)
def post() -> ResponseReturnValue:
    form = {name: request.form.get(name, "") for name in FIELDS}
    options = intents_dashboard.form_options(db(), instance(), _customer_id())
    data, errors = _read_form(form, options)
    if data is None:
        # the form comes back as typed, every field's error shown at once; nothing written
        return _render(form, errors, 400)
    try:
        posted = intents_dashboard.post(db(), instance(), _customer_id(), data, context())
    except ValidationFailed as exc:
        names = {"deadline": "closes", "max_price_minor": "budget"}
        return _render(form, {names.get(k, k): v for k, v in exc.errors.items()}, 400)
    flash(gettext("Your intent is posted. Suppliers of its sector can bid on it now."))
    return redirect(url_for("intents.show", intent_id=posted["id"]), 303)


@bp.get("/intents/<intent_id>")
@login_required
def show(intent_id: str) -> ResponseReturnValue:
    found = intents_dashboard.detail(db(), instance(), _customer_id(), intent_id, context())
    return render_template("intent.html", intent=found["intent"], bids=found["bids"])


@bp.post("/intents/<intent_id>/bids/<bid_id>/accept")
@login_required
@limiter.limit(INTENT_ACTION_RATE, key_func=_rate_key)
def accept(intent_id: str, bid_id: str) -> ResponseReturnValue:
    share = request.form.get("share") == "yes"
    try:
        winner = intents_dashboard.accept(
            db(), instance(), _customer_id(), intent_id, bid_id, share, context(), site_url()
        )
    except IntentClosed:
        flash(gettext("This bid can no longer be accepted: the intent or the bid is closed."))
        return redirect(url_for("intents.show", intent_id=intent_id), 303)
    if share:
        flash(
            gettext(
                "You accepted the bid of %(supplier)s and shared your name and address for "
                "the delivery.",
                supplier=winner,
            )
        )
    else:
        flash(
            gettext(
                "You accepted the bid of %(supplier)s. It has not seen your name or address: "
                "share them below when you are ready.",
                supplier=winner,
            )
        )
    return redirect(url_for("intents.show", intent_id=intent_id), 303)


@bp.post("/intents/<intent_id>/cancel")
@login_required
@limiter.limit(INTENT_ACTION_RATE, key_func=_rate_key)
def cancel(intent_id: str) -> ResponseReturnValue:
    try:
        intents_dashboard.cancel(db(), instance(), _customer_id(), intent_id, context(), site_url())
    except IntentClosed:
        flash(gettext("This intent is cancelled already."))
        return redirect(url_for("intents.show", intent_id=intent_id), 303)
    flash(gettext("Your intent is cancelled; suppliers who bid are told they were not chosen."))
    return redirect(url_for("intents.show", intent_id=intent_id), 303)


@bp.app_template_filter("calendar_date")
def calendar_date(value: date | str | None) -> str:
    """A calendar day (an intent's date, a bid's validity) in the page's language: a date
    is no moment, so no time zone moves it."""
    if not value:
        return ""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return str(format_date(day, "medium"))


@bp.app_template_filter("minor_amount")
def minor_amount(value: int | None, currency: str | None) -> str:
    """An amount in its currency's minor unit, shown in the page's language (``A$89.50``;
    a currency without minor units, such as JPY, as it is)."""
    if value is None or currency is None:
        return ""
    return str(format_currency(Decimal(value).scaleb(-get_currency_precision(currency)), currency))
