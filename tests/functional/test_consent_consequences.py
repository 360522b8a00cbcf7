"""The consent screen shows consequences; re-authorising keeps the end date; suppliers are
named in words, never by id; a blocked supplier's grants open nothing."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from infomediary.audit.log import Actor
from infomediary.audit.reasons import render
from infomediary.models import AccessLogEntry, ConsentGrant, Supplier, SupplierBlock, utcnow
from infomediary.services import Context, customer_policy
from infomediary.services.consent_grants import list_grants
from infomediary.services.exports import SupplierNames
from tests.factories import make_customer
from tests.oauth_helpers import browser_login, client_session, consent, make_supplier

EMAIL, PASSWORD = "ada@example.org", "correct horse battery"
PROFILE = {"name": "Ada Lovelace", "postcode": "2000", "interests": ["books"]}


@pytest.fixture
def customer(inst) -> str:
    return make_customer(inst, email=EMAIL, password=PASSWORD, name="Ada Lovelace", profile=PROFILE)


def _rule(inst, customer: str, category: str, purpose: str, mode: str) -> None:
    with inst.sessions() as session:
        customer_policy.set_rule(
            session,
            inst,
            customer,
            category=category,
            purpose=purpose,
            mode=mode,
            ctx=Context(Actor.customer(customer)),
        )


def _screen(live_server, browser, client, purpose: str = "marketing") -> str:
    url, _ = client.create_authorization_url(
        f"{live_server}/oauth/authorize", code_verifier="v" * 48, purpose=purpose
    )
    page = browser.get(url)
    assert page.status_code == 200, page.text
    return " ".join(html.unescape(page.text).split())


def test_the_screen_shows_what_why_until_when_and_where_it_widens_the_policy(
    live_server, inst, customer
) -> None:
    _rule(inst, customer, "identity", "marketing", "pseudonymous")
    _rule(inst, customer, "interests", "marketing", "never")
    supplier = make_supplier(
        inst,
        name="Acme Books",
        scopes=("profile.identity:read", "profile.interests:read", "purchases:read"),
    )
    client = client_session(
        live_server, supplier, "profile.identity:read profile.interests:read purchases:read"
    )
    page = _screen(live_server, browser_login(live_server, EMAIL, PASSWORD), client)
    assert "to market their products and offers to you" in page
    assert "dpv:Marketing" in page
    assert "your name, email, phone and postal address" in page
    # widening, with the policy's own words beside it
    assert (
        "Your policy says: “Identity, for marketing, by any supplier: only under a pseudonym, "
        "never with your name”. Allowing this lets Acme Books see it with your name." in page
    )
    # a never rule stays blocked
    assert 'value="profile.interests:read" disabled' in page
    assert "Blocked" in page
    # no purchases held: marked
    assert "You have no purchase history here yet" in page
    # until when: the default's end date
    assert (utcnow() + timedelta(days=90)).strftime("%Y") in page
    assert "data-until-shown" in page
    assert supplier.id not in page
    assert "A consent is a specific yes to Acme Books" in page


def test_reauthorising_keeps_the_existing_end_date_unless_changed(
    live_server, inst, customer
) -> None:
    supplier = make_supplier(inst, name="Acme Books")
    client = client_session(live_server, supplier, "profile.identity:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    consent(live_server, browser, client, purpose="service", expiry="30d")
    with inst.sessions() as session:
        first = session.execute(select(ConsentGrant)).scalar_one().expires_at
    assert first is not None
    page = _screen(live_server, browser, client, purpose="service")
    assert "You already allowed Acme Books this" in page
    assert '<option value="keep"' in page
    assert 'value="keep" data-until' in page
    assert "keeps that end date unless you choose another" in page
    # the default answer keeps the date (the form sends "keep" selected)
    consent(live_server, browser, client, purpose="service", expiry="keep")
    with inst.sessions() as session:
        grants = session.execute(select(ConsentGrant)).scalars().all()
    assert len(grants) == 1
    assert grants[0].expires_at == first
    # choosing another date changes it
    consent(live_server, browser, client, purpose="service", expiry="365d")
    with inst.sessions() as session:
        changed = session.execute(select(ConsentGrant)).scalar_one().expires_at
    assert changed is not None
    assert changed - first > timedelta(days=300)


def test_withheld_reasons_and_log_name_the_supplier_in_words(live_server, inst, customer) -> None:
    supplier = make_supplier(inst, name="Zenith Travel")
    client = client_session(live_server, supplier, "profile.identity:read profile.interests:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    result = consent(live_server, browser, client, purpose="marketing")
    client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    _rule(inst, customer, "interests", "marketing", "never")
    body = client.get(f"{live_server}/api/v1/me").json()
    (withheld,) = body["withheld"]
    assert "Zenith Travel" in withheld["reason"]
    assert supplier.id not in withheld["reason"]
    page = browser.get(f"{live_server}/activity?actor=supplier").text
    assert "Zenith Travel" in page
    assert supplier.id not in re.sub(r'href="[^"]*"', "", page)  # only in links


def test_a_blocked_suppliers_grant_opens_nothing_and_is_logged(live_server, inst, customer) -> None:
    supplier = make_supplier(inst, name="Acme Books")
    client = client_session(live_server, supplier, "profile.identity:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    result = consent(live_server, browser, client, purpose="service")
    client.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    assert client.get(f"{live_server}/api/v1/me").status_code == 200
    with inst.sessions() as session:
        session.add(SupplierBlock(customer_id=customer, supplier_id=supplier.id))
        session.commit()
    refused = client.get(f"{live_server}/api/v1/me")
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert "identity" not in problem
    assert "You blocked Acme Books" in refused.text
    assert supplier.id not in refused.text
    with inst.sessions() as session:
        last = (
            session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.actor_type == "supplier")
                .order_by(AccessLogEntry.seq.desc())
            )
            .scalars()
            .first()
        )
        assert last is not None
        assert last.outcome == "denied"
        names = SupplierNames.lookup(session, [supplier.id])
        assert "You blocked Acme Books" in render(last.reason_data, last.reason, names.shown)
        statuses = [item.status for item in list_grants(session, customer)]
    assert statuses == ["blocked"]


def test_the_consents_list_says_active_expired_revoked_suspended(inst, customer) -> None:
    from tests.factories import make_grant

    active = make_supplier(inst, name="Active Shop")
    suspended = make_supplier(inst, name="Suspended Shop")
    make_grant(inst, customer, active.id)
    make_grant(inst, customer, suspended.id)
    with inst.sessions() as session:
        session.get_one(Supplier, suspended.id).status = "suspended"
        session.commit()
        found = {i.supplier.name: i.status for i in list_grants(session, customer)}
    assert found == {"Active Shop": "active", "Suspended Shop": "suspended"}
    with inst.sessions() as session:
        grant = session.execute(
            select(ConsentGrant).where(ConsentGrant.supplier_id == active.id)
        ).scalar_one()
        grant.expires_at = utcnow() - timedelta(days=1)
        session.commit()
        assert list_grants(session, customer)[-1].status in {"expired", "suspended"}
        found = {i.supplier.name: i.status for i in list_grants(session, customer)}
    assert found["Active Shop"] == "expired"


def test_the_preview_names_a_verified_supplier_in_words(inst, customer) -> None:
    """'What can a supplier see?': every reason names the supplier, verified mark included."""
    from infomediary.services import decisions

    supplier = make_supplier(inst, name="Acme Books")
    with inst.sessions() as session:
        session.get_one(Supplier, supplier.id).verified_at = utcnow()
        session.commit()
    _rule(inst, customer, "identity", "marketing", "pseudonymous")
    with inst.sessions() as session:
        row = session.get_one(Supplier, supplier.id)
        verdict = decisions.preview(session, inst, customer, row, "marketing")
    assert verdict.categories
    for item in verdict.categories:
        assert "Acme Books (verified)" in item.reason, item.reason
        assert supplier.id not in item.reason
    (identity,) = [v for v in verdict.categories if v.category == "identity"]
    assert "do not allow" in identity.reason or "does not allow" in identity.reason


def test_a_refused_answer_comes_back_as_chosen(live_server, inst, customer) -> None:
    from tests.conftest import csrf_token_in

    supplier = make_supplier(inst, name="Acme Books")
    client = client_session(live_server, supplier, "profile.identity:read")
    browser = browser_login(live_server, EMAIL, PASSWORD)
    url, _ = client.create_authorization_url(
        f"{live_server}/oauth/authorize", code_verifier="v" * 48, purpose="service"
    )
    token = csrf_token_in(browser.get(url).text)
    answer = browser.post(
        url,
        data={"csrf_token": token, "expiry": "30d", "decision": "approve"},
        allow_redirects=False,
    )
    assert answer.status_code == 400
    assert "Choose at least one kind of data, or deny." in answer.text
    assert 'value="30d" data-until' in answer.text
    assert re.search(r'value="30d" data-until="[^"]*" selected', answer.text)
    assert 'value="profile.identity:read" checked' not in answer.text


def test_a_revoked_consent_is_listed_as_revoked(inst, customer) -> None:
    from infomediary.services.consent_grants import revoke_grant
    from tests.factories import make_grant

    supplier = make_supplier(inst, name="Acme Books")
    grant = make_grant(inst, customer, supplier.id)
    with inst.sessions() as session:
        revoke_grant(
            session, inst, customer, grant.id, Context(Actor.customer(customer)), "http://x"
        )
        (item,) = list_grants(session, customer)
    assert item.status == "revoked"
    assert not item.active
