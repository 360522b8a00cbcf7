"""The "My purchases" page: upload a retailer's file (its own size limit, a refusal naming
the bad lines, skipping them), the lines and imports listed, deleting a line, an import or a
retailer's lines, and no customer ever reaching another's."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from infomediary.web import purchases_views
from tests.conftest import Auth, csrf
from tests.functional.test_purchases_import import AMAZON, amazon_file

PURCHASE_RE = re.compile(r'name="purchase" value="([^"]+)"')
IMPORT_RE = re.compile(r'name="import" value="([^"]+)"')


def customer(app: Flask, email: str = "ada@example.org") -> FlaskClient:
    client = app.test_client()
    response = Auth(client).signup(email=email)
    assert response.status_code == 302, response.status_code
    return client


def upload(
    client: FlaskClient, content: bytes, name: str = AMAZON.name, *, skip: bool = False
) -> TestResponse:
    data: dict[str, object] = {
        "csrf_token": csrf(client, "/purchases"),
        "file": (io.BytesIO(content), name),
    }
    if skip:
        data["skip_invalid"] = "yes"
    return client.post("/purchases/import", data=data, content_type="multipart/form-data")


def page(client: FlaskClient, path: str = "/purchases") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def test_an_upload_lists_the_lines_and_the_import(app: Flask) -> None:
    client = customer(app)
    assert "You have no purchases here yet." in page(client)
    response = upload(client, AMAZON.read_bytes())
    assert response.status_code == 302
    body = page(client)
    assert "Imported 8 new lines (amazon-retail); 0 already held." in body
    assert len(PURCHASE_RE.findall(body)) == 8
    assert body.index("Running Shoes") < body.index("Desk Lamp")  # newest first
    for shown in ("19.99 USD", "8.49 EUR", "Amazon.de", "returned", "2024-09-01"):
        assert shown in body, shown
    assert len(IMPORT_RE.findall(body)) == 1
    assert "Retail.OrderHistory.1.csv" in body

    upload(client, AMAZON.read_bytes())
    again = page(client)
    assert "Imported 0 new lines (amazon-retail); 8 already held." in again
    assert len(PURCHASE_RE.findall(again)) == 8
    assert len(IMPORT_RE.findall(again)) == 2
    assert 'href="/purchases"' in page(client, "/dashboard")


def test_lines_are_paginated(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(purchases_views, "PAGE_SIZE", 3)
    client = customer(app)
    upload(client, AMAZON.read_bytes())
    first, last = page(client), page(client, "/purchases?page=3")
    assert len(PURCHASE_RE.findall(first)) == 3
    assert "page 1 of 3" in first
    assert len(PURCHASE_RE.findall(last)) == 2
    assert 'rel="prev"' in last
    assert "USB-C Cable" in last
    assert "USB-C Cable" not in first
    assert len(PURCHASE_RE.findall(page(client, "/purchases?page=x"))) == 3


def test_a_file_with_bad_lines_is_refused_and_names_them(app: Flask, tmp_path: Path) -> None:
    client = customer(app)
    bad = amazon_file(tmp_path / "orders.csv", 6, bad=(1, 4)).read_bytes()
    response = upload(client, bad, "orders.csv")
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was imported" in body
    assert "orders.csv, line 3" in body
    assert "orders.csv, line 6" in body
    assert PURCHASE_RE.findall(page(client)) == []

    assert upload(client, bad, "orders.csv", skip=True).status_code == 302
    body = page(client)
    assert "Imported 4 new lines (amazon-retail); 0 already held; 2 skipped" in body
    assert "2 skipped because they cannot be read (lines 3, 6)." in body
    assert "Skipped: orders.csv" not in body  # a flash waits in the session store: no file name
    assert len(PURCHASE_RE.findall(body)) == 4


def test_a_file_in_no_known_format_is_refused(app: Flask) -> None:
    client = customer(app)
    response = upload(client, b"just some words\n", "notes.txt")
    assert response.status_code == 400
    assert "Import a file" in response.get_data(as_text=True)
    assert PURCHASE_RE.findall(page(client)) == []


def test_the_upload_has_its_own_size_limit(app: Flask) -> None:
    client = customer(app)
    app.config["MAX_CONTENT_LENGTH"] = 1024  # below the fixture's size: not this route's limit
    assert upload(client, AMAZON.read_bytes()).status_code == 302
    assert len(PURCHASE_RE.findall(page(client))) == 8
    too_big = client.post(
        "/profile", data={"csrf_token": csrf(client, "/profile"), "name": "x" * 2000}
    )
    assert too_big.status_code == 413  # every other route keeps the app's limit

    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    settings = app.config["SETTINGS"]
    app.config["SETTINGS"] = replace(settings, import_max_bytes=1000)
    over = upload(client, AMAZON.read_bytes(), "other.csv")  # measured by the view
    far_over = upload(client, b"x" * (1000 + purchases_views.FORM_ALLOWANCE + 1), "big.csv")
    for response in (over, far_over):
        assert response.status_code == 413
        body = response.get_data(as_text=True)
        assert "too large to import here: the limit is 1000 bytes" in body
        assert "Traceback" not in body
    assert len(IMPORT_RE.findall(page(client))) == 1


def test_deleting_a_line_a_retailer_and_an_import(app: Flask) -> None:
    client = customer(app)
    upload(client, AMAZON.read_bytes())
    first = PURCHASE_RE.findall(page(client))[0]
    token = csrf(client, "/purchases")
    assert (
        client.post("/purchases/delete", data={"csrf_token": token, "purchase": first}).status_code
        == 302
    )
    body = page(client)
    assert "Deleted 1 line." in body
    assert first not in body
    assert len(PURCHASE_RE.findall(body)) == 7

    client.post("/purchases/retailers/delete", data={"csrf_token": token, "retailer": "Amazon.de"})
    body = page(client)
    assert "Deleted 1 line from that retailer." in body
    assert "Kaffee" not in body

    [import_id] = IMPORT_RE.findall(body)
    client.post("/purchases/imports/delete", data={"csrf_token": token, "import": import_id})
    body = page(client)
    assert "Deleted the import and its 6 lines." in body
    assert PURCHASE_RE.findall(body) == []
    assert IMPORT_RE.findall(body) == []

    gone = client.post("/purchases/delete", data={"csrf_token": token, "purchase": first})
    assert gone.status_code == 404
    refused = client.post("/purchases/delete", data={"purchase": first})
    assert refused.status_code == 403  # no CSRF token


def test_another_customer_never_sees_or_deletes_them(app: Flask) -> None:
    ada = customer(app)
    upload(ada, AMAZON.read_bytes())
    body = page(ada)
    purchase_id, import_id = PURCHASE_RE.findall(body)[0], IMPORT_RE.findall(body)[0]

    bob = customer(app, "bob@example.org")
    theirs = page(bob)
    assert "Running Shoes" not in theirs
    assert "Retail.OrderHistory" not in theirs
    assert PURCHASE_RE.findall(theirs) == []
    assert IMPORT_RE.findall(theirs) == []
    token = csrf(bob, "/purchases")
    for path, field, value in (
        ("/purchases/delete", "purchase", purchase_id),
        ("/purchases/imports/delete", "import", import_id),
        ("/purchases/retailers/delete", "retailer", "Amazon.com"),
    ):
        response = bob.post(path, data={"csrf_token": token, field: value})
        assert response.status_code == 404, path
    assert len(PURCHASE_RE.findall(page(ada))) == 8
    assert anonymous_redirect(app) == "/login"


def anonymous_redirect(app: Flask) -> str:
    response = app.test_client().get("/purchases")
    assert response.status_code == 302
    return str(response.headers["Location"])
