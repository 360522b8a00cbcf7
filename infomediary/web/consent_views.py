"""The consent dashboard: grants by supplier, revoke, receipts, policy and preview."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from infomediary.errors import NoCheckpoint, ValidationFailed
from infomediary.models import Supplier
from infomediary.services import (
    checkpoints,
    consent_grants,
    consent_receipts,
    customer_policy,
    decisions,
    policy_store,
)
from infomediary.statuses import SupplierKind, SupplierStatus
from infomediary.web.db import db
from infomediary.web.security import context, instance, login_required
from policies.model import PURPOSES, Mode
from policies.taxonomy import CATEGORIES
from policies.templates import TEMPLATES, template_description
from policies.validation import describe_rule

bp = Blueprint("consents", __name__)

POLICY_CATEGORIES = (
    "identity",
    "demographics",
    "interests",
    "purchases",
    "preferences",
    "health",
    "religion",
    "politics",
    "sexuality",
    "ethnicity",
)


def _customer_id() -> str:
    return str(session["customer_id"])


def _page(
    errors: dict[str, str] | None = None,
    preview: object = None,
    status: int = 200,
    preview_supplier: Supplier | None = None,
) -> ResponseReturnValue:
    s = db()
    customer_id = _customer_id()
    grants = consent_grants.list_grants(s, customer_id)
    policy = policy_store.load_policy(s, instance(), customer_id)
    known = {g.supplier.id: g.supplier for g in grants}
    active_suppliers = (
        s.execute(
            select(Supplier)
            .where(Supplier.status == SupplierStatus.ACTIVE, Supplier.kind == SupplierKind.SUPPLIER)
            .order_by(Supplier.name)
        )
        .scalars()
        .all()
    )
    return render_template(
        "consents.html",
        grants=grants,
        policy=policy,
        describe_rule=describe_rule,
        templates={name: template_description(name) for name in TEMPLATES},
        purposes=PURPOSES,
        modes=[m.value for m in Mode],
        categories=POLICY_CATEGORIES,
        suppliers=active_suppliers or list(known.values()),
        errors=errors or {},
        preview=preview,
        preview_supplier=preview_supplier,
        CATEGORIES=CATEGORIES,
        district=customer_policy.district_counting(policy),
    ), status


@bp.get("/consents")
@login_required
def index() -> ResponseReturnValue:
    return _page()


@bp.post("/consents/<grant_id>/revoke")
@login_required
def revoke(grant_id: str) -> ResponseReturnValue:
    consent_grants.revoke_grant(
        db(), instance(), _customer_id(), grant_id, context(), base_url=request.host_url.rstrip("/")
    )
    flash("Consent revoked. The supplier's access ended immediately; a signed receipt was issued.")
    return redirect(url_for("consents.index"))


@bp.get("/consents/<grant_id>/receipts/<receipt_id>.jws")
@login_required
def receipt(grant_id: str, receipt_id: str) -> ResponseReturnValue:
    found = consent_receipts.receipt_of(db(), _customer_id(), receipt_id)
    if found.grant_id != grant_id:
        return render_template(
            "error.html", status=404, code="not_found", message="There is nothing here.", errors={}
        ), 404
    return Response(
        found.jws,
        mimetype="application/jose",
        headers={"Content-Disposition": f'attachment; filename="consent-receipt-{receipt_id}.jws"'},
    )


@bp.get("/consents/<grant_id>/receipts/<receipt_id>")
@login_required
def receipt_page(grant_id: str, receipt_id: str) -> ResponseReturnValue:
    """One receipt in words: what it says, its log entry, and whether its proof is ready."""
    found = consent_receipts.receipt_proof(db(), instance(), _customer_id(), grant_id, receipt_id)
    return render_template(
        "receipt.html",
        grant_id=grant_id,
        found=found,
        Status=consent_receipts.ProofStatus,
        CATEGORIES=CATEGORIES,
    )


@bp.get("/consents/<grant_id>/receipts/<receipt_id>.proof.json")
@login_required
def receipt_proof(grant_id: str, receipt_id: str) -> ResponseReturnValue:
    """The receipt with, unsigned beside it, the inclusion proof of its log entry and the
    latest checkpoint covering it (``status`` ``pending`` and ``retry_after`` seconds before
    one is signed). Read only: a GET never signs a checkpoint."""
    found = consent_receipts.receipt_proof(db(), instance(), _customer_id(), grant_id, receipt_id)
    return Response(
        json.dumps(found.bundle(), indent=2) + "\n",
        mimetype="application/json",
        headers={
            "Content-Disposition": (
                f'attachment; filename="consent-receipt-{found.receipt.id}.proof.json"'
            )
        },
    )


@bp.app_context_processor
def _log_witness() -> dict[str, Any]:
    """``log_witness()`` for the page that loads the browser's witness of the log
    (static/js/log-witness.js): whether any checkpoint is signed yet, so that a browser with
    nothing kept asks for none before there is one."""

    def state() -> dict[str, Any]:
        try:
            checkpoints.latest_note(db())
        except NoCheckpoint:
            return {"signed": False}
        return {"signed": True}

    return {"log_witness": state}


@bp.post("/policy/template")
@login_required
def choose_template() -> ResponseReturnValue:
    try:
        customer_policy.apply_template(
            db(), instance(), _customer_id(), request.form.get("template", ""), context()
        )
    except ValidationFailed as exc:
        return _page(exc.errors, status=400)
    flash("Policy template applied. It takes effect on the very next access.")
    return redirect(url_for("consents.index"))


@bp.post("/policy/rule")
@login_required
def change_rule() -> ResponseReturnValue:
    try:
        customer_policy.set_rule(
            db(),
            instance(),
            _customer_id(),
            category=request.form.get("category", ""),
            purpose=request.form.get("purpose", ""),
            mode=request.form.get("mode", ""),
            ctx=context(),
        )
    except ValidationFailed as exc:
        return _page(exc.errors, status=400)
    flash("Rule saved. It takes effect on the very next access.")
    return redirect(url_for("consents.index"))


@bp.post("/policy/district")
@login_required
def choose_district_counting() -> ResponseReturnValue:
    """The postal-district control: a checked box sends ``district=yes``, an unchecked one
    nothing."""
    choice = request.form.get("district")
    if choice not in (None, "yes"):
        return _page({"district": "Tick the box or leave it empty."}, status=400)
    customer_policy.set_district_counting(
        db(), instance(), _customer_id(), allowed=choice == "yes", ctx=context()
    )
    flash("Your choice is saved. It takes effect on the very next count.")
    return redirect(url_for("consents.index") + "#district")


@bp.get("/consents/preview")
@login_required
def preview() -> ResponseReturnValue:
    s = db()
    supplier = s.get(Supplier, request.args.get("supplier", ""))
    purpose = request.args.get("purpose", "")
    if (
        supplier is None
        or supplier.status != SupplierStatus.ACTIVE
        or supplier.kind != SupplierKind.SUPPLIER
    ):
        return _page({"supplier": "Choose a supplier."}, status=400)
    try:
        verdict = decisions.preview(s, instance(), _customer_id(), supplier, purpose)
    except ValidationFailed as exc:
        return _page(exc.errors, status=400)
    return _page(preview=verdict, preview_supplier=supplier)


@bp.get("/consents/<grant_id>/receipts")
@login_required
def receipts_list(grant_id: str) -> ResponseReturnValue:
    found = consent_receipts.receipts_of(db(), _customer_id(), grant_id)
    return render_template("receipts.html", grant_id=grant_id, receipts=found)
