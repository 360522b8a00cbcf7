"""The customer's page per supplier: who they are, grants and receipts, what they read and
when, counts, offers and earnings; revoke, block, unblock and ask them to delete."""

from __future__ import annotations

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
from flask_babel import format_date, gettext

from infomediary.errors import NotFound
from infomediary.services import (
    agreements,
    erasure_requests,
    offer_inbox,
    supplier_dealings,
    supplier_page,
)
from infomediary.web.charts import bar_chart
from infomediary.web.db import db
from infomediary.web.limits import SUPPLIER_ACTION_RATE, limiter
from infomediary.web.security import context, instance, login_required
from policies.model import PURPOSES

bp = Blueprint("suppliers", __name__)


def _customer_id() -> str:
    return str(session["customer_id"])


def _base_url() -> str:
    return instance().settings.issuer.rstrip("/") or request.host_url.rstrip("/")


def _render(
    supplier_id: str, errors: dict[str, str] | None = None, status: int = 200
) -> ResponseReturnValue:
    found = supplier_page.supplier_page(db(), instance(), _customer_id(), supplier_id)
    chart = bar_chart(
        gettext("Accesses per week"),
        [format_date(week.start, "d MMM") for week in found.weeks],
        [
            ("allowed", [week.allowed for week in found.weeks]),
            ("denied", [week.denied for week in found.weeks]),
        ],
    )
    return render_template(
        "supplier.html",
        page=found,
        chart=chart,
        errors=errors or {},
        purposes=PURPOSES,
        verifies=lambda receipt: supplier_page.signature_verifies(instance(), receipt),
    ), status


@bp.get("/suppliers/<supplier_id>")
@login_required
def page(supplier_id: str) -> ResponseReturnValue:
    return _render(supplier_id)


@bp.get("/suppliers/<supplier_id>/agreements/<record_id>.jws")
@login_required
def agreement(supplier_id: str, record_id: str) -> ResponseReturnValue:
    """The customer's copy of a MyTerms agreement as the platform signed it."""
    found = agreements.agreement_of(db(), _customer_id(), record_id)
    if found.supplier_id != supplier_id:
        raise NotFound("No such agreement.")
    return Response(
        found.jws,
        mimetype="application/jose",
        headers={"Content-Disposition": f'attachment; filename="agreement-{record_id}.jws"'},
    )


@bp.post("/suppliers/<supplier_id>/grants/<grant_id>/revoke")
@login_required
@limiter.limit(SUPPLIER_ACTION_RATE)
def revoke(supplier_id: str, grant_id: str) -> ResponseReturnValue:
    supplier_page.revoke_supplier_grant(
        db(), instance(), _customer_id(), supplier_id, grant_id, context(), _base_url()
    )
    flash(gettext("Consent revoked. Their access ended immediately; a signed receipt was issued."))
    return redirect(url_for("suppliers.page", supplier_id=supplier_id))


@bp.post("/suppliers/<supplier_id>/revoke")
@login_required
@limiter.limit(SUPPLIER_ACTION_RATE)
def revoke_all(supplier_id: str) -> ResponseReturnValue:
    if not supplier_dealings.dealt_with(db(), instance(), _customer_id(), supplier_id):
        raise NotFound("No such supplier.")
    count = offer_inbox.revoke_all_grants(
        db(), instance(), _customer_id(), supplier_id, context(), _base_url()
    )
    flash(gettext("%(n)s consent(s) revoked; a signed receipt was issued for each.", n=count))
    return redirect(url_for("suppliers.page", supplier_id=supplier_id))


@bp.post("/suppliers/<supplier_id>/block")
@login_required
@limiter.limit(SUPPLIER_ACTION_RATE)
def block(supplier_id: str) -> ResponseReturnValue:
    if not supplier_dealings.dealt_with(db(), instance(), _customer_id(), supplier_id):
        raise NotFound("No such supplier.")
    choice = request.form.get("revoke_grants")
    if choice not in (None, "yes"):
        return _render(
            supplier_id, {"revoke_grants": gettext("Tick the box or leave it empty.")}, 400
        )
    revoked = offer_inbox.block_supplier(
        db(),
        instance(),
        _customer_id(),
        supplier_id,
        revoke_grants=choice == "yes",
        ctx=context(),
        base_url=_base_url(),
    )
    if choice == "yes":
        flash(gettext("Blocked: no more offers or counts. %(n)s consent(s) revoked.", n=revoked))
    else:
        flash(gettext("Blocked: no more offers or counts. Your consents are unchanged."))
    return redirect(url_for("suppliers.page", supplier_id=supplier_id))


@bp.post("/suppliers/<supplier_id>/unblock")
@login_required
@limiter.limit(SUPPLIER_ACTION_RATE)
def unblock(supplier_id: str) -> ResponseReturnValue:
    if not supplier_dealings.dealt_with(db(), instance(), _customer_id(), supplier_id):
        raise NotFound("No such supplier.")
    if offer_inbox.unblock_supplier(db(), instance(), _customer_id(), supplier_id, context()):
        flash(
            gettext(
                "Unblocked: their offers and counts may reach you again, as your policy allows."
            )
        )
    return redirect(url_for("suppliers.page", supplier_id=supplier_id))


@bp.post("/suppliers/<supplier_id>/erasure")
@login_required
@limiter.limit(SUPPLIER_ACTION_RATE)
def erasure(supplier_id: str) -> ResponseReturnValue:
    erasure_requests.request_erasure(
        db(), instance(), _customer_id(), supplier_id, context(), _base_url()
    )
    flash(gettext("Your request to delete your data was recorded and will be sent to them."))
    return redirect(url_for("suppliers.page", supplier_id=supplier_id) + "#erasure")
