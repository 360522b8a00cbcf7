"""An unverified account fills in its profile but grants nothing and is outside the broker;
accounts the operator creates count as verified; existing rows were migrated as verified."""

from __future__ import annotations

import hashlib
import json
import secrets
from base64 import urlsafe_b64encode
from pathlib import Path
from urllib.parse import urlencode

from alembic import command
from sqlalchemy import create_engine, select, text

from infomediary.broker.index import MatchIndex
from infomediary.instance import alembic_config
from infomediary.models import (
    AccessLogEntry,
    AuthorizationCode,
    ConsentGrant,
    Customer,
    MatchEntry,
)
from infomediary.services import accounts
from policies.model import Mode
from tests.conftest import csrf
from tests.factories import make_customer
from tests.functional.test_cli import env, run  # noqa: F401 - the CLI fixture and runner
from tests.functional.test_idor import deliver_offer
from tests.log_reasons import code_of, shown
from tests.oauth_helpers import REDIRECT, make_supplier
from tests.outbox import messages_to, newest_link

PASSWORD = "correct horse battery"
EMAIL = "ada@example.org"
PROFILE = {"postcode": "7000", "birth_year": 1980, "household_size": 2, "interests": ["books"]}


def authorize_query(client_id: str) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "profile.identity:read",
            "state": "s" * 16,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "purpose": "marketing",
        }
    )


def approve(client, query: str):
    return client.post(
        f"/oauth/authorize?{query}",
        data={
            "csrf_token": csrf(client, f"/oauth/authorize?{query}"),
            "approve_scope": ["profile.identity:read"],
            "expiry": "30d",
            "decision": "approve",
        },
    )


def test_unverified_fills_the_profile_but_cannot_grant_until_confirmed(client, auth, inst) -> None:
    auth.signup(verify=False)
    assert auth.login().status_code == 302  # an unverified account can log in
    saved = client.post(
        "/profile", data={"csrf_token": csrf(client, "/profile"), "postcode": "3000"}
    )
    assert saved.status_code == 302
    assert 'value="3000"' in client.get("/profile").get_data(as_text=True)
    account = client.get("/account").get_data(as_text=True)
    assert "Confirm your e-mail address" in account

    supplier = make_supplier(inst)
    query = authorize_query(supplier.client_id)
    refused = approve(client, query)
    assert refused.status_code == 403
    body = refused.get_data(as_text=True)
    assert "text/html" in refused.headers["Content-Type"]
    assert "Please confirm your e-mail address first" in body
    assert "Send the link again" in body
    with inst.sessions() as session:
        assert session.execute(select(ConsentGrant)).first() is None
        assert session.execute(select(AuthorizationCode)).first() is None
        denied = session.execute(
            select(AccessLogEntry).where(
                AccessLogEntry.action == "consent", AccessLogEntry.outcome == "denied"
            )
        ).scalar_one()
        assert code_of(denied) == "consent.refused_unconfirmed"
        assert "not yet confirmed" in shown(denied)

    # "Send the link again" from the refusal page, then the link: the same approval works
    client.post("/account/verification", data={"csrf_token": csrf(client, "/account")})
    link = newest_link(inst.settings, EMAIL, "/signup/verify")
    assert link is not None
    assert auth.follow(link).status_code == 302
    approved = approve(client, query)
    assert approved.status_code == 302
    assert "code=" in approved.headers["Location"]
    assert "Confirm your e-mail address" not in client.get("/account").get_data(as_text=True)


def test_unverified_cannot_share_contact_details_from_an_offer(client, auth, inst) -> None:
    auth.signup(verify=False)
    auth.login()
    with inst.sessions() as session:
        customer_id = session.execute(select(Customer.id)).scalar_one()
    supplier = make_supplier(inst)
    offer_id = deliver_offer(inst, supplier.id, customer_id)
    response = client.post(
        f"/inbox/{offer_id}/share",
        data={"csrf_token": csrf(client, "/inbox"), "expiry": "30d"},
    )
    assert response.status_code == 403
    assert "Please confirm your e-mail address first" in response.get_data(as_text=True)
    with inst.sessions() as session:
        assert session.execute(select(ConsentGrant)).first() is None


def members(inst, index: MatchIndex) -> set[int]:
    return set(
        index.select({"region": ["TAS"]}, "marketing", Mode.AGGREGATE, "x", "retail").members
    )


def ordinal(inst, customer_id: str) -> int:
    with inst.sessions() as session:
        return int(
            session.execute(
                select(MatchEntry.ordinal).where(MatchEntry.customer_id == customer_id)
            ).scalar_one()
        )


def test_unverified_customers_are_neither_counted_nor_reached(inst) -> None:
    verified = make_customer(inst, profile=PROFILE)
    pending = make_customer(inst, email="pending@example.org", profile=PROFILE, verified=False)
    index = MatchIndex(inst.keyring.secret("blind_index"))
    with inst.sessions() as session:
        index.load(session)
    assert index.members == 1
    assert members(inst, index) == {ordinal(inst, verified)}
    with inst.sessions() as session:
        entry = session.get(MatchEntry, ordinal(inst, pending))
        assert entry is not None
        assert entry.tokens == b""

    # confirming the address re-syncs the entry: the next refresh counts them
    deliver = accounts.sender(inst.settings)
    with inst.sessions() as session:
        accounts.send_verification(session, inst, deliver, pending, "http://testserver")
    link = newest_link(inst.settings, "pending@example.org", "/signup/verify")
    assert link is not None
    with inst.sessions() as session:
        accounts.verify_email(session, inst, link.split("token=")[1], "correct horse battery")
    with inst.sessions() as session:
        assert index.refresh(session)
    assert index.members == 2
    assert members(inst, index) == {ordinal(inst, verified), ordinal(inst, pending)}


def test_operator_customers_are_verified_unless_asked_not_to_be(env, inst) -> None:  # noqa: F811
    code, out = run(
        "customers", "create", "--email", "op@example.org", "--password", PASSWORD, "--json"
    )
    assert code == 0, out
    assert json.loads(out)["verified"] is True
    code, out = run(
        "customers",
        "create",
        "--email",
        "later@example.org",
        "--password",
        PASSWORD,
        "--unverified",
        "--json",
    )
    assert code == 0, out
    created = json.loads(out)
    assert created["verified"] is False
    with inst.sessions() as session:
        assert session.get(Customer, created["id"]).verified_at is None
        rows = session.execute(select(Customer.verified_at)).scalars().all()
        assert sum(v is not None for v in rows) == 1
    assert messages_to(inst.settings, "op@example.org") == []
    assert newest_link(inst.settings, "later@example.org", "/signup/verify")

    code, out = run("outbox", "--json")
    assert code == 0, out
    listed = json.loads(out)
    assert [m["to"] for m in listed] == ["later@example.org"]
    assert "/signup/verify?token=" in listed[0]["body"]
    code, out = run("outbox")
    assert "Subject: Confirm your e-mail address" in out
    assert run("outbox", "--clear")[0] == 0
    assert json.loads(run("outbox", "--json")[1]) == []
    assert "the outbox is empty" in run("outbox")[1]


def test_the_demo_logins_are_verified(env, inst) -> None:  # noqa: F811
    code, out = run("demo", "--json")
    assert code == 0, out
    with inst.sessions() as session:
        people = session.execute(select(Customer)).scalars().all()
        assert people
        assert all(p.verified_at is not None for p in people)
    for login in json.loads(out)["logins"]:
        assert messages_to(inst.settings, login["email"]) == []


def test_existing_customers_are_migrated_as_verified(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    config = alembic_config(url=url)
    command.upgrade(config, "0007")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (id, email_index, email, password_hash, synthetic, "
                "created_at) VALUES ('c1', x'00', x'00', NULL, 0, '2025-01-02 03:04:05')"
            )
        )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        verified_at = conn.execute(text("SELECT verified_at FROM customers")).scalar_one()
    engine.dispose()
    assert str(verified_at).startswith("2025-01-02 03:04:05")


def test_the_consent_screen_offers_no_allow_button_until_the_address_is_confirmed(
    client, auth, inst
) -> None:
    auth.signup(verify=False)
    assert auth.login().status_code == 302
    supplier = make_supplier(inst)
    query = authorize_query(supplier.client_id)
    page = client.get(f"/oauth/authorize?{query}").get_data(as_text=True)
    assert 'value="approve"' not in page
    assert 'value="deny"' in page
    assert "Please confirm your e-mail address first" in page
    link = newest_link(inst.settings, EMAIL, "/signup/verify")
    assert link is not None
    assert auth.follow(link).status_code == 302
    confirmed = client.get(f"/oauth/authorize?{query}").get_data(as_text=True)
    assert 'value="approve"' in confirmed
    assert "Please confirm your e-mail address first" not in confirmed
