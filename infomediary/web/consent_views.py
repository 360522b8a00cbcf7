"""The consent dashboard: grants by supplier, revoke, receipts (the policy is policy_views')."""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext

from infomediary.errors import NoCheckpoint
from infomediary.services import (
    checkpoints,
    consent_grants,
    consent_receipts,
)
from infomediary.web.db import db
from infomediary.web.security import context, instance, login_required
from policies.model import PURPOSES
from policies.taxonomy import CATEGORIES

bp = Blueprint("consents", __name__)


def _customer_id() -> str:
    return str(session["customer_id"])


def _page() -> ResponseReturnValue:
    s = db()
    grants = consent_grants.list_grants(s, _customer_id())
    return render_template(
        "consents.html",
        grants=grants,
        purposes=PURPOSES,
        CATEGORIES=CATEGORIES,
        supplier_url=_supplier_url,
    )


def _supplier_url(supplier_id: str) -> str:
    """The supplier's page, at its address even before its route is there."""
    if "suppliers.page" in current_app.view_functions:
        return url_for("suppliers.page", supplier_id=supplier_id)
    return f"/suppliers/{supplier_id}"


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
    flash(
        gettext(
            "Consent revoked. The supplier's access ended immediately; a signed receipt was issued."
        )
    )
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


@bp.get("/consents/<grant_id>/receipts")
@login_required
def receipts_list(grant_id: str) -> ResponseReturnValue:
    found = consent_receipts.receipts_of(db(), _customer_id(), grant_id)
    return render_template("receipts.html", grant_id=grant_id, receipts=found)
