"""The auditors' dashboard end to end: login with password and TOTP, search and filters under
auditor-specific pseudonyms, statistics and anomaly flags from constructed data, exports whose
proofs verify, "verify now", and every read showing in the customer's own activity."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from datetime import timedelta

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from infomediary.audit.log import Actor, ActorType, append
from infomediary.audit.reasons import Reason, render
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    Offer,
    OfferDelivery,
    SupplierBlock,
    utcnow,
)
from infomediary.services import Context, auditing, auditors, checkpoints
from infomediary.tlog import merkle, note
from tests.conftest import Auth, csrf, csrf_token_in
from tests.factories import make_customer, make_grant, make_supplier

PASSWORD = "a long auditor passphrase"
CUSTOMER_PASSWORD = "correct horse battery"
SYSTEM = Context(Actor.system("test"))


def make_auditor(inst: Instance, email: str = "audra@example.org") -> auditors.CreatedAuditor:
    with inst.sessions() as session:
        return auditors.create(session, inst, email=email, password=PASSWORD, ctx=SYSTEM)


def password_step(client: FlaskClient, email: str, password: str = PASSWORD) -> object:
    return client.post(
        "/audit/login",
        data={"csrf_token": csrf(client, "/audit/login"), "email": email, "password": password},
    )


def code_step(client: FlaskClient, code: str) -> object:
    return client.post(
        "/audit/login/code", data={"csrf_token": csrf(client, "/audit/login/code"), "code": code}
    )


def log_in(client: FlaskClient, created: auditors.CreatedAuditor, email: str) -> None:
    assert password_step(client, email).status_code == 302  # type: ignore[attr-defined]
    answer = code_step(client, pyotp.TOTP(created.totp_secret).now())
    assert answer.status_code == 302, answer.get_data(as_text=True)  # type: ignore[attr-defined]
    assert answer.headers["Location"] == "/audit"  # type: ignore[attr-defined]


@pytest.fixture
def auditor(inst: Instance) -> auditors.CreatedAuditor:
    return make_auditor(inst)


@pytest.fixture
def logged_in(client: FlaskClient, auditor: auditors.CreatedAuditor) -> FlaskClient:
    log_in(client, auditor, "audra@example.org")
    return client


def supplier_entry(
    inst: Instance,
    supplier_id: str,
    customer_id: str | None,
    *,
    purpose: str = "service",
    allowed: bool = True,
    action: str = "read",
    reason: str | Reason = "profile read",
    days_ago: int = 0,
) -> None:
    with inst.sessions() as session:
        event = Context.supplier(supplier_id).event(
            action,
            customer_id=customer_id,
            reason=reason,
            purpose=purpose,
            allowed=allowed,
            categories=frozenset({"identity"}),
        )
        append(session, event, at=utcnow() - timedelta(days=days_ago))
        session.commit()


def entries(inst: Instance) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars())


def said(entry: AccessLogEntry) -> str:
    return render(entry.reason_data, entry.reason)


# -- login -----------------------------------------------------------------------------------


def test_login_takes_the_password_then_a_code(
    client: FlaskClient, inst: Instance, auditor: auditors.CreatedAuditor
) -> None:
    assert client.get("/audit").headers["Location"] == "/audit/login"
    assert client.get("/audit/login/code").headers["Location"] == "/audit/login"
    refused = password_step(client, "audra@example.org", "not the password!")
    assert refused.status_code == 401  # type: ignore[attr-defined]
    assert password_step(client, "audra@example.org").status_code == 302  # type: ignore[attr-defined]
    assert client.get("/audit").headers["Location"] == "/audit/login"  # a password is not a login
    wrong = code_step(
        client, "000000" if pyotp.TOTP(auditor.totp_secret).now() != "000000" else "1"
    )
    assert wrong.status_code == 401  # type: ignore[attr-defined]
    assert "wrong" in wrong.get_data(as_text=True)  # type: ignore[attr-defined]
    code = pyotp.TOTP(auditor.totp_secret).now()
    assert code_step(client, code).status_code == 302  # type: ignore[attr-defined]
    assert client.get("/audit").status_code == 200
    refusals = [said(e) for e in entries(inst) if e.outcome == "denied"]
    assert refusals == [
        "auditor login refused: wrong password",
        "auditor login refused: wrong code",
    ]
    for entry in entries(inst):
        assert "audra" not in said(entry)
        assert entry.customer_id is None or entry.action == "audit"


def test_a_replayed_code_is_refused(
    app: Flask, inst: Instance, auditor: auditors.CreatedAuditor
) -> None:
    first, second = app.test_client(), app.test_client()
    code = pyotp.TOTP(auditor.totp_secret).now()
    assert password_step(first, "audra@example.org").status_code == 302  # type: ignore[attr-defined]
    assert password_step(second, "audra@example.org").status_code == 302  # type: ignore[attr-defined]
    assert code_step(first, code).status_code == 302  # type: ignore[attr-defined]
    replayed = code_step(second, code)
    assert replayed.status_code == 401  # type: ignore[attr-defined]
    assert second.get("/audit").status_code == 302
    assert said(entries(inst)[-1]) == "auditor login refused: code already used"


def test_auditor_and_customer_sessions_are_apart(
    client: FlaskClient, inst: Instance, auditor: auditors.CreatedAuditor
) -> None:
    make_customer(inst, email="ada@example.org", password=CUSTOMER_PASSWORD)
    assert Auth(client).login("ada@example.org", CUSTOMER_PASSWORD).status_code == 302
    assert client.get("/dashboard").status_code == 200
    assert client.get("/audit").headers["Location"] == "/audit/login"  # a customer is no auditor
    log_in(client, auditor, "audra@example.org")
    assert client.get("/audit").status_code == 200
    assert client.get("/dashboard").headers["Location"].startswith("/login")  # nor the reverse
    assert Auth(client).login("ada@example.org", CUSTOMER_PASSWORD).status_code == 302
    assert client.get("/audit").headers["Location"] == "/audit/login"


def test_a_disabled_auditor_is_logged_out_at_the_next_request(
    logged_in: FlaskClient, inst: Instance
) -> None:
    assert logged_in.get("/audit").status_code == 200
    with inst.sessions() as session:
        auditors.disable(session, inst, "audra@example.org", SYSTEM)
    assert logged_in.get("/audit").headers["Location"] == "/audit/login"
    assert logged_in.get("/audit/anomalies").headers["Location"] == "/audit/login"


def test_logout_and_csrf(logged_in: FlaskClient) -> None:
    assert (
        logged_in.post("/audit/logout", data={"csrf_token": "forged"}).status_code == 403
    )  # no CSRF token
    token = csrf(logged_in, "/audit")
    assert logged_in.post("/audit/logout", data={"csrf_token": token}).status_code == 302
    assert logged_in.get("/audit").status_code == 302


def test_code_attempts_are_rate_limited(
    client: FlaskClient, auditor: auditors.CreatedAuditor
) -> None:
    assert password_step(client, "audra@example.org").status_code == 302  # type: ignore[attr-defined]
    codes = [code_step(client, "12345").status_code for _ in range(6)]  # type: ignore[attr-defined]
    assert codes[:5] == [401] * 5
    assert codes[5] == 429


# -- search ----------------------------------------------------------------------------------


@pytest.fixture
def world(inst: Instance) -> dict[str, str]:
    ada = make_customer(inst, email="ada@example.org", password=CUSTOMER_PASSWORD, name="Ada Q")
    bob = make_customer(inst, email="bob@example.org", name="Bob Zed")
    books = make_supplier(inst, name="Lantern Books")
    other = make_supplier(inst, name="Harbour Travel")
    make_grant(inst, ada, books.id, purpose="service")
    supplier_entry(inst, books.id, ada, purpose="service")
    supplier_entry(inst, books.id, ada, purpose="marketing")  # outside the grant's purpose
    supplier_entry(inst, other.id, bob, allowed=False, reason="consent revoked")
    return {"ada": ada, "bob": bob, "books": books.id, "other": other.id}


def pseudonyms_on(page: str) -> set[str]:
    return set(re.findall(r"aud_[A-Za-z0-9_-]{43}", page))


def test_search_shows_entries_under_pseudonyms_and_never_raw_ids_or_details(
    app: Flask, inst: Instance, world: dict[str, str], auditor: auditors.CreatedAuditor
) -> None:
    client = app.test_client()
    log_in(client, auditor, "audra@example.org")
    page = client.get("/audit").get_data(as_text=True)
    for raw in (world["ada"], world["bob"], "ada@example.org", "Ada Q", "Bob Zed"):
        assert raw not in page
    assert "Lantern Books" in page
    assert "Harbour Travel" in page
    assert "consent revoked" in page
    mine = auditing.customer_pseudonym(inst, auditor.id, world["ada"])
    assert mine in page
    # another auditor knows the same customer by another name
    other = make_auditor(inst, "otto@example.org")
    second = app.test_client()
    log_in(second, other, "otto@example.org")
    theirs_page = second.get("/audit").get_data(as_text=True)
    theirs = auditing.customer_pseudonym(inst, other.id, world["ada"])
    assert theirs in theirs_page
    assert theirs != mine
    assert not pseudonyms_on(page) & pseudonyms_on(theirs_page)
    with inst.sessions() as session:
        details = [e.detail for e in session.execute(select(AccessLogEntry)).scalars() if e.detail]
    for blob in details:
        assert base64.b64encode(blob).decode() not in page


def test_filters_narrow_the_search(
    logged_in: FlaskClient, inst: Instance, world: dict[str, str], auditor: auditors.CreatedAuditor
) -> None:
    def seqs(**args: str) -> list[int]:
        answer = logged_in.get("/audit", query_string=args)
        assert answer.status_code == 200
        return [int(s) for s in re.findall(r"<tr>\s*<td>(\d+)</td>", answer.get_data(as_text=True))]

    by_seq = {e.seq: e for e in entries(inst)}

    def where(test: object) -> list[int]:
        return sorted((s for s, e in by_seq.items() if test(e)), reverse=True)  # type: ignore[operator]

    books = seqs(supplier=world["books"])
    assert books == where(lambda e: e.actor_type == "supplier" and e.actor_id == world["books"])
    assert len(books) == 2
    assert len(seqs(supplier=world["books"], purpose="marketing")) == 1
    denied = seqs(outcome="denied", actor="supplier")
    assert denied == where(lambda e: e.outcome == "denied" and e.actor_type == "supplier")
    ada = auditing.customer_pseudonym(inst, auditor.id, world["ada"])
    mine = seqs(customer=ada, actor="supplier")
    assert mine == books
    today = utcnow().date()
    assert seqs(since=(today + timedelta(days=1)).isoformat()) == []
    assert len(seqs(until=today.isoformat(), actor="supplier")) == 3
    nobody = "aud_" + "A" * 43
    assert seqs(customer=nobody) == []


@pytest.mark.parametrize(
    "args",
    [{"customer": world_id} for world_id in ("not-a-pseudonym", "psn_" + "A" * 43)]
    + [
        {"outcome": "maybe"},
        {"since": "yesterday"},
        {"since": "2026-02-02", "until": "2026-01-01"},
        {"actor": "robot"},
        {"before": "-1"},
        {"action": "READ;"},
        {"until": "9999-12-31"},
        {"since": "0001-01-01"},
    ],
)
def test_a_bad_filter_is_a_friendly_400(logged_in: FlaskClient, args: dict[str, str]) -> None:
    answer = logged_in.get("/audit", query_string=args)
    assert answer.status_code == 400
    assert "invalid_audit_filter" in answer.get_data(as_text=True)
    problem = logged_in.get("/audit", query_string=args, headers={"Accept": "application/json"})
    assert problem.status_code == 400
    assert problem.json is not None
    assert problem.json["code"] == "invalid_audit_filter"


def test_pages_are_keyset_on_seq(logged_in: FlaskClient, inst: Instance) -> None:
    supplier = make_supplier(inst, name="Pager Books")
    for _ in range(auditing.PAGE_SIZE + 5):
        supplier_entry(inst, supplier.id, None, action="count")
    first = logged_in.get("/audit", query_string={"action": "count"}).get_data(as_text=True)
    shown = [int(s) for s in re.findall(r"<tr>\s*<td>(\d+)</td>", first)]
    assert len(shown) == auditing.PAGE_SIZE
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older
    rest = logged_in.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    shown_next = [int(s) for s in re.findall(r"<tr>\s*<td>(\d+)</td>", rest)]
    assert len(shown_next) == 5
    assert max(shown_next) < min(shown)
    assert 'rel="next"' not in rest


def test_every_read_reaches_the_customers_activity(
    logged_in: FlaskClient, app: Flask, inst: Instance, world: dict[str, str]
) -> None:
    before = len(entries(inst))
    assert logged_in.get("/audit").status_code == 200
    new = entries(inst)[before:]
    audits = [e for e in new if e.action == "audit"]
    assert {e.customer_id for e in audits} == {world["ada"], world["bob"], None}
    assert all(e.actor_type == ActorType.AUDITOR for e in audits)
    assert all(e.categories == "access_log" for e in audits)
    ada_entry = next(e for e in audits if e.customer_id == world["ada"])
    assert said(ada_entry).startswith("an auditor viewed ")
    assert len(new) <= auditing.PAGE_SIZE + 1
    customer = app.test_client()
    assert Auth(customer).login("ada@example.org", CUSTOMER_PASSWORD).status_code == 302
    activity = customer.get("/activity?actor=auditor").get_data(as_text=True)
    assert "An auditor" in activity
    shown = sum(1 for e in entries(inst)[:before] if e.customer_id == world["ada"])
    assert f"an auditor viewed {shown} of your log entries" in activity


# -- statistics and anomalies ----------------------------------------------------------------


def test_supplier_statistics_with_charts_and_their_tables(
    logged_in: FlaskClient, world: dict[str, str]
) -> None:
    answer = logged_in.get(f"/audit/supplier?id={world['books']}")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert page.count(' role="img"') == 2
    assert "<table>" in page
    assert "style=" not in page  # the CSP forbids inline styles
    assert "<script" not in page
    assert "Accesses and refusals per day" in page
    assert world["ada"] not in page
    assert "outside purpose" in page
    assert logged_in.get("/audit/supplier?id=no-such-supplier").status_code == 404
    assert logged_in.get(f"/audit/supplier?id={world['books']}&since=1999-01-01").status_code == 400


def test_anomaly_flags_from_constructed_data(
    logged_in: FlaskClient, inst: Instance, world: dict[str, str]
) -> None:
    spiky = make_supplier(inst, name="Spiky Media")
    supplier_entry(inst, spiky.id, None, allowed=False, days_ago=3)
    for _ in range(6):
        supplier_entry(inst, spiky.id, None, allowed=False)
    broke = make_supplier(inst, name="Broke Counts")
    supplier_entry(
        inst,
        broke.id,
        None,
        action="count",
        allowed=False,
        reason=Reason("broker.count_refused_budget"),
    )
    blocked = make_supplier(inst, name="Blocked Offers")
    customers = [make_customer(inst) for _ in range(4)]
    with inst.sessions() as session:
        session.add(
            Offer(
                id="offer-1",
                supplier_id=blocked.id,
                purpose="marketing",
                criteria="{}",
                title="t",
                body="b",
                max_recipients=10,
                status="closed",
                expires_at=utcnow() + timedelta(days=1),
            )
        )
        session.flush()
        for number, customer_id in enumerate(customers):
            session.add(OfferDelivery(offer_id="offer-1", customer_id=customer_id))
            if number < 3:
                session.add(SupplierBlock(customer_id=customer_id, supplier_id=blocked.id))
        session.commit()
    page = logged_in.get("/audit/anomalies").get_data(as_text=True)
    rows = re.findall(r"<tr><td><a[^>]*>([^<]+)</a></td>\s*<td><span[^>]*>([^<]+)</span>", page)
    flags = {(name, kind) for name, kind in rows}
    assert ("Spiky Media", "denial spike") in flags
    assert ("Broke Counts", "budget exhausted") in flags
    assert ("Blocked Offers", "many blocks") in flags
    assert ("Lantern Books", "outside purpose") in flags
    assert not {kind for name, kind in flags if name == "Harbour Travel"}
    # below the thresholds: under five refusals a day is never a spike, and five after a
    # mean of two a day is not three times the mean
    calm = make_supplier(inst, name="Calm Shop")
    for days_ago in range(1, 8):
        for _ in range(2):
            supplier_entry(inst, calm.id, None, allowed=False, days_ago=days_ago)
    for _ in range(5):
        supplier_entry(inst, calm.id, None, allowed=False)
    page = logged_in.get("/audit/anomalies").get_data(as_text=True)
    assert "Calm Shop" not in page


def test_a_revoked_grant_does_not_cover_later_accesses(
    logged_in: FlaskClient, inst: Instance
) -> None:
    customer = make_customer(inst)
    supplier = make_supplier(inst, name="Late Reader")
    grant = make_grant(inst, customer, supplier.id, purpose="service")
    supplier_entry(inst, supplier.id, customer, purpose="service")
    page = logged_in.get(f"/audit/supplier?id={supplier.id}").get_data(as_text=True)
    assert "None in this range." in page
    from infomediary.models import ConsentGrant

    with inst.sessions() as session:
        session.execute(
            update(ConsentGrant).where(ConsentGrant.id == grant.id).values(revoked_at=utcnow())
        )
        session.commit()
    supplier_entry(inst, supplier.id, customer, purpose="service")
    page = logged_in.get(f"/audit/supplier?id={supplier.id}").get_data(as_text=True)
    assert "1 in the range" in page


# -- export ----------------------------------------------------------------------------------


def check_proofs(found: list[dict[str, object]], size: int, root: bytes) -> int:
    checked = 0
    for item in found:
        proof = item["proof"]
        assert proof is not None
        merkle.verify_inclusion(
            int(item["seq"]),  # type: ignore[call-overload]
            size,
            base64.b64decode(str(item["leaf_hash"])),
            [base64.b64decode(p) for p in proof],  # type: ignore[attr-defined]
            root,
        )
        checked += 1
    return checked


def test_json_export_proofs_verify_against_the_current_tree(
    logged_in: FlaskClient, inst: Instance, world: dict[str, str]
) -> None:
    answer = logged_in.get("/audit/export.json", query_string={"supplier": world["books"]})
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    doc = json.loads(answer.get_data(as_text=True))
    assert doc["tree"]["source"] == "current"
    assert "not signed" in doc["tree"]["note"]
    assert len(doc["entries"]) == 2
    assert (
        check_proofs(doc["entries"], doc["tree"]["size"], base64.b64decode(doc["tree"]["root"]))
        == 2
    )
    body = answer.get_data(as_text=True)
    assert world["ada"] not in body
    assert "ada@example.org" not in body
    for item in doc["entries"]:  # the leaf recomputed from the bytes it commits to
        canonical = base64.b64decode(item["canonical"])
        assert merkle.leaf_hash(canonical) == base64.b64decode(item["leaf_hash"])
        assert world["ada"].encode() not in canonical
    # a leaf hash that is not the entry's fails
    item = doc["entries"][0]
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(
            item["seq"],
            doc["tree"]["size"],
            bytes(32),
            [base64.b64decode(p) for p in item["proof"]],
            base64.b64decode(doc["tree"]["root"]),
        )
    exported = [e for e in entries(inst) if e.action == "audit" and e.customer_id == world["ada"]]
    assert exported
    assert "export" in said(exported[-1])


def test_exports_against_the_latest_signed_checkpoint(
    logged_in: FlaskClient, inst: Instance, world: dict[str, str]
) -> None:
    with inst.sessions() as session:
        signed = checkpoints.sign(session, inst).checkpoint
    supplier_entry(inst, world["books"], world["ada"])  # after the checkpoint: no proof yet
    answer = logged_in.get("/audit/export.csv", query_string={"actor": "supplier"})
    assert answer.status_code == 200
    assert answer.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))
    assert len(rows) == 4
    assert rows[0]["checkpoint"] == signed.note
    assert {r["tree_source"] for r in rows} == {"checkpoint"}
    assert {int(r["tree_size"]) for r in rows} == {signed.size}
    proven = [
        {"seq": r["seq"], "leaf_hash": r["leaf_hash"], "proof": r["proof"].split()}
        for r in rows
        if int(r["seq"]) < signed.size
    ]
    assert len(proven) == 3
    assert check_proofs(proven, signed.size, signed.root) == 3
    assert rows[-1]["proof"] == ""
    # the JSON names the key the checkpoint's signature opens under
    doc = logged_in.get("/audit/export.json", query_string={"actor": "supplier"}).json
    assert doc is not None
    verifier = note.Verifier.from_vkey(doc["tree"]["verifier_key"])
    opened = note.parse_checkpoint(note.open_note(doc["tree"]["checkpoint"], verifier))
    assert (opened.size, opened.root) == (signed.size, signed.root)
    assert base64.b64decode(doc["tree"]["root"]) == signed.root


def test_an_export_is_bounded(
    logged_in: FlaskClient, inst: Instance, monkeypatch: pytest.MonkeyPatch, world: dict[str, str]
) -> None:
    monkeypatch.setattr(auditing, "EXPORT_LIMIT", 2)
    monkeypatch.setattr(auditing.export, "__kwdefaults__", {"limit": 2})
    answer = logged_in.get("/audit/export.json", headers={"Accept": "application/json"})
    assert answer.status_code == 413
    assert answer.json is not None
    assert answer.json["code"] == "export_too_large"
    assert logged_in.get("/audit/export.xml").status_code == 404


# -- verify now ------------------------------------------------------------------------------


def test_verify_now_reports_an_intact_log_and_an_altered_one(
    logged_in: FlaskClient, inst: Instance, world: dict[str, str]
) -> None:
    with inst.sessions() as session:
        checkpoints.sign(session, inst)
    page = logged_in.get("/audit/verify").get_data(as_text=True)
    token = csrf_token_in(page)
    assert logged_in.post("/audit/verify", data={"csrf_token": "forged"}).status_code == 403
    answer = logged_in.post("/audit/verify", data={"csrf_token": token})
    assert answer.status_code == 200
    assert "The log is intact" in answer.get_data(as_text=True)
    assert "1 signed checkpoint(s)" in answer.get_data(as_text=True)
    assert said(entries(inst)[-1]).startswith("auditor verified the access log: intact")
    with inst.sessions() as session:
        session.execute(
            update(AccessLogEntry).where(AccessLogEntry.seq == 1).values(purpose="tampered")
        )
        session.commit()
    answer = logged_in.post("/audit/verify", data={"csrf_token": token})
    assert "The log is not intact" in answer.get_data(as_text=True)
    assert "1" in answer.get_data(as_text=True)


def test_verify_now_is_rate_limited(logged_in: FlaskClient) -> None:
    token = csrf(logged_in, "/audit/verify")
    answers = [
        logged_in.post("/audit/verify", data={"csrf_token": token}).status_code for _ in range(4)
    ]
    assert answers == [200, 200, 200, 429]


def test_exports_are_rate_limited_per_auditor(logged_in: FlaskClient) -> None:
    answers = [logged_in.get("/audit/export.json").status_code for _ in range(11)]
    assert answers == [200] * 10 + [429]


@pytest.mark.parametrize(
    "path",
    [
        "/audit/export.json?until=9999-12-31",
        "/audit/export.csv?until=9999-12-31",
        "/audit/anomalies?since=9999-12-20&until=9999-12-31",
        "/audit/anomalies?since=0001-01-01&until=0001-01-05",
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_a_400_not_a_500(
    logged_in: FlaskClient, path: str
) -> None:
    answer = logged_in.get(path, headers={"Accept": "application/json"})
    assert answer.status_code == 400
    assert answer.json is not None
    assert answer.json["code"] == "invalid_audit_filter"
