"""The auditors' dashboard under ``/audit``: a login of its own (password, then a TOTP code),
search and filters over the whole log, per-supplier statistics with charts, anomaly flags,
CSV and JSON exports with their proofs, and "verify now".

An auditor's session holds ``auditor_id`` and never ``customer_id`` (each login clears the
session and issues a new token), so it is not a customer's session, and a customer's is not
an auditor's. Each request re-reads the account: a disabled auditor's session ends at once.
Every read here appends its own entries (:mod:`infomediary.services.auditing`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from infomediary.audit.log import ActorType
from infomediary.errors import AuditorLoginExpired, InvalidAuditFilter, InvalidCredentials
from infomediary.models import utcnow
from infomediary.services import Context, auditing, auditing_stats, auditors
from infomediary.text import parse_int
from infomediary.web.charts import bar_chart
from infomediary.web.db import db
from infomediary.web.limits import (
    AUDITOR_CODE_RATE,
    AUDITOR_EXPORT_RATE,
    AUDITOR_READ_RATE,
    AUDITOR_VERIFY_RATE,
    auditor_key,
    limiter,
    login_rate,
)
from infomediary.web.security import instance, request_id
from infomediary.web.sessions import ServerSession

bp = Blueprint("auditor", __name__, url_prefix="/audit")
F = TypeVar("F", bound=Callable[..., Any])
#: How long the code may follow the password.
PENDING = timedelta(minutes=5)


def current_auditor_id() -> str | None:
    value = session.get("auditor_id")
    return value if isinstance(value, str) else None


def _server_session() -> ServerSession:
    return cast(ServerSession, session)


def auditor_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        auditor_id = current_auditor_id()
        if auditor_id is None:
            return redirect(url_for("auditor.login_form"))
        if not auditors.active(db(), auditor_id):
            _server_session().destroy()
            return redirect(url_for("auditor.login_form"))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def _ctx() -> Context:
    return auditors.context(current_auditor_id() or "unknown", request_id())


# -- login -----------------------------------------------------------------------------------


@bp.get("/login")
def login_form() -> ResponseReturnValue:
    if current_auditor_id():
        return redirect(url_for("auditor.search"))
    return render_template("auditor/login.html", error=None, form={})


def _email_key() -> str:
    """Per account: the address's blind index, so the limiter never sees the address."""
    return "auditor-login:" + auditors.email_index(instance(), request.form.get("email", "")).hex()


def _failed(response: Response) -> bool:
    return response.status_code == 401


@bp.post("/login")
@limiter.limit(login_rate)
@limiter.limit(login_rate, key_func=_email_key, deduct_when=_failed)
def login() -> ResponseReturnValue:
    form = {"email": request.form.get("email", "")}
    try:
        auditor_id = auditors.check_password(
            db(), instance(), form["email"], request.form.get("password", ""), request_id()
        )
    except InvalidCredentials as exc:
        return render_template("auditor/login.html", error=exc.message, form=form), 401
    sess = _server_session()
    sess.clear()  # whoever was logged in here is not any more
    sess.rotate()
    sess["auditor_pending"] = auditor_id
    sess["auditor_pending_at"] = utcnow().isoformat()
    return redirect(url_for("auditor.code_form"))


def _pending() -> str:
    auditor_id = session.get("auditor_pending")
    started = session.get("auditor_pending_at")
    if not isinstance(auditor_id, str) or not isinstance(started, str):
        raise AuditorLoginExpired("Log in with your password first.")
    if datetime.fromisoformat(started) + PENDING < utcnow():
        session.pop("auditor_pending", None)
        raise AuditorLoginExpired("The code was not entered in time; log in again.")
    return auditor_id


@bp.get("/login/code")
def code_form() -> ResponseReturnValue:
    try:
        _pending()
    except AuditorLoginExpired:
        return redirect(url_for("auditor.login_form"))
    return render_template("auditor/code.html", error=None)


@bp.post("/login/code")
@limiter.limit(login_rate)
@limiter.limit(AUDITOR_CODE_RATE, key_func=auditor_key)
def code() -> ResponseReturnValue:
    try:
        auditor_id = _pending()
    except AuditorLoginExpired as exc:
        return render_template("auditor/login.html", error=exc.message, form={}), 401
    try:
        auditors.check_code(
            db(), instance(), auditor_id, request.form.get("code", ""), request_id()
        )
    except InvalidCredentials as exc:
        return render_template("auditor/code.html", error=exc.message), 401
    sess = _server_session()
    sess.clear()
    sess.rotate()
    sess["auditor_id"] = auditor_id
    return redirect(url_for("auditor.search"))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    _server_session().destroy()
    return redirect(url_for("auditor.login_form", logged_out=1))


# -- reading ---------------------------------------------------------------------------------


def _before() -> int | None:
    raw = request.args.get("before")
    if not raw:
        return None
    value = parse_int(raw, low=0, high=2**62)
    if value is None:
        raise InvalidAuditFilter({"before": "A whole number."}, "Some filters are not understood.")
    return value


def _filters() -> auditing.AuditFilter:
    return auditing.AuditFilter.parse(request.args.to_dict())


def _common() -> dict[str, Any]:
    return {
        "suppliers": auditing.supplier_choices(db()),
        "actor_types": [str(a) for a in ActorType],
        "outcomes": auditing.OUTCOMES,
    }


@bp.get("")
@auditor_required
@limiter.limit(AUDITOR_READ_RATE, key_func=auditor_key)
def search() -> ResponseReturnValue:
    filters = _filters()
    page = auditing.search(
        db(), instance(), current_auditor_id() or "", filters, _ctx(), before=_before()
    )
    return render_template(
        "auditor/search.html",
        page=page,
        filters=filters,
        export_limit=auditing.EXPORT_LIMIT,
        **_common(),
    )


def _range() -> auditing_stats.Range:
    return auditing_stats.Range.parse(request.args.get("since"), request.args.get("until"))


@bp.get("/supplier")
@auditor_required
@limiter.limit(AUDITOR_READ_RATE, key_func=auditor_key)
def supplier() -> ResponseReturnValue:
    """One supplier's statistics: ``?id=`` names it, ``since`` and ``until`` the range."""
    supplier_id = request.args.get("id", "")
    span = _range()
    stats = auditing_stats.supplier_stats(
        db(), instance(), current_auditor_id() or "", supplier_id, span, _ctx()
    )
    labels = [d.day.strftime("%d %b") for d in stats.days]
    charts = {
        "outcomes": bar_chart(
            "Accesses and refusals per day",
            labels,
            [
                ("allowed", [d.allowed for d in stats.days]),
                ("denied", [d.denied for d in stats.days]),
            ],
        ),
        "budget": bar_chart(
            "Privacy budget spent per day (epsilon)",
            labels,
            [("epsilon", [d.epsilon for d in stats.days])],
        ),
    }
    return render_template("auditor/supplier.html", stats=stats, charts=charts, span=span)


@bp.get("/anomalies")
@auditor_required
@limiter.limit(AUDITOR_READ_RATE, key_func=auditor_key)
def anomalies() -> ResponseReturnValue:
    span = _range()
    found = auditing_stats.anomalies(db(), instance(), span, _ctx())
    return render_template(
        "auditor/anomalies.html", anomalies=found, span=span, rules=auditing_stats
    )


def _export(fmt: str) -> Response:
    found = auditing.export(db(), instance(), current_auditor_id() or "", _filters(), _ctx())
    stamp = found.exported_at.strftime("%Y%m%dT%H%M%SZ")
    if fmt == "json":
        body = json.dumps(auditing.export_document(found), indent=2)
        response = Response(body, mimetype="application/json")
    else:
        out = io.StringIO()
        csv.writer(out).writerows(auditing.export_rows(found))
        response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="access-log-{stamp}.{fmt}"'
    return response


@bp.get("/export.csv")
@auditor_required
@limiter.limit(AUDITOR_EXPORT_RATE, key_func=auditor_key)
def export_csv() -> ResponseReturnValue:
    """The filtered range as CSV, each entry with its inclusion proof."""
    return _export("csv")


@bp.get("/export.json")
@auditor_required
@limiter.limit(AUDITOR_EXPORT_RATE, key_func=auditor_key)
def export_json() -> ResponseReturnValue:
    """The filtered range as JSON, each entry with its inclusion proof, and the tree's head."""
    return _export("json")


@bp.get("/verify")
@auditor_required
def verify_form() -> ResponseReturnValue:
    return render_template("auditor/verify.html", result=None)


@bp.post("/verify")
@auditor_required
@limiter.limit(AUDITOR_VERIFY_RATE, key_func=auditor_key)
def verify() -> ResponseReturnValue:
    result = auditing.verify_now(db(), instance(), _ctx())
    return render_template("auditor/verify.html", result=result)
