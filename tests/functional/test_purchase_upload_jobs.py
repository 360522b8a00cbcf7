"""A large file uploaded on "My purchases" is kept sealed in chunks and imported by the
``purchase_upload`` job: all or nothing as in the request, its status on the page (queued,
running with the lines read so far, done with its counts, or refused with the bad lines), its
chunks deleted when the job ends, and gone with the account."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from infomediary import create_app
from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import Purchase, PurchaseImport, PurchaseUpload, PurchaseUploadChunk
from infomediary.services import Context, erasure, exports, purchase_uploads, purchases
from infomediary.services.jobs import run_pending
from tests.conftest import Auth, csrf
from tests.functional.test_purchases_import import AMAZON, amazon_file

EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
PURCHASE_RE = r'name="purchase" value="'


@pytest.fixture
def app(inst: Instance) -> Flask:
    """The app with a job threshold of 8 KiB: the fixture's 8 lines stay synchronous."""
    flask_app = create_app(replace(inst.settings, upload_job_bytes=8192), instance=inst)
    flask_app.config["TESTING"] = True
    return flask_app


@pytest.fixture
def customer(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert Auth(client).signup(email=EMAIL, password=PASSWORD).status_code == 302
    return client


def _customer_id(inst: Instance) -> str:
    with inst.sessions() as session:
        return purchases.customer_by_email(session, inst, EMAIL)


def _upload(client: FlaskClient, content: bytes, name: str = "orders.csv", **form: Any) -> Any:
    data: dict[str, object] = {
        "csrf_token": csrf(client, "/purchases"),
        "file": (io.BytesIO(content), name),
        **form,
    }
    return client.post("/purchases/import", data=data, content_type="multipart/form-data")


def _count(inst: Instance, model: Any) -> int:
    with inst.sessions() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _uploads(inst: Instance) -> list[PurchaseUpload]:
    with inst.sessions() as session:
        return list(session.execute(select(PurchaseUpload)).scalars())


def _page(client: FlaskClient) -> tuple[str, Any]:
    response = client.get("/purchases")
    assert response.status_code == 200
    return response.get_data(as_text=True), response.headers


def test_a_large_upload_is_imported_by_a_job(
    customer: FlaskClient, inst: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(purchase_uploads, "CHUNK_BYTES", 4096)  # several chunks
    monkeypatch.setattr(purchase_uploads, "JOB_BATCH", 100)
    content = amazon_file(tmp_path / "big.csv", 300).read_bytes()
    assert len(content) > 30 * 4096
    response = _upload(customer, content, "Retail.OrderHistory.big.csv")
    assert response.status_code == 302
    body, headers = _page(customer)
    assert "being imported in the background" in body
    assert "Waiting to start" in body
    assert "Retail.OrderHistory.big.csv" in body
    assert headers["Refresh"] == "5"
    assert "Generated item" not in body  # nothing visible yet
    assert _count(inst, Purchase) == 0

    (upload,) = _uploads(inst)
    assert (upload.origin, upload.status, upload.size) == ("file", "queued", len(content))
    assert _count(inst, PurchaseUploadChunk) == -(-len(content) // 4096)
    with inst.sessions() as session:
        sealed = b"".join(session.execute(select(PurchaseUploadChunk.sealed)).scalars())
    assert b"Generated item" not in sealed
    assert b"big.csv" not in upload.detail

    assert run_pending(inst) >= 1
    (upload,) = _uploads(inst)
    assert upload.status == "done"
    assert json.loads(upload.result or "") == {"imported": 300, "duplicates": 0, "rejected": 0}
    assert upload.error is None
    assert _count(inst, PurchaseUploadChunk) == 0
    body, headers = _page(customer)
    assert "Refresh" not in headers
    assert "Done" in body
    assert "300 new, 0 already held" in body
    assert body.count(PURCHASE_RE) == 50  # the first page of 300 lines
    assert upload.import_id is not None
    with inst.sessions() as session:
        imported = session.get(PurchaseImport, upload.import_id)
        assert imported is not None
        assert (imported.format, imported.imported) == ("amazon-retail", 300)

    # Importing it again, through a job too, adds nothing.
    _upload(customer, content, "Retail.OrderHistory.big.csv")
    run_pending(inst)
    assert sorted(json.loads(u.result or "")["duplicates"] for u in _uploads(inst)) == [0, 300]
    assert _count(inst, Purchase) == 300


def test_a_refused_file_fails_with_its_bad_lines_and_leaves_nothing(
    customer: FlaskClient, inst: Instance, tmp_path: Path
) -> None:
    content = amazon_file(tmp_path / "bad.csv", 120, bad=(7, 90)).read_bytes()
    assert len(content) > 8192
    _upload(customer, content, "bad.csv")
    run_pending(inst)
    (upload,) = _uploads(inst)
    assert upload.status == "failed"
    assert upload.error == "import_refused: 2 line(s) cannot be read"
    assert "Generated" not in (upload.result or "")
    assert json.loads(upload.result or "") == {"imported": 0, "duplicates": 0, "rejected": 2}
    assert upload.import_id is None
    assert (_count(inst, Purchase), _count(inst, PurchaseImport)) == (0, 0)
    assert _count(inst, PurchaseUploadChunk) == 0
    body, headers = _page(customer)
    assert "Refresh" not in headers
    assert "Not imported" in body
    assert "2 lines cannot be read, so nothing was imported" in body
    assert "bad.csv, line 9" in body  # the bad lines, named (the header is line 1)
    assert "You have no purchases here yet." in body


def test_an_unreadable_format_fails_with_its_message(customer: FlaskClient, inst: Instance) -> None:
    _upload(customer, b"nothing a retailer wrote\n" * 800, "notes.txt")
    run_pending(inst)
    (upload,) = _uploads(inst)
    assert upload.status == "failed"
    assert upload.error == "validation_failed: the file was not imported"
    body, _headers = _page(customer)
    assert "Not imported" in body
    assert _count(inst, PurchaseUploadChunk) == 0


def test_a_running_upload_shows_the_lines_read(customer: FlaskClient, inst: Instance) -> None:
    _upload(customer, b"x" * 9000)
    with inst.sessions() as session:
        upload = session.execute(select(PurchaseUpload)).scalar_one()
        upload.status, upload.result = "running", json.dumps({"read": 2000})
        session.commit()
    body, headers = _page(customer)
    assert "Importing" in body
    assert "2000 lines read so far" in body
    assert headers["Refresh"] == "5"
    assert "<script" not in body


def test_a_small_upload_stays_synchronous(customer: FlaskClient, inst: Instance) -> None:
    response = _upload(customer, AMAZON.read_bytes(), AMAZON.name)
    assert response.status_code == 302
    assert _uploads(inst) == []
    body, headers = _page(customer)
    assert "Imported 8 new lines (amazon-retail)" in body
    assert 'id="uploads"' not in body
    assert "Refresh" not in headers


def test_erasure_deletes_uploads_and_chunks_and_the_export_lists_them(
    customer: FlaskClient, inst: Instance, tmp_path: Path
) -> None:
    content = amazon_file(tmp_path / "big.csv", 100).read_bytes()
    _upload(customer, content, "private-name.csv")
    _upload(customer, content, "private-name.csv")
    customer_id = _customer_id(inst)
    ctx = Context(Actor.customer(customer_id))
    with inst.sessions() as session:
        exported = exports.export(session, inst, customer_id, ctx)
    listed = exported["purchase_uploads"]
    assert [(u["origin"], u["status"], u["size"]) for u in listed] == [
        ("file", "queued", len(content))
    ] * 2
    assert "private-name" not in json.dumps(listed)
    assert _count(inst, PurchaseUploadChunk) >= 2

    with inst.sessions() as session:
        erasure.erase(session, inst, customer_id, PASSWORD, ctx)
    assert (_count(inst, PurchaseUpload), _count(inst, PurchaseUploadChunk)) == (0, 0)
    assert run_pending(inst) >= 2  # the jobs of the erased uploads end, doing nothing
    assert _count(inst, Purchase) == 0


def test_a_large_zip_is_read_from_its_chunks_by_the_job(
    customer: FlaskClient, inst: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Amazon's "Request my data" zip: its directory is at its end, so the job's reader seeks
    across the sealed chunks."""
    import zipfile

    monkeypatch.setattr(purchase_uploads, "CHUNK_BYTES", 4096)
    orders = amazon_file(tmp_path / "orders.csv", 200).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("Retail.OrderHistory.1/Retail.OrderHistory.1.csv", orders)
        archive.writestr("Digital-Ordering.1/Digital Items.csv", b'"Title"\r\n"A book"\r\n')
    content = buffer.getvalue()
    assert len(content) > 8192 * 4  # a job, and many chunks
    assert _upload(customer, content, "Your Orders.zip").status_code == 302
    assert run_pending(inst) >= 1
    (upload,) = _uploads(inst)
    assert upload.status == "done", upload.error
    assert json.loads(upload.result or "")["imported"] == 200
    assert _count(inst, Purchase) == 200
