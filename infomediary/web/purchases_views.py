"""The customer's purchases: the lines imported from retailers' files, the imports, an upload
form and deleting a line, an import or a retailer's lines.

Like the rest of the dashboard, every view acts on the logged-in customer only and no URL
names a purchase: the line, import or retailer to delete is a form field, and the service
answers "not found" for anything that is not the customer's.

An upload has its own size limit, ``import_max_bytes`` (``INFOMEDIARY_IMPORT_MAX_BYTES``),
apart from the app's ``MAX_CONTENT_LENGTH``: the request's limit is raised for this one route
before anything reads the body (the CSRF check reads the form first), and the file itself is
measured against the import limit. A body over it gets a friendly page, never a bare 413.
A reverse proxy in front of the app must allow bodies that large too (nginx:
``client_max_body_size``).

A file above ``upload_job_bytes`` (``INFOMEDIARY_UPLOAD_JOB_BYTES``) is not imported in the
request: it is kept sealed in chunks and imported by a job
(:mod:`infomediary.services.purchase_uploads`), whose status the page lists; while one is
queued or running the page asks the browser to reload it (a ``Refresh`` header: no script,
nothing the Content-Security-Policy forbids). Imports a retailer pushed are shown under its name.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO, cast

from flask import Blueprint, Response, flash, redirect, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_babel import gettext, ngettext
from werkzeug.exceptions import RequestEntityTooLarge

from connectors.money import exponent
from infomediary.errors import ImportRunning, ValidationFailed
from infomediary.services import purchase_uploads
from infomediary.services import purchases as purchase_service
from infomediary.text import has_control_characters
from infomediary.web.db import db
from infomediary.web.errors import error_response
from infomediary.web.security import context, instance, login_required, settings

bp = Blueprint("purchases", __name__)

#: Purchase lines shown per page.
PAGE_SIZE = 50
#: Room in an upload's body for the form's other fields and the multipart framing.
FORM_ALLOWANCE = 64 * 1024
_UPLOAD_ENDPOINT = "purchases.upload"
_MAX_PAGE_DIGITS = 6
#: Seconds before the page reloads itself while an upload is queued or running.
REFRESH_SECONDS = 5


def _customer_id() -> str:
    return str(session["customer_id"])


def _allow_large_upload() -> None:
    """Raise the body limit for the upload route only, before the CSRF check parses it."""
    if request.endpoint == _UPLOAD_ENDPOINT:
        request.max_content_length = settings().import_max_bytes + FORM_ALLOWANCE


@bp.record_once
def _install_upload_limit(state: BlueprintSetupState) -> None:
    # First of the app's before-request functions: whatever reads the form comes after it.
    state.app.before_request_funcs.setdefault(None, []).insert(0, _allow_large_upload)


def _too_large_message() -> str:
    limit = settings().import_max_bytes
    return (
        f"That file is too large to import here: the limit is {_size_words(limit)}. "
        "Nothing was imported. Split the file, or ask the operator to import it."
    )


def _size_words(size: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{size} bytes"


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> Response:
    return error_response(413, "payload_too_large", _too_large_message())


def _page_number(raw: str | None) -> int:
    if raw is None or not raw.isdigit() or len(raw) > _MAX_PAGE_DIGITS:
        return 1
    return max(int(raw), 1)


def _price(minor: int | None, currency: str | None) -> str:
    if minor is None or not currency:
        return ""
    digits = exponent(currency)
    value = abs(minor) / (10**digits) if digits else abs(minor)
    sign = "-" if minor < 0 else ""
    return f"{sign}{value:,.{digits}f} {currency}"


def _shown(line: dict[str, Any]) -> dict[str, Any]:
    return {
        **line,
        "date": str(line.get("ordered_at", ""))[:10],
        "price": _price(line.get("unit_price_minor"), line.get("currency")),
    }


def _render(status: int = 200, **extra: Any) -> ResponseReturnValue:
    s, inst, customer_id = db(), instance(), _customer_id()
    lines = purchase_service.list_purchases(s, inst, customer_id, context())
    imports = purchase_service.list_imports(s, inst, customer_id, context())
    pushed_by = purchase_uploads.supplier_names(s, [item["id"] for item in imports])
    uploads = purchase_uploads.list_uploads(s, inst, customer_id)
    pages = max((len(lines) + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    page = min(_page_number(request.args.get("page")), pages)
    start = (page - 1) * PAGE_SIZE
    retailers = sorted({line["retailer"] for line in lines}, key=str.casefold)
    html = render_template(
        "purchases.html",
        lines=[_shown(line) for line in lines[start : start + PAGE_SIZE]],
        total=len(lines),
        page=page,
        pages=pages,
        imports=[{**item, "pushed_by": pushed_by.get(item["id"])} for item in imports],
        uploads=uploads,
        refresh=REFRESH_SECONDS if purchase_uploads.active(uploads) else None,
        retailers=retailers,
        limit=_size_words(settings().import_max_bytes),
        job_size=_size_words(settings().upload_job_bytes),
        **extra,
    )
    headers = {"Refresh": str(REFRESH_SECONDS)} if purchase_uploads.active(uploads) else {}
    return html, status, headers


@bp.get("/purchases")
@login_required
def index() -> ResponseReturnValue:
    return _render()


def _source_name(filename: str | None) -> str:
    """The uploaded file's own name, without any folder the browser sent (it is sealed)."""
    raw = filename or ""
    name = PureWindowsPath(PurePosixPath(raw).name).name.strip()[:200]
    return name if name and not has_control_characters(name) else "upload"


def _size_of(stream: BinaryIO) -> int:
    start = stream.tell()
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(start)
    return size


@bp.post("/purchases/import")
@login_required
def upload() -> ResponseReturnValue:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render(400, upload_error="Choose a file to import.")
    stream = cast(BinaryIO, upload.stream)
    if _size_of(stream) > settings().import_max_bytes:
        return error_response(413, "payload_too_large", _too_large_message())
    skip = request.form.get("skip_invalid") == "yes"
    if _size_of(stream) > settings().upload_job_bytes:
        purchase_uploads.queue_file(
            db(),
            instance(),
            _customer_id(),
            stream,
            _source_name(upload.filename),
            skip_invalid=skip,
            ctx=context(),
        )
        flash(
            gettext(
                "Your file is large, so it is being imported in the background: its progress is "
                "under Uploads below, and its lines appear once the whole file is read."
            )
        )
        return redirect(url_for("purchases.index"))
    try:
        result = purchase_service.import_file(
            db(),
            instance(),
            _customer_id(),
            stream,
            _source_name(upload.filename),
            skip_invalid=skip,
            ctx=context(),
        )
    except purchase_service.ImportRefused as refused:
        return _render(400, refused=refused.result)
    except ValidationFailed as exc:
        return _render(400, upload_error=exc.message)
    except ImportRunning as exc:
        return _render(409, upload_error=exc.message)
    message = ngettext(
        "Imported %(num)d new line (%(format)s); %(held)d already held",
        "Imported %(num)d new lines (%(format)s); %(held)d already held",
        result.imported,
        format=result.format,
        held=result.duplicates,
    )
    if result.rejected:
        message += gettext(
            "; %(skipped)d skipped because they cannot be read", skipped=result.rejected
        )
    numbers = [m.group(1) for error in result.errors if (m := _LINE_NUMBER.search(error))]
    if numbers:
        # line numbers only: a flashed message waits in the session store, and what a bad
        # cell held (or the file's name) is the customer's purchase data
        more = ", ..." if result.rejected > len(numbers) else ""
        message += " " + ngettext(
            "(line %(lines)s)", "(lines %(lines)s)", len(numbers), lines=", ".join(numbers) + more
        )
    flash(message + ".")
    return redirect(url_for("purchases.index"))


_LINE_NUMBER = re.compile(r", line (\d+): ")


@bp.post("/purchases/delete")
@login_required
def delete_line() -> ResponseReturnValue:
    count = purchase_service.delete_purchase(
        db(), instance(), _customer_id(), request.form.get("purchase", ""), context()
    )
    flash(ngettext("Deleted %(num)d line.", "Deleted %(num)d lines.", count))
    return redirect(url_for("purchases.index"))


@bp.post("/purchases/imports/delete")
@login_required
def delete_import() -> ResponseReturnValue:
    count = purchase_service.delete_import(
        db(), instance(), _customer_id(), request.form.get("import", ""), context()
    )
    flash(
        ngettext(
            "Deleted the import and its %(num)d line.",
            "Deleted the import and its %(num)d lines.",
            count,
        )
    )
    return redirect(url_for("purchases.index"))


@bp.post("/purchases/retailers/delete")
@login_required
def delete_retailer() -> ResponseReturnValue:
    retailer = request.form.get("retailer", "")
    count = purchase_service.delete_retailer(db(), instance(), _customer_id(), retailer, context())
    flash(  # no name in the session store
        ngettext(
            "Deleted %(num)d line from that retailer.",
            "Deleted %(num)d lines from that retailer.",
            count,
        )
    )
    return redirect(url_for("purchases.index"))
