"""Offers through the broker, the customer's inbox, and the rewards ledger."""

from __future__ import annotations

from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from infomediary import errors
from infomediary.demo import seed_synthetic
from infomediary.models import BudgetCharge, Job, Offer, OfferDelivery, Supplier
from infomediary.services import offer_inbox, offers, rewards
from infomediary.services.jobs import run_pending
from tests.conftest import csrf_token_in
from tests.factories import make_customer, make_grant, make_offer
from tests.oauth_helpers import browser_login, make_supplier

CUSTOMER = ("offers@example.org", "correct horse battery")
QUERY = {
    "purpose": "marketing",
    "where": {"region": ["NSW", "VIC", "QLD", "WA", "SA", "TAS", "ACT", "NT"]},
}
OFFER = {
    **QUERY,
    "title": "10% off books",
    "body": "Show this at the counter.",
    "reward_cents": 150,
    "max_recipients": 100,
    "expires_in_days": 7,
}


@pytest.fixture
def population(inst) -> None:
    with inst.sessions() as session:
        seed_synthetic(session, inst, 300, workers=1)
    make_customer(
        inst,
        email=CUSTOMER[0],
        password=CUSTOMER[1],
        profile={"postcode": "2000", "birth_year": 1980, "interests": ["books"]},
    )


def _client(live_server, inst, name="Offer Co", fund=1_000_000):
    creds = make_supplier(
        inst, name=name, scopes=("offers:send",), purposes=("marketing",), redirect_uris=()
    )
    if fund:
        with inst.sessions() as session:
            rewards.fund_supplier(session, session.get(Supplier, creds.id), fund)
            session.commit()
    client = OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope="offers:send",
        token_endpoint=f"{live_server}/oauth/token",
    )
    client.fetch_token(grant_type="client_credentials")
    return client, creds


def _send(live_server, client, inst, body) -> dict[str, Any]:
    """POST an offer (202, queued), let the due jobs run, and read the offer back."""
    response = client.post(f"{live_server}/api/v1/offers", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    run_pending(inst)
    view = client.get(f"{live_server}/api/v1/offers/{response.json()['id']}")
    assert view.status_code == 200, view.text
    return dict(view.json())


def _ledger_total(inst) -> int:
    with inst.sessions() as session:
        return rewards.total_of_all_balances(session)


def test_offer_is_delivered_pseudonymously_and_paid_on_acceptance(
    live_server, inst, population
) -> None:
    client, _ = _client(live_server, inst)
    sent = client.post(f"{live_server}/api/v1/offers", json={**OFFER, "max_recipients": 1000})
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "queued"
    assert sent.json()["epsilon_spent"] == pytest.approx(0.1)
    run_pending(inst)
    body = client.get(f"{live_server}/api/v1/offers/{sent.json()['id']}").json()
    assert body["status"] == "delivered"
    assert body["reach"] >= offers.delivery_threshold(inst.settings)
    assert "recipients" not in body
    assert "customers" not in body
    browser = browser_login(live_server, *CUSTOMER)
    inbox = browser.get(f"{live_server}/inbox").text
    assert "10% off books" in inbox
    token = csrf_token_in(browser.get(f"{live_server}/inbox").text)
    accepted = browser.post(
        f"{live_server}/inbox/{body['id']}/accept",
        data={"csrf_token": token},
        allow_redirects=False,
    )
    assert accepted.status_code == 302
    view = client.get(f"{live_server}/api/v1/offers/{body['id']}").json()
    assert len(view["accepted"]) == 1
    assert view["accepted"][0]["sub"].startswith("off_")  # not the identified pseudonym
    assert "Offer Co" in browser.get(f"{live_server}/inbox").text
    assert "$1.50" in browser.get(f"{live_server}/inbox").text
    assert _ledger_total(inst) == 0
    again = browser.post(f"{live_server}/inbox/{body['id']}/accept", data={"csrf_token": token})
    assert again.status_code == 400  # answered already: no second reward


def test_cap_limits_recipients_and_escrow(live_server, inst, population) -> None:
    client, creds = _client(live_server, inst)
    sent = _send(live_server, client, inst, {**OFFER, "max_recipients": 60})
    with inst.sessions() as session:
        delivered = session.execute(
            select(func.count()).where(OfferDelivery.offer_id == sent["id"])
        ).scalar_one()
        escrow = rewards.account(session, "escrow", sent["id"])
        assert rewards.balance(session, escrow.id) == 150 * delivered
        supplier_balance = rewards.balance(
            session, rewards.account(session, "supplier", creds.id).id
        )
    assert delivered == 60
    assert supplier_balance == 1_000_000 - 150 * 60


def test_small_audience_gets_nothing_delivered(live_server, inst, population) -> None:
    client, creds = _client(live_server, inst)
    sent = _send(
        live_server,
        client,
        inst,
        {**OFFER, "where": {"region": ["NT"], "age_band": ["65+"], "interests": ["kosher-food"]}},
    )
    assert sent["status"] == "too_small"
    assert sent["reach"] is None
    assert sent["suppressed"] is True
    with inst.sessions() as session:
        assert (
            session.execute(
                select(func.count()).where(OfferDelivery.offer_id == sent["id"])
            ).scalar_one()
            == 0
        )
        # nothing was delivered, so the whole escrow went back at once
        assert rewards.balance(session, rewards.account(session, "escrow", sent["id"]).id) == 0
        mine = rewards.balance(session, rewards.account(session, "supplier", creds.id).id)
        assert mine == 1_000_000


def test_insufficient_funds_is_402_and_nothing_delivered(live_server, inst, population) -> None:
    client, _ = _client(live_server, inst, fund=0)
    response = client.post(f"{live_server}/api/v1/offers", json=OFFER)
    assert response.status_code == 402
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "insufficient_funds"
    assert response.json()["status"] == 402
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(OfferDelivery)).scalar_one() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"reward_cents": -1}, "reward_cents"),
        ({"max_recipients": 0}, "max_recipients"),
        ({"expires_in_days": 365}, "expires_in_days"),
        ({"purpose": "research"}, "purpose"),
        ({"where": {"email": ["x"]}}, "where"),
    ],
)
def test_bad_offers_are_400_and_free(live_server, inst, population, change, field) -> None:
    client, _ = _client(live_server, inst)
    response = client.post(f"{live_server}/api/v1/offers", json={**OFFER, **change})
    assert response.status_code == 400
    assert field in response.json()["errors"]
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(BudgetCharge)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(Offer)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(Job)).scalar_one() == 0


def test_block_excludes_from_later_offers_and_flags(live_server, inst, population) -> None:
    client, creds = _client(live_server, inst)
    first = _send(live_server, client, inst, {**OFFER, "max_recipients": 1000})
    browser = browser_login(live_server, *CUSTOMER)
    token = csrf_token_in(browser.get(f"{live_server}/inbox").text)
    assert (
        browser.post(
            f"{live_server}/inbox/{first['id']}/block",
            data={"csrf_token": token},
            allow_redirects=False,
        ).status_code
        == 302
    )
    second = _send(live_server, client, inst, {**OFFER, "title": "Another", "max_recipients": 1000})
    with inst.sessions() as session:
        mine = session.execute(
            select(OfferDelivery.offer_id)
            .join(Supplier, Supplier.id == creds.id)
            .where(OfferDelivery.offer_id == second["id"])
        ).all()
        assert mine  # others still receive it
        from infomediary.models import Customer
        from infomediary.services.offer_inbox import flagged_suppliers

        ours = session.execute(
            select(Customer.id).where(Customer.synthetic.is_(False))
        ).scalar_one()
        assert session.get(OfferDelivery, (second["id"], ours)) is None
        assert flagged_suppliers(session, threshold=1) == {creds.id: 1}


def test_other_suppliers_and_customers_cannot_reach_an_offer(live_server, inst, population) -> None:
    client, _ = _client(live_server, inst)
    sent = _send(live_server, client, inst, OFFER)
    other, _ = _client(live_server, inst, name="Nosy Co")
    assert other.get(f"{live_server}/api/v1/offers/{sent['id']}").status_code == 404
    make_customer(inst, email="nobody@example.org", password="correct horse battery")
    stranger = browser_login(live_server, "nobody@example.org", "correct horse battery")
    token = csrf_token_in(stranger.get(f"{live_server}/inbox").text)
    assert (
        stranger.post(
            f"{live_server}/inbox/{sent['id']}/accept", data={"csrf_token": token}
        ).status_code
        == 404
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["fund", "escrow", "pay"]), st.integers(1, 5_000)),
        min_size=1,
        max_size=25,
    )
)
def test_ledger_always_balances(inst, steps) -> None:
    from tests.conftest import empty_tables

    empty_tables(inst)
    creds = make_supplier(
        inst, name="Ledger Co", scopes=("offers:send",), purposes=("marketing",), redirect_uris=()
    )
    customer = make_customer(inst)
    with inst.sessions() as session:
        supplier = session.get(Supplier, creds.id)
        for number, (kind, cents) in enumerate(steps):
            try:
                if kind == "fund":
                    rewards.fund_supplier(session, supplier, cents)
                elif kind == "escrow":
                    rewards.escrow_offer(session, supplier.id, "offer-1", cents)
                else:
                    rewards.pay_reward(session, supplier.id, "offer-1", customer, cents)
                session.commit()
            except errors.InsufficientFunds:
                session.rollback()
            assert rewards.total_of_all_balances(session) == 0, number
            for kind_, owner in (
                ("supplier", supplier.id),
                ("escrow", "offer-1"),
                ("customer", customer),
            ):
                assert rewards.balance(session, rewards.account(session, kind_, owner).id) >= 0
            session.rollback()


def test_unbalanced_transactions_are_refused(inst) -> None:
    with inst.sessions() as session:
        a = rewards.account(session, "customer", "x")
        with pytest.raises(ValueError, match="sum to zero"):
            rewards.post(session, "bogus", [(a, 5)])


def test_contact_details_only_when_shared(live_server, inst, population) -> None:
    client, _ = _client(live_server, inst)
    sent = _send(live_server, client, inst, {**OFFER, "max_recipients": 1000})
    browser = browser_login(live_server, *CUSTOMER)
    token = csrf_token_in(browser.get(f"{live_server}/inbox").text)
    # sharing before accepting is refused
    assert (
        browser.post(
            f"{live_server}/inbox/{sent['id']}/share", data={"csrf_token": token}
        ).status_code
        == 400
    )
    browser.post(f"{live_server}/inbox/{sent['id']}/accept", data={"csrf_token": token})
    view = client.get(f"{live_server}/api/v1/offers/{sent['id']}").json()
    sub = view["accepted"][0]["sub"]
    assert view["accepted"][0]["contact_shared"] is False
    denied = client.get(f"{live_server}/api/v1/offers/{sent['id']}/contacts/{sub}")
    assert denied.status_code == 403
    assert denied.json()["code"] == "policy_denied"
    assert denied.json()["withheld"] == [
        {"category": "identity", "reason": "not shared from the offer"}
    ]
    page = browser.get(f"{live_server}/inbox/{sent['id']}/share")
    assert "name, email, phone and postal address" in page.text
    shared = browser.post(
        f"{live_server}/inbox/{sent['id']}/share",
        data={"csrf_token": token, "expiry": "30d"},
        allow_redirects=False,
    )
    assert shared.status_code == 302
    assert client.get(f"{live_server}/api/v1/offers/{sent['id']}").json()["accepted"][0][
        "contact_shared"
    ]
    contact = client.get(f"{live_server}/api/v1/offers/{sent['id']}/contacts/{sub}")
    assert contact.status_code == 200, contact.text
    assert contact.json()["identity"]["email"] == CUSTOMER[0]
    assert contact.json()["sub"] == sub
    assert "interests" not in contact.json()
    other, _ = _client(live_server, inst, name="Nosy Co")
    assert other.get(f"{live_server}/api/v1/offers/{sent['id']}/contacts/{sub}").status_code == 404
    assert (
        client.get(f"{live_server}/api/v1/offers/{sent['id']}/contacts/psn_unknown").status_code
        == 404
    )
    # revoking the consent ends it at once
    from infomediary.models import ConsentGrant

    with inst.sessions() as session:
        grant_id = session.execute(select(ConsentGrant.id)).scalar_one()
    consents_page = browser.get(f"{live_server}/consents").text
    token = csrf_token_in(consents_page)
    browser.post(f"{live_server}/consents/{grant_id}/revoke", data={"csrf_token": token})
    assert client.get(f"{live_server}/api/v1/offers/{sent['id']}/contacts/{sub}").status_code == 403


def test_funds_check_does_not_depend_on_the_audience(live_server, inst, population) -> None:
    """Escrow is reward x cap, so 402 or 201 says nothing about how many customers match."""
    cap, reward = 500, 10
    client, creds = _client(live_server, inst, fund=cap * reward - 1)
    for where in ({"region": ["NSW"]}, {"region": ["NT"], "age_band": ["65+"]}):
        response = client.post(
            f"{live_server}/api/v1/offers",
            json={**OFFER, "where": where, "reward_cents": reward, "max_recipients": cap},
        )
        assert response.status_code == 402
    with inst.sessions() as session:
        supplier = session.get(Supplier, creds.id)
        rewards.fund_supplier(session, supplier, 1)
        session.commit()
    sent = _send(
        live_server, client, inst, {**OFFER, "reward_cents": reward, "max_recipients": cap}
    )
    assert sent["status"] == "delivered"
    with inst.sessions() as session:
        escrow = rewards.account(session, "escrow", sent["id"])
        assert rewards.balance(session, escrow.id) == cap * reward
        assert rewards.balance(session, rewards.account(session, "supplier", creds.id).id) == 0
    # viewing an expired offer changes nothing: its closing job does, at expiry
    from datetime import datetime, timedelta

    assert client.get(f"{live_server}/api/v1/offers/{sent['id']}").json()["status"] == "delivered"
    run_pending(inst, datetime.fromisoformat(sent["expires_at"]) + timedelta(seconds=1))
    view = client.get(f"{live_server}/api/v1/offers/{sent['id']}").json()
    assert view["status"] == "closed"
    with inst.sessions() as session:
        assert (
            rewards.balance(session, rewards.account(session, "supplier", creds.id).id)
            == cap * reward
        )
        assert rewards.total_of_all_balances(session) == 0


def test_concurrent_acceptances_pay_once(inst, population) -> None:
    import threading

    from infomediary.audit.log import Actor
    from infomediary.models import Customer
    from infomediary.services import Context

    creds = make_supplier(
        inst,
        name="Race Co",
        scopes=("offers:send",),
        purposes=("marketing",),
        redirect_uris=(),
        fund_cents=1_000_000,
    )
    sent = make_offer(inst, creds.id, **{**OFFER, "max_recipients": 1000})
    with inst.sessions() as session:
        customer = session.execute(
            select(Customer.id).where(Customer.synthetic.is_(False))
        ).scalar_one()
    outcomes: list[str] = []

    def accept() -> None:
        with inst.sessions() as session:
            try:
                offer_inbox.respond(
                    session, inst, customer, sent["id"], "accept", Context(Actor.customer(customer))
                )
                outcomes.append("paid")
            except Exception as exc:
                outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=accept) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("paid") == 1, outcomes
    with inst.sessions() as session:
        earned = rewards.balance(session, rewards.account(session, "customer", customer).id)
    assert earned == OFFER["reward_cents"]


def test_an_earlier_grant_never_ties_an_offer_response_to_identity(
    live_server, inst, population, app
) -> None:
    """A customer who already let the supplier read their identity for marketing, and clicks
    only "Accept", stays a pseudonym for the offer until they share for that very offer."""
    from datetime import timedelta

    from infomediary.models import ConsentGrant, Customer, utcnow

    client, creds = _client(live_server, inst)
    with inst.sessions() as session:
        customer = session.execute(
            select(Customer).where(Customer.synthetic.is_(False))
        ).scalar_one()
    earlier = make_grant(
        inst,
        customer.id,
        creds.id,
        scopes=("profile.identity:read", "profile.interests:read"),
        purpose="marketing",
        expires_at=utcnow() + timedelta(days=30),
    )
    earlier_id, earlier_expiry = earlier.id, earlier.expires_at
    sent = _send(live_server, client, inst, {**OFFER, "max_recipients": 1000})
    browser = browser_login(live_server, *CUSTOMER)
    token = csrf_token_in(browser.get(f"{live_server}/inbox").text)
    browser.post(f"{live_server}/inbox/{sent['id']}/accept", data={"csrf_token": token})
    view = client.get(f"{live_server}/api/v1/offers/{sent['id']}").json()
    sub = view["accepted"][0]["sub"]
    assert view["accepted"][0]["contact_shared"] is False
    refused = client.get(f"{live_server}/api/v1/offers/{sent['id']}/contacts/{sub}")
    assert refused.status_code == 403, refused.text
    assert "identity" not in refused.json()
    # The share page tells the truth: the supplier can already read the identity elsewhere.
    page = browser.get(f"{live_server}/inbox/{sent['id']}/share").text
    assert "only knows you by a pseudonym" not in page
    assert "can already read your name and contact details" in page
    shared = browser.post(
        f"{live_server}/inbox/{sent['id']}/share",
        data={"csrf_token": token, "expiry": "never"},
        allow_redirects=False,
    )
    assert shared.status_code == 302
    contact = client.get(f"{live_server}/api/v1/offers/{sent['id']}/contacts/{sub}")
    assert contact.status_code == 200, contact.text
    assert contact.json()["identity"]["email"] == CUSTOMER[0]
    # The earlier grant is neither widened, narrowed nor extended by the share.
    with inst.sessions() as session:
        kept = session.get(ConsentGrant, earlier_id)
        assert kept is not None
        assert kept.scopes == "profile.identity:read profile.interests:read"
        assert kept.expires_at == earlier_expiry
        assert kept.offer_id is None
        share_grant = session.execute(
            select(ConsentGrant).where(ConsentGrant.offer_id == sent["id"])
        ).scalar_one()
        assert share_grant.id != earlier_id


def test_the_inbox_names_every_predicate_and_the_purpose(inst, population) -> None:
    """What accepting reveals is the offer's whole targeting, in the attributes' words, in
    the page and in the JSON form of an inbox item."""
    from infomediary.models import Customer
    from infomediary.services.broker import CountQuery

    where = {"age_band": ["45-54"], "area": ["20"], "interests": ["books", "travel"]}
    offer = Offer(criteria=CountQuery("marketing", where, None).canonical(), purpose="marketing")
    targeting = offer_inbox.targeting(offer, Supplier(name="Acme Books"))
    assert targeting.predicates == (
        ("Age band", "45-54"),
        ("Postal district", "postcodes 20xx"),
        ("Declared interests", "Books or Travel"),
    )
    assert targeting.reveals == (
        "Acme Books will know that someone matching: Age band = 45-54, Postal district = "
        "postcodes 20xx, Declared interests = Books or Travel accepted this offer, sent for "
        "marketing"
    )
    creds = make_supplier(
        inst,
        name="Acme Books",
        scopes=("offers:send",),
        purposes=("marketing",),
        redirect_uris=(),
        fund_cents=1_000_000,
    )
    sent = make_offer(inst, creds.id, max_recipients=1000)
    assert sent["status"] == "delivered"
    with inst.sessions() as session:
        customer = session.execute(
            select(Customer.id).where(Customer.synthetic.is_(False))
        ).scalar_one()
        (item,) = offer_inbox.inbox(session, customer)
    shown = item.as_dict()
    assert shown["targeting"] == {
        "criteria": [
            {
                "attribute": "State or territory",
                "values": "ACT or NSW or NT or QLD or SA or TAS or VIC or WA",
            }
        ],
        "purpose": "marketing",
        "accepting_reveals": "Acme Books will know that someone matching: State or territory "
        "= ACT or NSW or NT or QLD or SA or TAS or VIC or WA accepted this offer, sent for "
        "marketing",
    }
    assert shown["id"] == sent["id"]
