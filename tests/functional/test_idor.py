"""IDOR tests generated from the URL map.

Two customers each hold a consent grant with signed receipts: A's comes from the real OAuth
consent flow against the live server (so A's supplier also holds a working token), B's from
``grant_consent`` directly. Then, for every rule of ``app.url_map`` that has URL variables,
the URL is built from the filler of each variable (A's ids, or a mix of A's and B's) and
requested

* as B, logged in through the form and sending B's own CSRF token on unsafe methods:
  404, and none of A's marker values in the body;
* anonymously (with an anonymous session's CSRF token): a redirect to the login page;
* as A, the owner, last: success, which proves the URLs named real objects.

A's grant stays active (and its token keeps working) through all of B's attempts. Every
GET rule without variables is requested as B too, and must show none of A's markers.

A rule whose variables have no filler in :data:`FILLERS` fails the suite: add a filler
(or, for a rule that names no customer data, an entry in :data:`PUBLIC_VARIABLE_RULES`).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import (
    ConsentGrant,
    ConsentReceipt,
    Offer,
    OfferDelivery,
    Supplier,
    utcnow,
)
from infomediary.services import Context, agreements, intents, intents_dashboard, rewards, wallet
from infomediary.services.uow import unit_of_work
from tests.conftest import Auth, csrf
from tests.factories import make_customer, make_grant
from tests.oauth_helpers import browser_login, client_session, consent, make_supplier

PASSWORD = "correct horse battery"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})


@dataclass
class Party:
    """A customer with one grant, its receipts, and a test client logged in as them."""

    customer_id: str
    email: str
    name: str
    phone: str
    supplier_id: str
    supplier_name: str
    grant_id: str
    receipt_ids: list[str]
    receipt_jws: list[str]
    client: FlaskClient
    offer_id: str = ""
    payout_id: str = ""
    agreement_record: str = ""
    intent_id: str = ""
    bid_id: str = ""

    def markers(self) -> dict[str, str]:
        """Values unique to this customer, that must never reach anyone else."""
        values = {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "grant id": self.grant_id,
            "supplier name": self.supplier_name,
        }
        for number, (receipt_id, jws) in enumerate(
            zip(self.receipt_ids, self.receipt_jws, strict=True)
        ):
            values[f"receipt id {number}"] = receipt_id
            values[f"receipt JWS {number}"] = jws
        return values


#: How to fill each URL variable with a given customer's value. A new variable name in a
#: route fails ``test_every_variable_rule_has_a_filler`` until a filler is added here.
FILLERS: dict[str, Callable[[Party], str]] = {
    "grant_id": lambda party: party.grant_id,
    "receipt_id": lambda party: party.receipt_ids[0],
    "offer_id": lambda party: party.offer_id,
    "payout_id": lambda party: party.payout_id,
    "supplier_id": lambda party: party.supplier_id,
    "record_id": lambda party: party.agreement_record,
    "intent_id": lambda party: party.intent_id,
    "bid_id": lambda party: party.bid_id,
}
#: URL variables that name no object of anybody's (the same value for every customer).
CONSTANTS: dict[str, str] = {"action": "block"}  # valid whatever the offer's state
#: Rules with URL variables that name no customer's data (endpoint: why).
PUBLIC_VARIABLE_RULES: dict[str, str] = {
    "static": "the packaged stylesheet and icon, the same for everybody",
    "terms_api.agreement": "the public MyTerms roster: a standard agreement, the same for everybody",
    "terms_api.agreement_copy": "a supplier's bearer-token API: another supplier gets 404 "
    "(tests/functional/test_agreements.py::test_the_supplier_keeps_its_copy_and_no_other)",
    "offers_api.view": "a supplier's bearer-token API, not a customer page: another supplier "
    "gets 404 (tests/functional/test_offers.py::test_other_suppliers_and_customers_cannot_reach_an_offer)",
    "offers_api.contact": "a supplier's bearer-token API: another supplier gets 404 "
    "(tests/functional/test_offers.py::test_contact_details_only_when_shared)",
    "erasure_api.confirm": "a supplier's API (client credentials): another supplier gets 404 "
    "(tests/functional/test_supplier_page.py::test_erasure_request_end_to_end)",
    "api.push_job": "a supplier's bearer-token API: another client, even of the same customer, "
    "gets 404 (tests/functional/test_purchases_push.py::"
    "test_a_large_batch_is_a_job_only_its_client_reads)",
    "intents_api.bids": "the customer's agent's bearer-token API: another customer's agent gets "
    "404 (tests/functional/test_intents_api.py::test_another_customers_agent_reaches_none_of_it)",
    "intents_api.accept": "the customer's agent's bearer-token API: another customer's agent "
    "gets 404 (tests/functional/test_intents_api.py::test_another_customers_agent_reaches_none_of_it)",
    "intents_api.cancel": "the customer's agent's bearer-token API: another customer's agent "
    "gets 404 (tests/functional/test_intents_api.py::test_another_customers_agent_reaches_none_of_it)",
    "intents_api.intent": "a supplier's bearer-token API under the intent's pseudonym: another "
    "sector gets 403 (tests/functional/test_intents_api.py::"
    "test_reads_outside_the_sector_and_by_blocked_suppliers_are_refused_and_logged)",
    "intents_api.bid": "a supplier's bearer-token API: another sector gets 403 "
    "(tests/functional/test_intents_api.py::"
    "test_bad_bids_are_problems_that_write_nothing_but_their_refusal)",
    "intents_api.fulfilment_token": "a supplier's bearer-token API: a supplier whose bid did "
    "not win gets 409 (tests/functional/test_intents_api.py::"
    "test_the_full_flow_from_intent_to_delivery)",
    "security.passkey_remove": "needs the owner's password as well; another customer gets 404 "
    "(tests/functional/test_account_security.py::"
    "test_another_customer_cannot_remove_a_passkey_or_end_a_session)",
    "security.session_logout": "the owner's own request would end the owner's session; another "
    "customer gets 404 (tests/functional/test_account_security.py::"
    "test_another_customer_cannot_remove_a_passkey_or_end_a_session)",
}
#: Variable rules known today; the generated cases must include at least these.
KNOWN_CUSTOMER_RULES = {
    ("/consents/<grant_id>/revoke", "POST"),
    ("/consents/<grant_id>/receipts", "GET"),
    ("/consents/<grant_id>/receipts/<receipt_id>.jws", "GET"),
    ("/inbox/<offer_id>/<action>", "POST"),
    ("/wallet/payouts/<payout_id>/cancel", "POST"),
    ("/suppliers/<supplier_id>/agreements/<record_id>.jws", "GET"),
    ("/intents/<intent_id>", "GET"),
    ("/intents/<intent_id>/bids/<bid_id>/accept", "POST"),
    ("/intents/<intent_id>/cancel", "POST"),
}
#: Dashboard pages that must be recognised as needing a login.
KNOWN_LOGIN_PAGES = {
    "/dashboard",
    "/profile",
    "/activity",
    "/counts",
    "/account",
    "/consents",
    "/purchases",
}
#: The policy page lists every active supplier in the "What can a supplier see?" picker: a
#: public directory, not a sign of anybody's grant. Supplier names are looked for elsewhere.
SUPPLIER_PICKER_RE = re.compile(r'<select id="preview-supplier".*?</select>', re.DOTALL)


def methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) - IGNORED_METHODS)


def variable_rules(app: Flask) -> tuple[list[Rule], list[str]]:
    """The rules naming customer data, and descriptions of those no filler can fill."""
    covered, unfillable = [], []
    for rule in app.url_map.iter_rules():
        if not rule.arguments or rule.endpoint in PUBLIC_VARIABLE_RULES:
            continue
        missing = sorted(rule.arguments - FILLERS.keys() - CONSTANTS.keys())
        if missing:
            unfillable.append(f"{rule.rule} ({rule.endpoint}) needs fillers for {missing}")
        else:
            covered.append(rule)
    return covered, unfillable


def constants_of(rule: Rule) -> dict[str, str]:
    return {name: CONSTANTS[name] for name in rule.arguments & CONSTANTS.keys()}


def fill_as(rule: Rule, party: Party) -> dict[str, str]:
    values = {name: FILLERS[name](party) for name in rule.arguments - CONSTANTS.keys()}
    return {**values, **constants_of(rule)}


def build(rule: Rule, values: dict[str, str]) -> str:
    built = rule.build(values, append_unknown=False)
    assert built is not None, f"cannot build {rule.rule} from {values}"
    path = built[1]
    assert path.startswith("/"), path
    return path


def send(client: FlaskClient, method: str, path: str, token: str | None) -> TestResponse:
    if method in UNSAFE:
        assert token is not None
        return client.open(path, method=method, data={"csrf_token": token})
    return client.open(path, method=method)


def leaked(body: str, markers: dict[str, str], *, public_directory: bool = False) -> list[str]:
    """The names of the markers found in ``body``."""
    found = [label for label, value in markers.items() if value in body]
    if (
        public_directory
        and "supplier name" in found
        and markers["supplier name"] not in SUPPLIER_PICKER_RE.sub("", body)
    ):
        found.remove("supplier name")
    return found


def grant_is_active(inst: Instance, grant_id: str) -> bool:
    with inst.sessions() as session:
        grant = session.get(ConsentGrant, grant_id)
        assert grant is not None
        return grant.revoked_at is None


def receipts(inst: Instance, grant_id: str) -> tuple[list[str], list[str]]:
    with inst.sessions() as session:
        rows = session.execute(
            select(ConsentReceipt)
            .where(ConsentReceipt.grant_id == grant_id)
            .order_by(ConsentReceipt.created_at)
        ).scalars()
        pairs = [(row.id, row.jws) for row in rows]
    assert pairs, f"grant {grant_id} has no receipt"
    return [receipt_id for receipt_id, _ in pairs], [jws for _, jws in pairs]


CTX = Context(Actor.system("test"))


def request_payout(inst: Instance, customer_id: str) -> str:
    """A payout of $5.00 the customer earned and asked for, still cancellable."""
    with inst.sessions() as session:
        platform = rewards.account(session, *rewards.PLATFORM)
        mine = rewards.account(session, "customer", customer_id)
        rewards.post(session, "reward", [(platform, -500), (mine, 500)])
        session.commit()
        form = wallet.PayoutInput("5.00", "DE89 3704 0044 0532 0130 00")
        return wallet.request_payout(session, inst, customer_id, form, CTX).id


def logged_in_client(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    response = Auth(client).login(email=email, password=PASSWORD)
    assert response.status_code == 302, response.status_code
    assert client.get("/dashboard").status_code == 200
    return client


def deliver_offer(inst: Instance, supplier_id: str, customer_id: str) -> str:
    """An offer in the customer's inbox, already accepted."""
    offer_id = str(uuid.uuid4())
    with inst.sessions() as session:
        session.add(
            Offer(
                id=offer_id,
                supplier_id=supplier_id,
                purpose="marketing",
                criteria="{}",
                title="An offer",
                body="Hello",
                reward_cents=0,
                max_recipients=1,
                noisy_reach=60,
                status="delivered",
                expires_at=utcnow() + timedelta(days=1),
            )
        )
        session.flush()
        # accepted, so that the owner may also share contact details for it
        session.add(OfferDelivery(offer_id=offer_id, customer_id=customer_id, status="accepted"))
        session.commit()
    return offer_id


@dataclass
class World:
    a: Party
    b: Party
    a_token_works: Callable[[], int]


def agreement_with(inst: Instance, customer_id: str, supplier_id: str) -> str:
    """A MyTerms agreement of the customer's with the supplier; its record id."""
    with inst.sessions() as session, unit_of_work(session) as uow:
        record = agreements.record_agreement(
            uow,
            inst,
            customer_id=customer_id,
            supplier_id=supplier_id,
            agreement_id="sd-base",
            context={},
        )
        uow.commit()
    return record.id


def intent_with_bid(inst: Instance, customer_id: str, bidder: Supplier) -> tuple[str, str]:
    """An open intent of the customer's with one bid on it; their ids."""
    later = utcnow().date() + timedelta(days=10)
    with inst.sessions() as session:
        posted = intents_dashboard.post(
            session,
            inst,
            customer_id,
            intents.IntentInput("books", "An atlas.", later),
            Context(Actor.customer(customer_id)),
        )
    with inst.sessions() as session:
        bid = intents.place_bid(
            session,
            inst,
            bidder,
            posted["id"],
            intents.BidInput(4500, "AUD", "In stock.", later),
            Context.supplier(bidder.id),
        )
    return str(posted["id"]), str(bid["bid"]["id"])


@pytest.fixture
def world(app: Flask, inst: Instance, live_server: str) -> Iterator[World]:
    # A: signed up with a profile; the grant comes from the real consent flow.
    a_email, a_name, a_phone = "adelaide.quokka@example.org", "Adelaide Quokkaworth", "0412 987 654"
    a_id = make_customer(
        inst, email=a_email, password=PASSWORD, name=a_name, profile={"phone": a_phone}
    )
    a_supplier = make_supplier(inst, name="Quokka Rare Books")
    oauth = client_session(live_server, a_supplier, "profile.identity:read profile.interests:read")
    browser = browser_login(live_server, a_email, PASSWORD)
    approved = consent(live_server, browser, oauth, purpose="service")
    browser.close()
    oauth.fetch_token(
        authorization_response=approved.authorization_response, code_verifier=approved.verifier
    )
    with inst.sessions() as session:
        a_grant = session.execute(
            select(ConsentGrant).where(ConsentGrant.customer_id == a_id)
        ).scalar_one()
        a_grant_id = a_grant.id
    a_receipt_ids, a_jws = receipts(inst, a_grant_id)

    # B: another customer with a grant of their own, to another supplier.
    b_email, b_name, b_phone = "bruno.wombat@example.org", "Bruno Wombatson", "0498 111 222"
    b_id = make_customer(
        inst, email=b_email, password=PASSWORD, name=b_name, profile={"phone": b_phone}
    )
    b_supplier = make_supplier(inst, name="Wombat Outfitters")
    b_grant_id = make_grant(inst, b_id, b_supplier.id, scopes=("profile.identity:read",)).id
    b_receipt_ids, b_jws = receipts(inst, b_grant_id)

    a_offer, b_offer = (
        deliver_offer(inst, a_supplier.id, a_id),
        deliver_offer(inst, b_supplier.id, b_id),
    )

    a_agreement, b_agreement = (
        agreement_with(inst, a_id, a_supplier.id),
        agreement_with(inst, b_id, b_supplier.id),
    )

    bidder_id = make_supplier(
        inst, name="Atlas Sellers", scopes=("intents:read", "intents:bid"), redirect_uris=()
    ).id
    with inst.sessions() as session:
        bidder = session.get_one(Supplier, bidder_id)
        session.expunge(bidder)
    a_intent, a_bid = intent_with_bid(inst, a_id, bidder)
    b_intent, b_bid = intent_with_bid(inst, b_id, bidder)

    def a_token_works() -> int:
        return int(oauth.get(f"{live_server}/api/v1/me").status_code)

    assert a_token_works() == 200
    yield World(
        Party(
            a_id,
            a_email,
            a_name,
            a_phone,
            a_supplier.id,
            "Quokka Rare Books",
            a_grant_id,
            a_receipt_ids,
            a_jws,
            logged_in_client(app, a_email),
            a_offer,
            request_payout(inst, a_id),
            a_agreement,
            a_intent,
            a_bid,
        ),
        Party(
            b_id,
            b_email,
            b_name,
            b_phone,
            b_supplier.id,
            "Wombat Outfitters",
            b_grant_id,
            b_receipt_ids,
            b_jws,
            logged_in_client(app, b_email),
            b_offer,
            request_payout(inst, b_id),
            b_agreement,
            b_intent,
            b_bid,
        ),
        a_token_works,
    )
    oauth.close()


def test_every_variable_rule_has_a_filler(app: Flask) -> None:
    covered, unfillable = variable_rules(app)
    assert unfillable == [], (
        "New routes with URL variables: add a filler to FILLERS in tests/functional/test_idor.py "
        "(or list the endpoint in PUBLIC_VARIABLE_RULES if it names no customer data)"
    )
    generated = {(rule.rule, method) for rule in covered for method in methods(rule)}
    assert generated >= KNOWN_CUSTOMER_RULES


def test_no_customer_reaches_another_customers_objects(
    app: Flask, inst: Instance, world: World
) -> None:
    a, b = world.a, world.b
    covered, unfillable = variable_rules(app)
    assert unfillable == []
    assert covered
    anonymous = app.test_client()
    anonymous_token = csrf(anonymous, "/login")
    b_token = csrf(b.client, "/dashboard")
    a_markers = a.markers()

    probes = 0
    for rule in covered:
        names = sorted(rule.arguments - CONSTANTS.keys())
        constants = {name: CONSTANTS[name] for name in rule.arguments & CONSTANTS.keys()}
        # Each variable from A or from B, except all from B (B's own objects).
        for owners in itertools.product((a, b), repeat=len(names)):
            if all(owner is b for owner in owners):
                continue
            values = {name: FILLERS[name](owner) for name, owner in zip(names, owners, strict=True)}
            values.update(constants)
            path = build(rule, values)
            for method in methods(rule):
                response = send(b.client, method, path, b_token)
                where = f"{method} {path} as B ({rule.endpoint})"
                assert response.status_code == 404, f"{where}: {response.status_code}"
                body = response.get_data(as_text=True)
                assert leaked(body, a_markers) == [], where
                assert grant_is_active(inst, a.grant_id), f"{where} revoked A's grant"
                probes += 1
        # Anonymous, with A's real ids: the login page, nothing else.
        path = build(rule, {**{name: FILLERS[name](a) for name in names}, **constants_of(rule)})
        for method in methods(rule):
            response = send(anonymous, method, path, anonymous_token)
            where = f"{method} {path} anonymously ({rule.endpoint})"
            assert response.status_code in (302, 303), f"{where}: {response.status_code}"
            assert urlsplit(response.headers["Location"]).path == "/login", where
            assert leaked(response.get_data(as_text=True), a_markers) == [], where
            assert grant_is_active(inst, a.grant_id), f"{where} revoked A's grant"
    assert probes >= 4  # revoke, receipts list, and the receipt with two mixes of ids

    # B is still logged in (the 404s were not a lost session), A's access is untouched.
    assert b.client.get("/consents").status_code == 200
    assert grant_is_active(inst, a.grant_id)
    assert world.a_token_works() == 200
    a_consents = a.client.get("/consents").get_data(as_text=True)
    assert a.supplier_name in a_consents
    assert f"/consents/{a.grant_id}/revoke" in a_consents

    # The owner gets each object (safe methods first, state changes last): proof that
    # the URLs above named real objects, so their 404s meant "not yours".
    a_token = csrf(a.client, "/dashboard")
    owner_cases = [
        (method, rule, build(rule, fill_as(rule, a)))
        for rule in covered
        for method in methods(rule)
    ]
    owner_cases.sort(key=lambda case: case[0] in UNSAFE)
    for method, rule, path in owner_cases:
        response = send(a.client, method, path, a_token)
        where = f"{method} {path} as A ({rule.endpoint})"
        if method in UNSAFE:
            assert response.status_code in (302, 303), f"{where}: {response.status_code}"
        else:
            assert response.status_code == 200, f"{where}: {response.status_code}"
    receipts_page = a.client.get(f"/consents/{a.grant_id}/receipts").get_data(as_text=True)
    assert all(receipt_id in receipts_page for receipt_id in a.receipt_ids)
    download = a.client.get(f"/consents/{a.grant_id}/receipts/{a.receipt_ids[0]}.jws")
    assert download.get_data(as_text=True) == a.receipt_jws[0]
    # The owner's revoke went through: the grant and its token ended together.
    assert not grant_is_active(inst, a.grant_id)
    assert world.a_token_works() == 401
    assert grant_is_active(inst, b.grant_id)


def test_pages_without_ids_show_only_the_callers_data(app: Flask, world: World) -> None:
    a, b = world.a, world.b
    anonymous = app.test_client()
    a_markers = a.markers()
    pages = [
        rule
        for rule in app.url_map.iter_rules()
        if not rule.arguments and "GET" in (rule.methods or set())
    ]
    login_pages = set()
    for rule in pages:
        response = anonymous.get(rule.rule)
        if response.status_code in (302, 303) and (
            urlsplit(response.headers["Location"]).path == "/login"
        ):
            login_pages.add(rule.rule)
    assert login_pages >= KNOWN_LOGIN_PAGES

    for rule in pages:
        response = b.client.get(rule.rule, follow_redirects=True)
        where = f"GET {rule.rule} as B"
        assert response.status_code < 500, f"{where}: {response.status_code}"
        body = response.get_data(as_text=True)
        assert leaked(body, a_markers, public_directory=True) == [], where
        if rule.rule in login_pages:
            assert response.request.path != "/login", f"{where}: B was logged out"

    # The markers are findable: B's own pages show B's values, A's pages show A's.
    assert b.name in b.client.get("/profile").get_data(as_text=True)
    b_consents = b.client.get("/consents").get_data(as_text=True)
    assert b.grant_id in b_consents
    assert b.supplier_name in SUPPLIER_PICKER_RE.sub("", b_consents)
    b_policy = b.client.get("/policy").get_data(as_text=True)
    assert SUPPLIER_PICKER_RE.search(b_policy), "the supplier picker was not found"
    assert b.supplier_name in SUPPLIER_PICKER_RE.sub("", b_policy)  # B's own, for a rule
    a_profile = a.client.get("/profile").get_data(as_text=True)
    assert {"name", "email", "phone"} <= set(leaked(a_profile, a_markers))
    a_consents = a.client.get("/consents").get_data(as_text=True)
    assert {"grant id", "supplier name"} <= set(
        leaked(a_consents, a_markers, public_directory=True)
    )
