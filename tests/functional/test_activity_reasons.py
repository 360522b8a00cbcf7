"""The reasons a customer reads in "Who accessed my data" and in the export: rendered when
shown, with suppliers by name (never by id), and whole however long."""

from __future__ import annotations

import html
import json
import re

from sqlalchemy import select

from infomediary.audit.log import Actor
from infomediary.audit.reasons import Reason, render
from infomediary.models import AccessLogEntry, Supplier
from infomediary.services import Context, resource
from infomediary.services.suppliers import verify_supplier
from tests.conftest import csrf
from tests.factories import make_customer, make_grant, make_supplier

EMAIL, PASSWORD = "reader@example.org", "correct horse battery"
SCOPES = ("profile.demographics:read", "profile.identity:read", "profile.interests:read")


def _read_by_supplier(inst, customer_id: str, name: str) -> str:
    """A supplier named ``name`` reads three categories under a consent; its id."""
    creds = make_supplier(inst, name=name, scopes=SCOPES)
    make_grant(inst, customer_id, creds.id, scopes=SCOPES, purpose="service")
    with inst.sessions() as session:
        supplier = session.get(Supplier, creds.id)
        assert supplier is not None
        resource.release(
            session,
            inst,
            supplier,
            customer_id,
            list(SCOPES),
            "service",
            Context.supplier(creds.id),
        )
    return creds.id


def _reads(inst, customer_id: str) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(
            session.execute(
                select(AccessLogEntry).where(
                    AccessLogEntry.customer_id == customer_id, AccessLogEntry.action == "read"
                )
            ).scalars()
        )


def test_the_activity_page_names_the_supplier_and_shows_a_long_reason_whole(
    client, auth, inst
) -> None:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    supplier_id = _read_by_supplier(inst, customer_id, "Zenith Travel")
    (entry,) = _reads(inst, customer_id)
    assert entry.reason_data is not None
    assert json.loads(entry.reason_data)["code"] == "resource.read"
    auth.login(EMAIL, PASSWORD)
    page = html.unescape(client.get("/activity?actor=supplier").get_data(as_text=True))
    assert "Zenith Travel (supplier)" in page
    sentences = [
        f"Your rule '{what}, for providing the service you asked for, by Zenith Travel: with "
        f"your name' allows Zenith Travel to see your {what.lower()}, knowing it is you."
        for what in ("Demographics", "Identity", "Interests")
    ]
    shown = " ".join(sentences)
    assert len(shown) > 255  # longer than the old column: nothing is cut
    assert shown in page
    text = re.sub(r"<[^>]+>", "", page)  # the label links to the supplier's page by id
    assert supplier_id not in text  # neither in the reason nor in the actor's label


def test_a_verified_supplier_is_marked_and_a_gone_one_is_said_to_be(client, auth, inst) -> None:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    supplier_id = _read_by_supplier(inst, customer_id, "Northwind")
    with inst.sessions() as session:
        verify_supplier(session, supplier_id)
        Context(Actor.system("test")).log(
            session,
            "offer",
            customer_id=customer_id,
            reason=Reason("offers.blocked", {"supplier": "0e426b19-35e4-4a6b-9d59-000000000000"}),
        )
        session.commit()
    auth.login(EMAIL, PASSWORD)
    page = html.unescape(client.get("/activity").get_data(as_text=True))
    assert "allows Northwind (verified) to see your identity, knowing it is you." in page
    assert "a supplier no longer registered blocked: no more offers or counts" in page
    assert "0e426b19" not in page


def test_the_export_carries_the_sentence_the_structured_reason_and_suppliers_by_name(
    client, auth, inst
) -> None:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD)
    supplier_id = _read_by_supplier(inst, customer_id, "Zenith Travel")
    auth.login(EMAIL, PASSWORD)
    response = client.post("/account/export", data={"csrf_token": csrf(client, "/account")})
    assert response.status_code == 200
    log = json.loads(response.get_data(as_text=True))["access_log"]
    (read,) = [e for e in log if e["action"] == "read" and e["actor_type"] == "supplier"]
    assert (read["actor_id"], read["actor_name"]) == (supplier_id, "Zenith Travel")
    assert read["reason_code"] == "resource.read"
    verdict = read["reason_params"]["verdict"]
    assert verdict["supplier"] == supplier_id
    assert [c["category"] for c in verdict["categories"]] == [
        "demographics",
        "identity",
        "interests",
    ]
    assert {r["mode"] for c in verdict["categories"] for r in c["rules"]} == {"direct"}
    assert read["suppliers"] == [{"supplier_id": supplier_id, "supplier_name": "Zenith Travel"}]
    structured = {"code": read["reason_code"], "params": read["reason_params"]}
    assert read["reason"] == render(json.dumps(structured), "", lambda _: "Zenith Travel")
    assert "allows Zenith Travel to see your interests, knowing it is you." in read["reason"]
    granted = next(e for e in log if e["action"] == "consent")
    assert granted["reason"] == "consent granted for Zenith Travel"
    assert (granted["reason_code"], granted["reason_params"]) == (
        "consent.granted",
        {"supplier": supplier_id},
    )
