"""The customer's page per supplier: its sections, only for a supplier they dealt with and only
their own data; revoke, block (with and without revoking), unblock; erasure requests delivered
to a real local webhook (signed, retried after a 500), confirmed by the supplier; receipts'
signature results."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from infomediary.audit.log import Actor, ActorType
from infomediary.cli import main
from infomediary.errors import InvalidWebhook
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    ConsentGrant,
    ConsentReceipt,
    ErasureRequest,
    Offer,
    OfferDelivery,
    SupplierBlock,
    SupplierWebhook,
    utcnow,
)
from infomediary.services import Context, erasure_requests, jobs, rewards
from infomediary.services.pseudonyms import pairwise_pseudonym
from tests.conftest import csrf
from tests.factories import make_customer, make_grant, make_supplier
from tests.functional.test_cli import env  # noqa: F401 - the CLI's fixture

EMAIL = "mary@example.org"
PASSWORD = "correct horse battery"
OPERATOR = Context(Actor(ActorType.OPERATOR, "test"))


@pytest.fixture
def customer(inst: Instance, auth) -> str:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD, profile={"name": "Mary"})
    assert auth.login(EMAIL, PASSWORD).status_code == 302
    return customer_id


def _page(client, supplier_id: str) -> str:
    response = client.get(f"/suppliers/{supplier_id}")
    assert response.status_code == 200, response.status_code
    return str(response.get_data(as_text=True))


def _post(client, supplier_id: str, path: str, data: dict[str, str] | None = None):
    token = csrf(client, f"/suppliers/{supplier_id}")
    return client.post(
        f"/suppliers/{supplier_id}{path}", data={"csrf_token": token, **(data or {})}
    )


def _active_grants(inst: Instance, customer_id: str, supplier_id: str) -> int:
    with inst.sessions() as s:
        rows = s.execute(
            select(ConsentGrant).where(
                ConsentGrant.customer_id == customer_id,
                ConsentGrant.supplier_id == supplier_id,
                ConsentGrant.revoked_at.is_(None),
            )
        ).scalars()
        return len(list(rows))


def _blocked(inst: Instance, customer_id: str, supplier_id: str) -> bool:
    with inst.sessions() as s:
        return s.get(SupplierBlock, (customer_id, supplier_id)) is not None


def test_the_page_shows_who_grants_receipts_and_nothing_of_others(inst, client, customer) -> None:
    supplier = make_supplier(inst, name="Acme Books")
    never = make_supplier(inst, name="Stranger Shop")
    make_grant(inst, customer, supplier.id, scopes=("profile.identity:read",))
    other = make_customer(inst)
    make_grant(inst, other, supplier.id, purpose="marketing")

    body = _page(client, supplier.id)
    assert "<h1>Acme Books</h1>" in body
    assert "not verified" in body
    assert "<code>shop.example</code>" in body
    assert 'href="https://shop.example/privacy"' in body
    assert "signature verifies" in body
    assert "download (.jws)" in body
    assert "Accesses per week" in body
    assert "<svg" in body
    assert "Revoke this consent" in body
    assert "Also revoke their consents" in body
    assert "You earned $0.00 from them." in body
    with inst.sessions() as s:
        others = s.execute(select(ConsentGrant.id).where(ConsentGrant.customer_id == other))
        other_grant = others.scalar_one()
    assert other_grant not in body  # the other customer's grant is not on this page
    assert body.count("Revoke this consent") == 1

    assert client.get(f"/suppliers/{never.id}").status_code == 404
    assert client.get("/suppliers/no-such-supplier").status_code == 404
    assert _post(client, never.id, "/block").status_code == 404
    assert not _blocked(inst, customer, never.id)


def test_block_with_and_without_revoking_then_unblock(inst, client, customer) -> None:
    supplier = make_supplier(inst)
    make_grant(inst, customer, supplier.id)
    assert _active_grants(inst, customer, supplier.id) == 1

    assert _post(client, supplier.id, "/block").status_code == 302
    assert _blocked(inst, customer, supplier.id)
    assert _active_grants(inst, customer, supplier.id) == 1  # consents unchanged
    body = _page(client, supplier.id)
    assert "blocked by you" in body
    assert "Unblock" in body

    assert _post(client, supplier.id, "/unblock").status_code == 302
    assert not _blocked(inst, customer, supplier.id)
    assert "blocked by you" not in _page(client, supplier.id)

    bad = _post(client, supplier.id, "/block", {"revoke_grants": "maybe"})
    assert bad.status_code == 400
    assert "Tick the box or leave it empty." in bad.get_data(as_text=True)
    assert not _blocked(inst, customer, supplier.id)

    assert _post(client, supplier.id, "/block", {"revoke_grants": "yes"}).status_code == 302
    assert _blocked(inst, customer, supplier.id)
    assert _active_grants(inst, customer, supplier.id) == 0
    with inst.sessions() as s:
        receipts = s.execute(
            select(ConsentReceipt.event).where(ConsentReceipt.customer_id == customer)
        ).scalars()
        assert sorted(receipts) == ["granted", "revoked"]
        codes = [
            json.loads(e.reason_data)["code"]
            for e in s.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == customer)
                .order_by(AccessLogEntry.seq)
            ).scalars()
            if e.reason_data
        ]
    assert codes.count("offers.blocked") == 2
    assert "offers.unblocked" in codes
    assert "consent.revoked" in codes


def test_revoke_all_and_one(inst, client, customer) -> None:
    supplier = make_supplier(inst)
    first = make_grant(inst, customer, supplier.id, purpose="service")
    make_grant(inst, customer, supplier.id, purpose="marketing")
    other = make_supplier(inst, name="Other Books")
    assert _post(client, other.id, f"/grants/{first.id}/revoke").status_code == 404
    assert _post(client, supplier.id, f"/grants/{first.id}/revoke").status_code == 302
    assert _active_grants(inst, customer, supplier.id) == 1
    assert _post(client, supplier.id, "/revoke").status_code == 302
    assert _active_grants(inst, customer, supplier.id) == 0


def _reasons(inst: Instance, customer_id: str) -> list[tuple[str, str]]:
    with inst.sessions() as s:
        return [
            (json.loads(e.reason_data)["code"], e.outcome)
            for e in s.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == customer_id)
                .order_by(AccessLogEntry.seq)
            ).scalars()
            if e.reason_data
        ]


def test_revoking_another_customers_grant_is_refused_and_logged(inst, client, customer) -> None:
    supplier = make_supplier(inst)
    make_grant(inst, customer, supplier.id)
    other = make_customer(inst)
    theirs = make_grant(inst, other, supplier.id)
    before = _reasons(inst, other)
    refused = _post(client, supplier.id, f"/grants/{theirs.id}/revoke")
    assert refused.status_code == 404
    assert _active_grants(inst, other, supplier.id) == 1
    assert _reasons(inst, other) == before  # nothing on their log, nothing names them
    mine = _reasons(inst, customer)
    assert mine.count(("consent.revoke_refused", "denied")) == 1
    with inst.sessions() as s:
        entry = s.execute(
            select(AccessLogEntry).where(
                AccessLogEntry.customer_id == customer,
                AccessLogEntry.reason_data.contains("consent.revoke_refused"),
            )
        ).scalar_one()
        assert other not in (entry.reason_data or "")
        assert theirs.id not in (entry.reason_data or "")
    assert _post(client, supplier.id, f"/grants/{uuid.uuid4()}/revoke").status_code == 404
    assert _reasons(inst, customer).count(("consent.revoke_refused", "denied")) == 2


def test_a_tampered_receipt_does_not_verify(inst, client, customer) -> None:
    supplier = make_supplier(inst)
    grant = make_grant(inst, customer, supplier.id)
    with inst.sessions() as s:
        receipt = s.execute(
            select(ConsentReceipt).where(ConsentReceipt.grant_id == grant.id)
        ).scalar_one()
        head, payload, sig = receipt.jws.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["iat"] = 1
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        receipt.jws = f"{head}.{forged}.{sig}"
        s.commit()
        receipt_id = receipt.id
    body = _page(client, supplier.id)
    assert "signature does not verify" in body
    assert "signature verifies" not in body
    page = client.get(f"/consents/{grant.id}/receipts/{receipt_id}").get_data(as_text=True)
    assert "Signature does not verify" in page


# -- erasure requests, delivered to a real local webhook -----------------------------------------


@dataclass
class Hook:
    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    #: Statuses to answer, in order; then 200.
    answers: list[int] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.received.append((dict(self.headers), self.rfile.read(length)))
            status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/erasure"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    parts = dict(item.split("=", 1) for item in headers["Infomediary-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(parts["v1"], expected.hexdigest())


def _basic(creds) -> dict[str, str]:
    token = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_erasure_request_end_to_end(inst, client, customer, hook) -> None:
    supplier = make_supplier(inst)
    other = make_supplier(inst, name="Other Books")
    make_grant(inst, customer, supplier.id)
    with inst.sessions() as s:
        made = erasure_requests.set_webhook(
            s, inst, supplier.id, hook.url, "http://localhost", OPERATOR
        )
    hook.answers = [500]

    assert _post(client, supplier.id, "/erasure").status_code == 302
    with inst.sessions() as s:
        found = s.execute(select(ErasureRequest)).scalar_one()
        request_id = found.id
        assert found.subject == pairwise_pseudonym(inst, supplier.id, customer)

    assert jobs.run_pending(inst, kinds=[erasure_requests.JOB]) == 1  # the 500: retried later
    assert len(hook.received) == 1
    with inst.sessions() as s:
        assert s.get_one(ErasureRequest, request_id).status == "requested"
    later = utcnow() + timedelta(minutes=5)
    assert jobs.run_pending(inst, later, kinds=[erasure_requests.JOB]) == 1
    assert len(hook.received) == 2
    headers, body = hook.received[-1]
    assert _verify(made.secret, headers, body)
    assert not _verify(made.secret + "x", headers, body)
    sent = json.loads(body)
    assert sent["type"] == "erasure_request"
    assert sent["id"] == request_id
    assert sent["subject"] == pairwise_pseudonym(inst, supplier.id, customer)
    assert sent["confirm_url"].endswith(f"/api/v1/erasure-requests/{request_id}/confirm")
    assert EMAIL not in body.decode()
    with inst.sessions() as s:
        assert s.get_one(ErasureRequest, request_id).status == "delivered"
    assert "waiting for their confirmation" in _page(client, supplier.id)

    confirm = f"/api/v1/erasure-requests/{request_id}/confirm"
    wrong = client.post(confirm, headers=_basic(other))
    assert wrong.status_code == 404
    assert wrong.mimetype == "application/problem+json"
    assert wrong.get_json()["code"] == "not_found"
    bad_secret = client.post(
        confirm, headers={"Authorization": "Basic " + base64.b64encode(b"x:y").decode()}
    )
    assert bad_secret.status_code == 401
    assert client.post(confirm).status_code == 401
    done = client.post(confirm, headers=_basic(supplier))
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json()["status"] == "confirmed"
    again = client.post(confirm, headers=_basic(supplier))
    assert again.get_json()["confirmed_at"] == done.get_json()["confirmed_at"]
    body_page = _page(client, supplier.id)
    assert "They confirmed deleting it on" in body_page

    with inst.sessions() as s:
        codes = [
            json.loads(e.reason_data)["code"]
            for e in s.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == customer)
                .order_by(AccessLogEntry.seq)
            ).scalars()
            if e.reason_data
        ]
    assert codes.count("erasure.confirmed") == 1
    for code in ("erasure.requested", "erasure.attempt_failed", "erasure.delivered"):
        assert code in codes


def test_no_webhook_waits_and_is_still_confirmable(inst, client, customer, hook) -> None:
    supplier = make_supplier(inst)
    make_grant(inst, customer, supplier.id)
    assert _post(client, supplier.id, "/erasure").status_code == 302
    assert jobs.run_pending(inst, kinds=[erasure_requests.JOB]) == 0
    assert "Waiting: this supplier has no way to receive requests yet." in _page(
        client, supplier.id
    )
    with inst.sessions() as s:
        request_id = s.execute(select(ErasureRequest.id)).scalar_one()
        queued = erasure_requests.set_webhook(s, inst, supplier.id, hook.url, "http://x", OPERATOR)
    assert queued.queued == 1
    assert jobs.run_pending(inst, kinds=[erasure_requests.JOB]) == 1
    assert len(hook.received) == 1
    done = client.post(f"/api/v1/erasure-requests/{request_id}/confirm", headers=_basic(supplier))
    assert done.status_code == 200


_REAL_GETADDRINFO = socket.getaddrinfo


def _dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, str]) -> None:
    """Names resolve to the given addresses; every other host as usual."""

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in names:
            family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (names[host], port or 0))]
        return _REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    _dns(monkeypatch, {"shop.example": "93.184.216.34"})


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.7/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://0x7f000001/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://internal.example/hook",
        "https://nowhere.invalid/hook",
    ],
)
def test_a_webhook_must_reach_a_public_address(inst, monkeypatch, url) -> None:
    _dns(monkeypatch, {"internal.example": "192.168.1.10"})
    supplier = make_supplier(inst)
    with inst.sessions() as s, pytest.raises(InvalidWebhook):
        erasure_requests.set_webhook(s, inst, supplier.id, url, "x", OPERATOR)
    assert erasure_requests.check_webhook_url(inst, url) is not None


def test_a_name_that_turns_private_after_registration_is_not_called(
    inst, client, customer, hook, monkeypatch
) -> None:
    supplier = make_supplier(inst)
    make_grant(inst, customer, supplier.id)
    port = hook.url.split(":")[2].split("/")[0]
    _dns(monkeypatch, {"rebind.example": "93.184.216.34"})
    with inst.sessions() as s:
        erasure_requests.set_webhook(
            s, inst, supplier.id, f"https://rebind.example:{port}/erasure", "http://x", OPERATOR
        )
    _dns(monkeypatch, {"rebind.example": "127.0.0.1"})
    assert _post(client, supplier.id, "/erasure").status_code == 302
    assert jobs.run_pending(inst, kinds=[erasure_requests.JOB]) == 1
    assert hook.received == []
    with inst.sessions() as s:
        reasons = [
            json.loads(e.reason_data)
            for e in s.execute(
                select(AccessLogEntry).where(AccessLogEntry.customer_id == customer)
            ).scalars()
            if e.reason_data
        ]
    failed = [r for r in reasons if r["code"] == "erasure.attempt_failed"]
    assert len(failed) == 1
    assert failed[0]["params"]["error"] == "failed"


def test_a_failed_delivery_names_no_status_on_the_log(inst, client, customer, hook) -> None:
    supplier = make_supplier(inst)
    make_grant(inst, customer, supplier.id)
    with inst.sessions() as s:
        erasure_requests.set_webhook(s, inst, supplier.id, hook.url, "http://x", OPERATOR)
    hook.answers = [503]
    assert _post(client, supplier.id, "/erasure").status_code == 302
    assert jobs.run_pending(inst, kinds=[erasure_requests.JOB]) == 1
    assert len(hook.received) == 1
    with inst.sessions() as s:
        data = [
            e.reason_data
            for e in s.execute(
                select(AccessLogEntry).where(AccessLogEntry.customer_id == customer)
            ).scalars()
            if e.reason_data and "attempt_failed" in e.reason_data
        ]
    assert len(data) == 1
    assert "503" not in data[0]
    assert json.loads(data[0])["params"]["error"] == "failed"


@pytest.mark.usefixtures("public_dns")
def test_a_webhook_must_be_https(inst) -> None:
    supplier = make_supplier(inst)
    with inst.sessions() as s, pytest.raises(InvalidWebhook):
        erasure_requests.set_webhook(
            s, inst, supplier.id, "http://shop.example/hook", "x", OPERATOR
        )
    assert erasure_requests.check_webhook_url(inst, "https://shop.example/hook") is None


def test_offers_and_earnings_of_this_supplier_only(inst, client, customer) -> None:
    supplier = make_supplier(inst, fund_cents=1_000)
    other = make_supplier(inst, name="Other Books", fund_cents=1_000)
    ids = {}
    for who, title in ((supplier, "Autumn list"), (other, "Winter list")):
        offer_id = str(uuid.uuid4())
        with inst.sessions() as s:
            s.add(
                Offer(
                    id=offer_id,
                    supplier_id=who.id,
                    purpose="marketing",
                    criteria="{}",
                    title=title,
                    body="New books.",
                    reward_cents=150,
                    max_recipients=1,
                    noisy_reach=60,
                    status="delivered",
                    expires_at=utcnow() + timedelta(days=1),
                )
            )
            s.flush()
            rewards.escrow_offer(s, who.id, offer_id, 150)
            s.add(OfferDelivery(offer_id=offer_id, customer_id=customer, status="delivered"))
            s.commit()
        ids[who.id] = offer_id
    inbox = client.get("/inbox").get_data(as_text=True)
    assert f'href="/suppliers/{supplier.id}"' in inbox  # the inbox links to the page
    token = csrf(client, "/inbox")
    for who in (supplier, other):
        answer = client.post(f"/inbox/{ids[who.id]}/accept", data={"csrf_token": token})
        assert answer.status_code == 302
    body = _page(client, supplier.id)
    assert "Autumn list" in body
    assert "Winter list" not in body
    assert "You earned $1.50 from them." in body


def test_a_webhook_that_keeps_failing_marks_the_request_failed(inst, client, customer, hook):
    supplier = make_supplier(inst)
    make_grant(inst, customer, supplier.id)
    with inst.sessions() as s:
        erasure_requests.set_webhook(s, inst, supplier.id, hook.url, "http://x", OPERATOR)
    hook.answers = [503] * erasure_requests.MAX_ATTEMPTS
    assert _post(client, supplier.id, "/erasure").status_code == 302
    now = utcnow()
    for attempt in range(erasure_requests.MAX_ATTEMPTS):
        now += timedelta(hours=2)
        assert jobs.run_pending(inst, now, kinds=[erasure_requests.JOB]) == 1, attempt
    assert len(hook.received) == erasure_requests.MAX_ATTEMPTS
    with inst.sessions() as s:
        found = s.execute(select(ErasureRequest)).scalar_one()
        assert found.status == "failed"
        assert found.attempts == erasure_requests.MAX_ATTEMPTS
    assert "We could not reach them after 6 attempts." in _page(client, supplier.id)


@pytest.mark.usefixtures("env", "public_dns")
def test_the_cli_sets_a_webhook_and_shows_its_secret_once(inst) -> None:
    supplier = make_supplier(inst)
    result = CliRunner().invoke(
        main, ["suppliers", "webhook", supplier.id, "--url", "https://shop.example/hook", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["secret"].startswith("whsec_")
    with inst.sessions() as s:
        row = s.get_one(SupplierWebhook, supplier.id)
        assert data["secret"].encode() not in row.secret  # kept sealed
        assert erasure_requests.open_secret(inst, supplier.id, row.secret) == data["secret"]
    refused = CliRunner().invoke(
        main, ["suppliers", "webhook", supplier.id, "--url", "http://shop.example/hook"]
    )
    assert refused.exit_code != 0
    assert "https" in refused.output
