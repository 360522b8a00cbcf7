"""The consent dashboard: policy templates and rules, the preview, and their effect."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from infomediary.models import AccessLogEntry, CustomerPolicy
from infomediary.services import policy_store
from tests.conftest import csrf
from tests.log_reasons import shown
from tests.oauth_helpers import make_supplier


@pytest.fixture
def signed_up(auth, inst):
    auth.signup()
    with inst.sessions() as session:
        return session.execute(
            select(AccessLogEntry.customer_id).where(AccessLogEntry.action == "create")
        ).scalar_one()


def test_default_policy_is_the_balanced_template(client, signed_up) -> None:
    page = client.get("/consents").get_data(as_text=True)
    assert "You have not allowed any supplier" in page
    assert "balanced" in client.get("/policy").get_data(as_text=True)


def test_applying_a_template_is_stored_encrypted_and_logged(client, inst, signed_up) -> None:
    response = client.post(
        "/policy/template",
        data={
            "csrf_token": csrf(client, "/consents"),
            "template": "private",
            "confirm": "yes",
        },
    )
    assert response.status_code == 302
    with inst.sessions() as session:
        row = session.get(CustomerPolicy, signed_up)
        assert row is not None
        assert b"private" not in row.policy  # encrypted under the customer's key
        assert policy_store.load_policy(session, inst, signed_up).template == "private"
        logged = session.execute(
            select(AccessLogEntry).where(
                AccessLogEntry.customer_id == signed_up,
                AccessLogEntry.reason_data.contains('"code":"policy.template"'),
            )
        ).scalar_one()
    assert logged.action == "update"
    assert shown(logged) == "policy set to template private"


def test_unknown_template_or_rule_values_are_400(client, signed_up) -> None:
    token = csrf(client, "/consents")
    assert (
        client.post("/policy/template", data={"csrf_token": token, "template": "lax"}).status_code
        == 400
    )
    bad = client.post(
        "/policy/rule",
        data={
            "csrf_token": token,
            "category": "identity",
            "purpose": "marketing",
            "mode": "sometimes",
        },
    )
    assert bad.status_code == 400
    assert "Unknown mode" in bad.get_data(as_text=True)


def test_rule_change_shows_in_preview(client, inst, signed_up) -> None:
    supplier = make_supplier(inst)
    token = csrf(client, "/consents")
    preview = client.get(f"/policy/preview?supplier={supplier.id}&purpose=service").get_data(
        as_text=True
    )
    assert "Acme Books, with your name, for providing the service you asked for" in preview
    client.post(
        "/policy/rule",
        data={"csrf_token": token, "category": "identity", "purpose": "service", "mode": "never"},
    )
    after = client.get(f"/policy/preview?supplier={supplier.id}&purpose=service").get_data(
        as_text=True
    )
    assert "never" in after.lower()
    with inst.sessions() as session:
        policy = policy_store.load_policy(session, inst, signed_up)
    assert any(
        r.category == "identity" and r.purpose == "service" and r.mode == "never"
        for r in policy.rules
    )


def test_preview_rejects_unknown_supplier_and_purpose(client, inst, signed_up) -> None:
    supplier = make_supplier(inst)
    assert client.get("/policy/preview?supplier=nope&purpose=service").status_code == 400
    assert client.get(f"/policy/preview?supplier={supplier.id}&purpose=spying").status_code == 400


def test_consent_pages_need_login(client) -> None:
    for path in ("/consents", "/policy", "/policy/preview?supplier=x&purpose=service"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"] == "/login"
