"""The customer's proof file: "Download my access log with proofs" on the activity page.

A POST (CSRF-checked, rate-limited per account as well as by the application's ceiling on
every unsafe request): the download is logged, a checkpoint covering it is signed, and the
file is served as an attachment. There is no GET: the URL answers a GET with 405.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request, session
from flask.typing import ResponseReturnValue

from infomediary.services import log_proofs
from infomediary.web.db import db
from infomediary.web.limits import limiter
from infomediary.web.security import context, instance, login_required

bp = Blueprint("log_proofs", __name__)

#: Each download rebuilds up to 2,000 proofs and 100 member trees, and signs a checkpoint.
DOWNLOAD_RATE = "10 per minute;60 per hour"


def _account_key() -> str:
    return f"log-proofs:{session.get('customer_id', '-')}"


@bp.post("/activity/proofs")
@login_required
@limiter.limit(DOWNLOAD_RATE, key_func=_account_key)
def download() -> ResponseReturnValue:
    """The proof file; ``since`` (a checkpoint size the browser kept) and ``before`` (the
    ``page.older`` of a previous file, for older entries) are optional."""
    since = log_proofs.parse_position(request.form.get("since"), "since")
    before = log_proofs.parse_position(request.form.get("before"), "before")
    document = log_proofs.download(
        db(), instance(), str(session["customer_id"]), context(), since, before=before
    )
    return Response(
        json.dumps(document, indent=1, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{log_proofs.FILENAME}"'},
    )
