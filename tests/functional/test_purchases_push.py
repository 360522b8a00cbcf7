"""POST /api/v1/purchases: a retailer's authlib client, authorised by the customer through the
consent screen (PKCE S256) with purchases:write, pushes normalised lines under the customer's
policy, once per Idempotency-Key; a large batch runs as a job whose status only that client
reads; every call logged."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session
from sqlalchemy import func, select

from infomediary import create_app
from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    IdempotencyKey,
    Purchase,
    PurchaseImport,
    PurchaseUpload,
    PurchaseUploadChunk,
    utcnow,
)
from infomediary.services import Context, customer_policy, purchase_push, purchases
from infomediary.services.jobs import run_pending
from tests.factories import make_customer
from tests.log_reasons import code_of, shown
from tests.oauth_helpers import browser_login, client_session, consent, make_supplier

EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
SCOPES = ("purchases:read", "purchases:write")
PROBLEM = "application/problem+json"


def line(n: int, **changes: Any) -> dict[str, Any]:
    """A valid pushed line, the n-th of Corner Books' orders."""
    return {
        "retailer": "Corner Books",
        "order_id": f"CB-{10000 + n}",
        "line_key": f"CB-{10000 + n}/1",
        "ordered_at": "2024-03-05T18:22:41+01:00",
        "product_name": f"Book number {n}",
        "product_id": f"97800000{n:05d}",
        "category": "Books",
        "quantity": 1,
        "unit_price_minor": 1299,
        "currency": "EUR",
        "status": "shipped",
        **changes,
    }


@pytest.fixture
def customer(inst: Instance) -> str:
    return make_customer(inst, email=EMAIL, password=PASSWORD, name="Ada Lovelace")


def _client(
    live_server: str,
    inst: Instance,
    scope: str = "purchases:write",
    *,
    name: str = "Corner Books",
    approve: list[str] | None = None,
) -> OAuth2Session:
    supplier = make_supplier(inst, name=name, scopes=SCOPES)
    client = client_session(live_server, supplier, scope)
    result = consent(
        live_server,
        browser_login(live_server, EMAIL, PASSWORD),
        client,
        purpose="service",
        approve=approve,
    )
    client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    client.supplier_id = supplier.id
    return client


def _push(live_server: str, client: OAuth2Session, body: Any, key: str | None = "k-1") -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post(f"{live_server}/api/v1/purchases", json=body, headers=headers)


def _count(inst: Instance, model: Any) -> int:
    with inst.sessions() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _entries(inst: Instance, customer_id: str) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(
            session.execute(
                select(AccessLogEntry)
                .where(
                    AccessLogEntry.actor_type == "supplier",
                    AccessLogEntry.customer_id == customer_id,
                )
                .order_by(AccessLogEntry.seq)
            ).scalars()
        )


def _visible(inst: Instance, customer_id: str) -> list[dict[str, Any]]:
    with inst.sessions() as session:
        return purchases.list_purchases(
            session, inst, customer_id, Context(Actor.customer(customer_id))
        )


def _assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"].endswith(f"problems/{code}")
    return body


def test_a_batch_is_imported_once_per_key(live_server, inst, customer) -> None:
    client = _client(live_server, inst)
    batch = [line(1), line(2), line(3, status="returned", product_id=None, category=None)]
    first = _push(live_server, client, batch)
    assert first.status_code == 201, first.text
    body = first.json()
    assert set(body) == {"imported", "duplicates", "rejected", "import"}
    assert (body["imported"], body["duplicates"], body["rejected"]) == (3, 0, 0)

    lines = _visible(inst, customer)
    assert len(lines) == 3
    assert {row["source"] for row in lines} == {"Corner Books"}
    assert {row["ordered_at"] for row in lines} == {"2024-03-05T17:22:41+00:00"}  # in UTC
    with inst.sessions() as session:
        imported = session.get(PurchaseImport, body["import"])
        assert imported is not None
        assert (imported.format, imported.supplier_id) == ("push", client.supplier_id)

    # The same key and body: the same answer, nothing written.
    rows, imports, entries = (
        _count(inst, Purchase),
        _count(inst, PurchaseImport),
        _count(inst, IdempotencyKey),
    )
    reordered = [dict(reversed(list(item.items()))) for item in batch]  # the same JSON
    again = _push(live_server, client, reordered)
    assert (again.status_code, again.json()) == (201, body)
    assert (_count(inst, Purchase), _count(inst, PurchaseImport)) == (rows, imports)
    assert _count(inst, IdempotencyKey) == entries == 1

    # The same key, another body: refused, nothing written.
    reused = _push(live_server, client, [line(9)])
    _assert_problem(reused, 422, "idempotency_key_reused")
    assert (_count(inst, Purchase), _count(inst, PurchaseImport)) == (rows, imports)

    # A new key for the same lines: imported again as duplicates, nothing added.
    other = _push(live_server, client, batch, key="k-2")
    assert other.status_code == 201
    assert (other.json()["imported"], other.json()["duplicates"]) == (0, 3)
    assert _count(inst, Purchase) == 3

    logged = _entries(inst, customer)
    assert [(e.action, e.categories, e.purpose, e.outcome) for e in logged] == [
        ("import", "purchases", "service", "allowed")
    ] * 3
    assert code_of(logged[1]) == "push.replayed"
    assert "answered again" in shown(logged[1])


def test_the_body_is_checked_strictly_and_nothing_is_written(live_server, inst, customer) -> None:
    client = _client(live_server, inst)
    bad = [
        line(1),
        line(2, quantity="2"),
        {**line(3), "email": "ada@example.org", "ordered_at": "2024-03-05T18:22:41"},
        "not a line",
        line(5, status="lost", currency="eur", unit_price_minor=12.5),
    ]
    refused = _assert_problem(_push(live_server, client, bad), 422, "invalid_purchases")
    assert set(refused["errors"]) == {
        "/1/quantity",
        "/2/email",
        "/2/ordered_at",
        "/3",
        "/4/status",
        "/4/currency",
        "/4/unit_price_minor",
    }
    assert refused["errors"]["/2/email"] == "Unknown field."
    assert "4 line(s) refused" in refused["detail"]
    missing = {k: v for k, v in line(6).items() if k != "line_key"}
    named = _assert_problem(_push(live_server, client, [missing], "k-m"), 422, "invalid_purchases")
    assert set(named["errors"]) == {"/0/line_key"}

    not_arrays: list[Any] = [{"lines": [line(1)]}, []]
    for body in not_arrays:
        _assert_problem(_push(live_server, client, body), 422, "invalid_purchases")
    too_many = _push(live_server, client, [line(n) for n in range(1001)])
    _assert_problem(too_many, 413, "too_many_lines")
    not_json = client.post(
        f"{live_server}/api/v1/purchases",
        data="[{oops",
        headers={"Idempotency-Key": "k-1", "Content-Type": "application/json"},
    )
    _assert_problem(not_json, 400, "invalid_json")
    for model in (Purchase, PurchaseImport, IdempotencyKey, PurchaseUpload):
        assert _count(inst, model) == 0, model


@pytest.mark.parametrize("key", [None, "", "x" * 256, "clé"])
def test_the_idempotency_key_is_required(live_server, inst, customer, key) -> None:
    client = _client(live_server, inst)
    headers = {} if key is None else {"Idempotency-Key": key.encode("utf-8")}
    response = client.post(f"{live_server}/api/v1/purchases", json=[line(1)], headers=headers)
    body = _assert_problem(response, 400, "invalid_idempotency_key")
    assert "Idempotency-Key" in body["errors"]
    assert _count(inst, Purchase) == 0
    assert _push(live_server, client, [line(1)], key="x" * 255).status_code == 201


def test_a_key_being_processed_is_a_conflict(live_server, inst, customer) -> None:
    client = _client(live_server, inst)
    batch = [line(1)]
    push = purchase_push.PushRequest(
        lines=(),
        idempotency_key="k-1",
        method="POST",
        path="/api/v1/purchases",
        canonical_body=purchase_push.canonical_json(batch),
    )
    now = utcnow()
    with inst.sessions() as session:
        session.add(
            IdempotencyKey(
                id=str(uuid.uuid4()),
                supplier_id=client.supplier_id,
                key_hash=purchase_push.key_hash("k-1"),
                request_hash=purchase_push.request_hash(customer, push),
                status_code=purchase_push.PROCESSING,
                response="",
                created_at=now,
                expires_at=now + purchase_push.KEY_LIFETIME,
            )
        )
        session.commit()
    _assert_problem(_push(live_server, client, batch), 409, "idempotency_key_in_use")
    assert _count(inst, Purchase) == 0
    # A claim left by a process that died is taken over once stale.
    with inst.sessions() as session:
        row = session.execute(select(IdempotencyKey)).scalar_one()
        row.created_at = now - purchase_push.STALE_CLAIM - timedelta(seconds=1)
        session.commit()
    taken = _push(live_server, client, batch)
    assert taken.status_code == 201, taken.text
    assert _push(live_server, client, batch).json() == taken.json()


def test_a_policy_denial_is_logged_and_writes_nothing(live_server, inst, customer) -> None:
    client = _client(live_server, inst)
    with inst.sessions() as session:
        customer_policy.set_rule(
            session,
            inst,
            customer,
            category="purchases",
            purpose="service",
            mode="never",
            ctx=Context(Actor.customer(customer)),
        )
    denied = _assert_problem(_push(live_server, client, [line(1)]), 403, "policy_denied")
    assert [w["category"] for w in denied["withheld"]] == ["purchases"]
    last = _entries(inst, customer)[-1]
    assert (last.action, last.categories, last.purpose, last.outcome) == (
        "import",
        "purchases",
        "service",
        "denied",
    )
    for model in (Purchase, PurchaseImport, IdempotencyKey):
        assert _count(inst, model) == 0


def test_a_token_without_purchases_write_is_refused(live_server, inst, customer) -> None:
    client = _client(live_server, inst, "purchases:read")
    response = _push(live_server, client, [line(1)])
    _assert_problem(response, 403, "insufficient_scope")
    assert 'scope="purchases:write"' in response.headers["WWW-Authenticate"]
    last = _entries(inst, customer)[-1]
    assert (last.action, last.outcome) == ("import", "denied")
    assert _count(inst, Purchase) == 0


def test_a_large_batch_is_a_job_only_its_client_reads(live_server, inst, customer) -> None:
    client = _client(live_server, inst)
    batch = [line(n) for n in range(150)]
    queued = _push(live_server, client, batch)
    assert queued.status_code == 202, queued.text
    body = queued.json()
    assert set(body) == {"job", "status", "status_url"}
    assert body["status"] == "queued"
    assert queued.headers["Location"] == body["status_url"]
    assert body["status_url"] == f"{live_server}/api/v1/purchases/jobs/{body['job']}"
    assert client.get(body["status_url"]).json() == {"job": body["job"], "status": "queued"}
    assert _visible(inst, customer) == []  # nothing visible until the job ran
    with inst.sessions() as session:
        upload = session.get(PurchaseUpload, body["job"])
        assert upload is not None
        assert (upload.origin, upload.supplier_id) == ("push", client.supplier_id)
        sealed = b"".join(session.execute(select(PurchaseUploadChunk.sealed)).scalars())
        assert b"Book number" not in sealed
        assert b"Corner Books" not in sealed
    assert _count(inst, PurchaseUploadChunk) >= 1
    again = _push(live_server, client, batch)
    assert (again.status_code, again.json()) == (202, body)
    assert _count(inst, PurchaseUpload) == 1

    # Another client of the same customer, and an unknown job, are not found.
    other = _client(live_server, inst, name="Other Books")
    for url in (body["status_url"], f"{live_server}/api/v1/purchases/jobs/{uuid.uuid4()}"):
        _assert_problem(other.get(url), 404, "not_found")

    assert run_pending(inst) >= 1
    done = client.get(body["status_url"])
    assert done.status_code == 200
    assert done.json() == {
        "job": body["job"],
        "status": "done",
        "imported": 150,
        "duplicates": 0,
        "rejected": 0,
        "import": done.json()["import"],
    }
    assert _count(inst, PurchaseUploadChunk) == 0
    lines = _visible(inst, customer)
    assert len(lines) == 150
    assert {row["source"] for row in lines} == {"Corner Books"}
    with inst.sessions() as session:
        imported = session.get(PurchaseImport, done.json()["import"])
        assert imported is not None
        assert (imported.format, imported.supplier_id) == ("push", client.supplier_id)
    reasons = [shown(e) for e in _entries(inst, customer) if e.action == "import"]
    assert any("150 line(s) queued" in r for r in reasons)
    assert any("150 new" in r for r in reasons)


def test_expired_keys_are_deleted(live_server, inst, customer) -> None:
    client = _client(live_server, inst)
    assert _push(live_server, client, [line(1)]).status_code == 201
    assert _count(inst, IdempotencyKey) == 1
    run_pending(inst)  # the cleanup runs, and keeps the fresh key
    assert _count(inst, IdempotencyKey) == 1
    run_pending(inst, utcnow() + purchase_push.KEY_LIFETIME + timedelta(hours=2))
    assert _count(inst, IdempotencyKey) == 0
    # An expired key is forgotten: the same key may carry a new batch.
    assert _push(live_server, client, [line(2)]).status_code == 201
    with inst.sessions() as session:
        assert purchase_push.expire_keys(session, utcnow() + timedelta(days=2)) == 1


def test_the_pushing_retailer_is_named_on_the_purchases_page(live_server, inst, customer) -> None:
    client = _client(live_server, inst)
    assert _push(live_server, client, [line(1)]).status_code == 201
    browser = browser_login(live_server, EMAIL, PASSWORD)
    page = browser.get(f"{live_server}/purchases")
    assert page.status_code == 200
    assert "Sent by Corner Books" in page.text
    assert "Book number 1" in page.text
    assert "Refresh" not in page.headers


def test_the_openapi_document_describes_the_push(client) -> None:
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/v1/purchases"]["post"]
    assert operation["security"] == [{"oauth2": ["purchases:write"]}]
    assert {"201", "202", "400", "401", "403", "409", "413", "422", "429"} <= set(
        operation["responses"]
    )
    header = operation["parameters"][0]
    assert (header["in"], header["name"], header["required"]) == ("header", "Idempotency-Key", True)
    body = operation["requestBody"]["content"]["application/json"]
    assert body["schema"]["maxItems"] == 1000
    line_schema = document["components"]["schemas"]["PushLine"]
    assert line_schema["additionalProperties"] is False
    assert set(line_schema["required"]) == {
        "retailer",
        "order_id",
        "line_key",
        "ordered_at",
        "product_name",
        "quantity",
        "unit_price_minor",
        "currency",
        "status",
    }
    assert "/api/v1/purchases/jobs/{job_id}" in document["paths"]


def test_the_documented_examples_are_accepted(live_server, inst, customer, client) -> None:
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/v1/purchases"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) >= 2
    supplier = _client(live_server, inst)
    for name, example in examples.items():
        response = _push(live_server, supplier, example["value"], key=f"example-{name}")
        assert response.status_code == 201, (name, response.text)


def test_pushes_are_rate_limited_and_need_no_csrf_token(live_server, inst, customer) -> None:
    client = _client(live_server, inst)
    token = client.token["access_token"]
    limited = create_app(replace(inst.settings, api_rate_limit="2 per minute"), instance=inst)
    api = limited.test_client()
    headers = {"Authorization": f"Bearer {token}", "Origin": "https://elsewhere.example"}
    answers = [
        api.post(
            "/api/v1/purchases", json=[line(n)], headers={**headers, "Idempotency-Key": f"r-{n}"}
        )
        for n in range(3)
    ]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert answers[2].content_type == PROBLEM
    assert answers[2].get_json()["code"] == "rate_limited"
    assert "Retry-After" in answers[2].headers
    assert _count(inst, Purchase) == 2
