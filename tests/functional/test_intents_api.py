"""Intentcasts through the API, on both backends: the customer's own agent (a real OAuth
client, authorised with ``intents:write`` on the consent screen) posts intents; two suppliers
approved for the sector (client credentials with ``intents:read intents:bid``) list them under
their pseudonyms and bid; the customer compares and accepts one; the winner learns it won and
reads the address through a grant for fulfilment, the other is told "not chosen" and reads
nothing. Every bad input is a problem document with a code and writes nothing; every intent a
supplier is shown is an entry on the customer's log."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from sqlalchemy import func, select

from infomediary.audit.log import Actor
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    Agreement,
    Bid,
    ConsentGrant,
    Intent,
    MatchEntry,
    OAuthToken,
    SupplierBlock,
    utcnow,
)
from infomediary.services import Context, customer_policy, erasure, export_csv, exports
from infomediary.services.agreements import verify_agreement
from infomediary.services.intents import SECTOR_OF, ends_at
from infomediary.services.jobs import run_pending
from infomediary.services.policy_store import load_policy
from infomediary.services.suppliers import verify_supplier
from infomediary.web.errors import STATUS
from policies.model import Mode, Recipient, Rule
from tests.factories import make_customer
from tests.functional.test_api_contract import _examples, _resolve, _variants
from tests.log_reasons import code_of, params_of
from tests.oauth_helpers import SupplierCreds, browser_login, client_session, consent, make_supplier

EMAIL, PASSWORD = "ivy.intent@example.org", "correct horse battery"
PROFILE = {
    "name": "Ivy Intent",
    "phone": "+61 400 000 001",
    "street_address": "1 Nappy Lane",
    "locality": "Newtown",
    "postcode": "2042",
}
PROBLEM = "application/problem+json"


def _days(n: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=n)).isoformat()


@dataclass
class World:
    base: str
    agent: OAuth2Session
    acme: OAuth2Session
    globex: OAuth2Session
    travel: OAuth2Session
    customer_id: str
    creds: dict[str, SupplierCreds]


def _supplier(
    base: str, inst: Instance, name: str, sector: str
) -> tuple[OAuth2Session, SupplierCreds]:
    creds = make_supplier(
        inst,
        name=name,
        scopes=("intents:read", "intents:bid"),
        purposes=("service",),
        redirect_uris=(),
        sector=sector,
    )
    client = OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope="intents:read intents:bid",
        token_endpoint=f"{base}/oauth/token",
    )
    client.fetch_token(grant_type="client_credentials")
    return client, creds


@pytest.fixture
def world(live_server: str, inst: Instance) -> World:
    customer_id = make_customer(inst, email=EMAIL, password=PASSWORD, profile=PROFILE)
    agent_creds = make_supplier(
        inst, name="Family Agent", scopes=("intents:write",), purposes=("service",)
    )
    agent = client_session(live_server, agent_creds, "intents:write")
    result = consent(
        live_server, browser_login(live_server, EMAIL, PASSWORD), agent, purpose="service"
    )
    agent.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    acme, acme_creds = _supplier(live_server, inst, "Acme Books", "retail")
    globex, globex_creds = _supplier(live_server, inst, "Globex Reads", "retail")
    travel, travel_creds = _supplier(live_server, inst, "Far Away Travel", "travel")
    creds = {"acme": acme_creds, "globex": globex_creds, "travel": travel_creds}
    return World(live_server, agent, acme, globex, travel, customer_id, creds)


def _intent(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "category": "books",
        "description": "A hardback atlas of the world, recent edition.",
        "needed_by": _days(30),
        "max_price_minor": 9000,
        "currency": "AUD",
        "region": "NSW",
    }
    return body | overrides


def _bid(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "price_minor": 8500,
        "currency": "AUD",
        "description": "The 2030 edition, delivered in two days.",
        "valid_until": _days(20),
    }
    return body | overrides


def _post(w: World, **overrides: Any) -> dict[str, Any]:
    response = w.agent.post(f"{w.base}/api/v1/me/intents", json=_intent(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


def _counts(inst: Instance) -> tuple[int, int, int, int]:
    with inst.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Intent)) or 0,
            session.scalar(select(func.count()).select_from(Bid)) or 0,
            session.scalar(select(func.count()).select_from(Agreement)) or 0,
            session.scalar(select(func.count()).select_from(ConsentGrant)) or 0,
        )


def _entries(inst: Instance, code: str) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        rows = session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars()
        return [row for row in rows if code_of(row) == code]


def _problem(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(PROBLEM)
    body = dict(response.json())
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def test_the_full_flow_from_intent_to_delivery(world: World, inst: Instance) -> None:
    w = world
    posted = _post(w)
    assert posted["status"] == "open"
    assert posted["terms"] == "sd-base"  # the customer's default agreement
    assert posted["pseudonym"].startswith("int_")
    second = _post(w, description="A world globe with a light.", region=None)

    # the details are sealed: nothing the customer wrote is in the row
    with inst.sessions() as session:
        row = session.get(Intent, posted["id"])
        assert row is not None
        assert b"atlas" not in row.details
        assert b"NSW" not in row.details
        assert row.region_index is not None
        assert b"NSW" not in row.region_index

    # suppliers of the sector list both, each under a pseudonym of its own
    listed = w.acme.get(f"{w.base}/api/v1/intents")
    assert listed.status_code == 200, listed.text
    shown = {i["id"]: i for i in listed.json()["intents"]}
    assert set(shown) == {posted["id"], second["id"]}
    assert shown[posted["id"]]["pseudonym"] == posted["pseudonym"]
    assert shown[posted["id"]]["pseudonym"] != shown[second["id"]]["pseudonym"]
    assert shown[second["id"]]["region"] is None  # only what the customer attached
    assert shown[posted["id"]]["region"] == "NSW"
    assert w.customer_id not in listed.text
    assert "Ivy" not in listed.text
    assert shown[posted["id"]]["bid"] is None

    # a supplier of another sector sees neither
    other = w.travel.get(f"{w.base}/api/v1/intents")
    assert other.status_code == 200
    assert other.json()["intents"] == []

    # one entry on the customer's log per intent shown, under the catalogue's code
    listed_entries = _entries(inst, "intents.listed")
    assert len(listed_entries) == 2
    assert {params_of(e)["intent"] for e in listed_entries} == {posted["id"], second["id"]}
    assert all(e.customer_id == w.customer_id for e in listed_entries)
    assert all(e.actor_id == w.creds["acme"].id for e in listed_entries)

    # both bid: Globex with an alternative agreement from the roster
    acme_bid = w.acme.post(f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid())
    assert acme_bid.status_code == 201, acme_bid.text
    globex_bid = w.globex.post(
        f"{w.base}/api/v1/intents/{posted['id']}/bids",
        json=_bid(price_minor=7900, terms="no-ai-training"),
    )
    assert globex_bid.status_code == 201, globex_bid.text
    assert globex_bid.json()["bid"]["terms"] == "no-ai-training"

    # the customer compares them side by side, cheapest first
    compared = w.agent.get(f"{w.base}/api/v1/me/intents/{posted['id']}/bids")
    assert compared.status_code == 200, compared.text
    bids = compared.json()["bids"]
    assert [b["supplier"]["name"] for b in bids] == ["Globex Reads", "Acme Books"]
    assert [b["price_minor"] for b in bids] == [7900, 8500]
    assert bids[0]["accepts_proffered_terms"] is False
    assert bids[1]["accepts_proffered_terms"] is True
    assert all(b["within_budget"] is True for b in bids)
    assert bids[0]["supplier"]["verified"] is False
    assert bids[0]["supplier"]["blocked_by"] == 0

    # the customer accepts Acme's and shares the address for delivery in the same click
    acme_bid_id = acme_bid.json()["bid"]["id"]
    accepted = w.agent.post(
        f"{w.base}/api/v1/me/intents/{posted['id']}/bids/{acme_bid_id}/accept",
        json={"share_contact": True},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["intent"]["status"] == "accepted"
    assert accepted.json()["bid"]["status"] == "won"

    # the winner learns it won under the pseudonym; the other is told "not chosen"
    won = w.acme.get(f"{w.base}/api/v1/intents/{posted['id']}")
    assert won.status_code == 200, won.text
    assert won.json()["pseudonym"] == posted["pseudonym"]
    assert won.json()["status"] == "accepted"
    assert won.json()["bid"]["won"] is True
    lost = w.globex.get(f"{w.base}/api/v1/intents/{posted['id']}")
    assert lost.json()["bid"]["status"] == "not_chosen"
    assert lost.json()["bid"]["won"] is False
    assert lost.json()["fulfilment"] is None

    # the agreement is recorded for the winner with the intent's terms, signed and verifiable
    with inst.sessions() as session:
        agreements = list(session.execute(select(Agreement)).scalars())
        assert [(a.supplier_id, a.agreement_id) for a in agreements] == [
            (w.creds["acme"].id, "sd-base")
        ]
        claims = verify_agreement(agreements[0].jws, inst)
        assert claims["terms"]["id"] == "sd-base"
        assert claims["second_party"]["id"] == w.creds["acme"].id
        grant = session.execute(
            select(ConsentGrant).where(ConsentGrant.supplier_id == w.creds["acme"].id)
        ).scalar_one()
        assert grant.scopes == "profile.identity:read"
        assert grant.purpose == "service"
        intent_row = session.get(Intent, posted["id"])
        assert intent_row is not None
        assert grant.expires_at == ends_at(intent_row)
        assert intent_row.fulfilment_grant_id == grant.id

    # the winner's read says where to ask for a token, and hands none out: a GET changes
    # nothing but the log
    shown = won.json()["fulfilment"]
    assert shown["token_endpoint"] == f"/api/v1/intents/{posted['id']}/fulfilment-token"
    assert "access_token" not in shown
    with inst.sessions() as session:
        assert (
            session.execute(
                select(func.count()).select_from(OAuthToken).where(OAuthToken.grant_id == grant.id)
            ).scalar_one()
            == 0
        )
    # the loser is refused a token, and the refusal is logged
    _problem(w.globex.post(f"{w.base}{shown['token_endpoint']}"), 409, "fulfilment_not_shared")
    assert len(_entries(inst, "intents.fulfilment_not_shared")) == 1

    # the winner reads the address through the usual resource, under that grant
    issued = w.acme.post(f"{w.base}{shown['token_endpoint']}")
    assert issued.status_code == 200, issued.text
    assert issued.headers["Cache-Control"] == "no-store"
    fulfilment = issued.json()
    assert fulfilment["scope"] == "profile.identity:read"
    me = requests.get(
        f"{w.base}/api/v1/me",
        headers={"Authorization": f"Bearer {fulfilment['access_token']}"},
        timeout=10,
    )
    assert me.status_code == 200, me.text
    assert me.json()["identity"]["address"]["street"] == "1 Nappy Lane"
    # the loser's own token is not bound to the customer: no address for it
    refused = w.globex.get(f"{w.base}/api/v1/me")
    assert refused.status_code in (403, 404), refused.text
    assert "Nappy" not in refused.text

    # a second request hands a new token and revokes the first
    again = w.acme.post(f"{w.base}{shown['token_endpoint']}").json()
    old = requests.get(
        f"{w.base}/api/v1/me",
        headers={"Authorization": f"Bearer {fulfilment['access_token']}"},
        timeout=10,
    )
    assert old.status_code == 401
    assert again["access_token"] != fulfilment["access_token"]

    # the accepted intent is gone from the open list; the other stays
    after = w.globex.get(f"{w.base}/api/v1/intents").json()["intents"]
    assert [i["id"] for i in after] == [second["id"]]

    # the customer's list shows both, with their bids counted
    own = w.agent.get(f"{w.base}/api/v1/me/intents")
    assert own.status_code == 200
    counts = {i["id"]: (i["status"], i["bids"]) for i in own.json()["intents"]}
    assert counts == {posted["id"]: ("accepted", 2), second["id"]: ("open", 0)}


def test_cancelling_tells_bidders_and_ends_the_fulfilment_grant(
    world: World, inst: Instance
) -> None:
    w = world
    posted = _post(w)
    bid = w.acme.post(f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid()).json()
    other = _post(w, description="Another atlas.")
    w.globex.post(f"{w.base}/api/v1/intents/{other['id']}/bids", json=_bid())
    accepted = w.agent.post(
        f"{w.base}/api/v1/me/intents/{posted['id']}/bids/{bid['bid']['id']}/accept"
    )
    assert accepted.status_code == 200, accepted.text
    # shared later, in a second call on the won bid
    shared = w.agent.post(
        f"{w.base}/api/v1/me/intents/{posted['id']}/bids/{bid['bid']['id']}/accept",
        json={"share_contact": True},
    )
    assert shared.status_code == 200, shared.text
    cancelled = w.agent.post(f"{w.base}/api/v1/me/intents/{posted['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["intent"]["status"] == "cancelled"
    with inst.sessions() as session:
        grant = session.execute(
            select(ConsentGrant).where(ConsentGrant.supplier_id == w.creds["acme"].id)
        ).scalar_one()
        assert grant.revoked_at is not None
    assert w.acme.get(f"{w.base}/api/v1/intents/{posted['id']}").json()["fulfilment"] is None
    _problem(
        w.acme.post(f"{w.base}/api/v1/intents/{posted['id']}/fulfilment-token"),
        409,
        "fulfilment_not_shared",
    )
    # the open intent's bid is told not chosen on cancel
    w.agent.post(f"{w.base}/api/v1/me/intents/{other['id']}/cancel")
    told = w.globex.get(f"{w.base}/api/v1/intents/{other['id']}").json()
    assert told["bid"]["status"] == "not_chosen"
    _problem(w.agent.post(f"{w.base}/api/v1/me/intents/{other['id']}/cancel"), 409, "intent_closed")


BAD_INTENTS = [
    ({"needed_by": _days(-1)}, "invalid_intent", "needed_by"),
    ({"max_price_minor": 0}, "invalid_intent", "max_price_minor"),
    ({"max_price_minor": -5}, "invalid_intent", "max_price_minor"),
    ({"currency": None}, "invalid_intent", "currency"),
    ({"currency": "aud"}, "invalid_intent", "currency"),
    ({"currency": "ABC"}, "invalid_intent", "currency"),  # three letters, not ISO 4217
    ({"description": "x" * 2001}, "invalid_intent", "description"),
    ({"description": "   "}, "invalid_intent", "description"),
    ({"category": "yachts"}, "invalid_intent", "category"),
    ({"region": "Newtown"}, "invalid_intent", "region"),
    ({"region": "2042"}, "invalid_intent", "region"),
    ({"terms": "my-own-terms"}, "unknown_terms", "terms"),
    (
        {"recurrence": {"every": 0, "unit": "week", "until": _days(90)}},
        "invalid_intent",
        "recurrence",
    ),
    (
        {"recurrence": {"every": 2, "unit": "day", "until": _days(90)}},
        "invalid_intent",
        "recurrence",
    ),
    (
        {"recurrence": {"every": 2, "unit": "week", "until": _days(10)}},
        "invalid_intent",
        "recurrence",
    ),
    (
        {"recurrence": {"every": 2, "unit": "week", "until": _days(3000)}},
        "invalid_intent",
        "recurrence",
    ),
    ({"needed_by": "next tuesday"}, "invalid_intent", "needed_by"),
    ({"max_price_minor": "9000"}, "invalid_intent", "max_price_minor"),
    ({"shoe_size": 42}, "invalid_intent", "shoe_size"),
    ({"deadline": "2020-01-01T00:00:00+00:00"}, "invalid_intent", "deadline"),
    ({"deadline": f"{_days(40)}T00:00:00+00:00"}, "invalid_intent", "deadline"),
    ({"deadline": f"{_days(5)}T00:00:00"}, "invalid_intent", "deadline"),  # no offset
    ({"auto_accept": True}, "invalid_intent", "auto_accept"),  # no deadline
    (
        {
            "auto_accept": True,
            "deadline": f"{_days(5)}T00:00:00Z",
            "max_price_minor": None,
            "currency": None,
        },
        "invalid_intent",
        "auto_accept",
    ),
]


@pytest.mark.parametrize(("change", "code", "field"), BAD_INTENTS)
def test_a_bad_intent_is_a_problem_and_writes_nothing(
    world: World, inst: Instance, change: dict[str, Any], code: str, field: str
) -> None:
    before = _counts(inst)
    response = world.agent.post(f"{world.base}/api/v1/me/intents", json=_intent(**change))
    body = _problem(response, STATUS[code], code)
    assert field in body["errors"]
    assert _counts(inst) == before


def test_an_intent_that_is_not_json_is_refused(world: World, inst: Instance) -> None:
    before = _counts(inst)
    response = world.agent.post(
        f"{world.base}/api/v1/me/intents",
        data="category=books",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _problem(response, 400, "invalid_json")
    assert _counts(inst) == before


def test_bad_bids_are_problems_that_write_nothing_but_their_refusal(
    world: World, inst: Instance
) -> None:
    w = world
    posted = _post(w)
    url = f"{w.base}/api/v1/intents/{posted['id']}/bids"
    cases = [
        (w.acme, _bid(currency="EUR"), 400, "currency_mismatch"),
        (w.acme, _bid(terms="my-own-terms"), STATUS["unknown_terms"], "unknown_terms"),
        (w.acme, _bid(price_minor=0), 400, "invalid_bid"),
        (w.acme, _bid(description="y" * 2001), 400, "invalid_bid"),
        (w.acme, _bid(valid_until=_days(-2)), 400, "invalid_bid"),
        (w.acme, _bid(currency="AU"), 400, "invalid_bid"),
        (w.acme, _bid(currency="QQQ"), 400, "invalid_bid"),
        (w.travel, _bid(), 403, "intent_outside_sector"),
    ]
    for client, body, status, code in cases:
        before = _counts(inst)
        _problem(client.post(url, json=body), status, code)
        assert _counts(inst) == before, code
    # an intent that does not exist
    _problem(w.acme.post(f"{w.base}/api/v1/intents/nope/bids", json=_bid()), 404, "not_found")
    # a second bid of one supplier
    assert w.acme.post(url, json=_bid()).status_code == 201
    before = _counts(inst)
    _problem(w.acme.post(url, json=_bid(price_minor=100)), 409, "bid_exists")
    assert _counts(inst) == before
    # the refusals are on the customer's log, as denied accesses
    refusals = _entries(inst, "intents.bid_refused")
    assert {params_of(e)["error"] for e in refusals} == {
        "invalid_bid",  # a past valid_until: the schema reads the date, the rule refuses it
        "currency_mismatch",
        "unknown_terms",
        "bid_exists",
    }
    assert all(e.outcome == "denied" and e.customer_id == w.customer_id for e in refusals)
    outside = _entries(inst, "intents.outside_sector")
    assert [(e.customer_id, e.outcome) for e in outside] == [(w.customer_id, "denied")]


def test_bids_on_a_closed_or_cancelled_intent_are_refused(world: World, inst: Instance) -> None:
    w = world
    cancelled = _post(w)
    w.agent.post(f"{w.base}/api/v1/me/intents/{cancelled['id']}/cancel")
    accepted = _post(w)
    bid = w.acme.post(f"{w.base}/api/v1/intents/{accepted['id']}/bids", json=_bid()).json()
    w.agent.post(f"{w.base}/api/v1/me/intents/{accepted['id']}/bids/{bid['bid']['id']}/accept")
    for intent in (cancelled, accepted):
        before = _counts(inst)
        response = w.globex.post(f"{w.base}/api/v1/intents/{intent['id']}/bids", json=_bid())
        _problem(response, 409, "intent_closed")
        assert _counts(inst) == before
    # and a second acceptance of another bid
    late = _post(w)
    first = w.acme.post(f"{w.base}/api/v1/intents/{late['id']}/bids", json=_bid()).json()
    second = w.globex.post(f"{w.base}/api/v1/intents/{late['id']}/bids", json=_bid()).json()
    path = f"{w.base}/api/v1/me/intents/{late['id']}/bids"
    assert w.agent.post(f"{path}/{first['bid']['id']}/accept").status_code == 200
    before = _counts(inst)
    _problem(w.agent.post(f"{path}/{second['bid']['id']}/accept"), 409, "intent_closed")
    assert _counts(inst) == before


def test_an_intent_past_its_date_takes_no_bids(world: World, inst: Instance) -> None:
    w = world
    posted = _post(w)
    with inst.sessions() as session:
        row = session.get(Intent, posted["id"])
        assert row is not None
        row.needed_by = datetime.now(UTC).date() - timedelta(days=2)
        session.commit()
    assert w.acme.get(f"{w.base}/api/v1/intents").json()["intents"] == []
    _problem(
        w.acme.post(f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid()),
        409,
        "intent_closed",
    )


def test_reads_outside_the_sector_and_by_blocked_suppliers_are_refused_and_logged(
    world: World, inst: Instance
) -> None:
    w = world
    posted = _post(w)
    _problem(w.travel.get(f"{w.base}/api/v1/intents/{posted['id']}"), 403, "intent_outside_sector")
    with inst.sessions() as session:
        session.add(
            SupplierBlock(
                customer_id=w.customer_id, supplier_id=w.creds["globex"].id, created_at=utcnow()
            )
        )
        session.commit()
    assert w.globex.get(f"{w.base}/api/v1/intents").json()["intents"] == []
    _problem(w.globex.get(f"{w.base}/api/v1/intents/{posted['id']}"), 403, "intent_outside_sector")
    refused = _entries(inst, "intents.outside_sector")
    assert [(e.actor_id, e.outcome, e.customer_id) for e in refused] == [
        (w.creds["travel"].id, "denied", w.customer_id),
        (w.creds["globex"].id, "denied", w.customer_id),
    ]
    viewed = w.acme.get(f"{w.base}/api/v1/intents/{posted['id']}")
    assert viewed.status_code == 200
    assert [params_of(e)["intent"] for e in _entries(inst, "intents.viewed")] == [posted["id"]]


@pytest.mark.parametrize("named", ["supplier", "sector"])
def test_a_customer_who_said_never_to_a_supplier_or_its_sector_is_closed_to_it(
    world: World, inst: Instance, named: str
) -> None:
    w = world
    posted = _post(w)
    assert [i["id"] for i in w.globex.get(f"{w.base}/api/v1/intents").json()["intents"]] == [
        posted["id"]
    ]
    recipient = (
        Recipient.supplier(w.creds["globex"].id)
        if named == "supplier"
        else Recipient.sector("retail")
    )
    with inst.sessions() as session:
        policy = load_policy(session, inst, w.customer_id)
        never = Rule("*", "*", recipient, Mode.NEVER)
        customer_policy.save_policy(
            session,
            inst,
            w.customer_id,
            replace(policy, rules=(*policy.rules, never)),
            Context(Actor.customer(w.customer_id)),
            "policy.updated",
        )
    assert w.globex.get(f"{w.base}/api/v1/intents").json()["intents"] == []
    _problem(w.globex.get(f"{w.base}/api/v1/intents/{posted['id']}"), 403, "intent_outside_sector")
    _problem(
        w.globex.post(f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid()),
        403,
        "intent_outside_sector",
    )
    # a never rule naming Globex leaves Acme its view; one naming the sector closes it too
    listed = w.acme.get(f"{w.base}/api/v1/intents").json()["intents"]
    assert [i["id"] for i in listed] == ([posted["id"]] if named == "supplier" else [])


def test_an_agreement_leaves_the_customer_out_of_that_suppliers_counts_not_its_listing(
    world: World, inst: Instance
) -> None:
    w = world
    first = _post(w)
    bid = w.acme.post(f"{w.base}/api/v1/intents/{first['id']}/bids", json=_bid())
    accepted = w.agent.post(
        f"{w.base}/api/v1/me/intents/{first['id']}/bids/{bid.json()['bid']['id']}/accept", json={}
    )
    assert accepted.status_code == 200, accepted.text
    with inst.sessions() as session:
        inst.match_index.refresh(session)
        ordinal = session.execute(
            select(MatchEntry.ordinal).where(MatchEntry.customer_id == w.customer_id)
        ).scalar_one()
    acme, globex = w.creds["acme"].id, w.creds["globex"].id
    assert ordinal in inst.match_index.excluded(acme, "retail")
    assert ordinal not in inst.match_index.excluded(globex, "retail")
    # the agreement restricts what Acme may use; it still sees the customer's next intent
    second = _post(w, description="A road atlas of Australia.")
    listed = w.acme.get(f"{w.base}/api/v1/intents").json()["intents"]
    assert second["id"] in [i["id"] for i in listed]


def test_the_customers_agent_and_suppliers_need_their_own_scopes(
    world: World, inst: Instance
) -> None:
    w = world
    posted = _post(w)
    # a supplier's token cannot post or accept for a customer
    _problem(w.acme.post(f"{w.base}/api/v1/me/intents", json=_intent()), 403, "insufficient_scope")
    # the agent's client is not approved by the operator: it cannot list intents or bid
    _problem(w.agent.get(f"{w.base}/api/v1/intents"), 403, "broker_not_approved")
    _problem(
        w.agent.post(f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid()),
        403,
        "broker_not_approved",
    )
    assert _entries(inst, "token.not_approved")
    # another customer's intent is not found through this agent
    _problem(w.agent.get(f"{w.base}/api/v1/me/intents/{Bid.__name__}/bids"), 404, "not_found")
    # no token at all
    anonymous = requests.get(f"{w.base}/api/v1/intents", timeout=10)
    assert anonymous.status_code == 401


def test_listing_pages_and_filters(world: World, inst: Instance) -> None:
    w = world
    ids = [_post(w, description=f"Atlas number {n}.")["id"] for n in range(5)]
    vic = _post(w, region="VIC")["id"]
    cooking = _post(w, category="cooking", region=None)["id"]
    seen: list[str] = []
    url = f"{w.base}/api/v1/intents?limit=3"
    while url:
        page = w.acme.get(url)
        assert page.status_code == 200, page.text
        seen += [i["id"] for i in page.json()["intents"]]
        url = page.json()["next"]
    assert sorted(seen) == sorted([*ids, vic, cooking])
    assert len(seen) == len(set(seen))
    by_region = w.acme.get(f"{w.base}/api/v1/intents", params={"region": "VIC"}).json()
    assert [i["id"] for i in by_region["intents"]] == [vic]
    by_category = w.acme.get(f"{w.base}/api/v1/intents", params={"category": "cooking"}).json()
    assert [i["id"] for i in by_category["intents"]] == [cooking]
    _problem(
        w.acme.get(f"{w.base}/api/v1/intents", params={"category": "travel"}),
        400,
        "invalid_request",
    )
    _problem(
        w.acme.get(f"{w.base}/api/v1/intents", params={"region": "Newtown"}), 400, "invalid_request"
    )
    _problem(
        w.acme.get(f"{w.base}/api/v1/intents", params={"cursor": "zzz"}), 400, "invalid_request"
    )
    _problem(w.acme.get(f"{w.base}/api/v1/intents", params={"limit": 500}), 400, "invalid_request")


def test_a_recurring_intent_keeps_its_schedule_and_its_grant_ends_with_the_term(
    world: World, inst: Instance
) -> None:
    w = world
    until = _days(120)
    posted = _post(
        w,
        category="gardening",
        description="Seasonal flowers each month.",
        recurrence={"every": 1, "unit": "month", "until": until},
        terms="sd-base-dp",
        max_price_minor=None,
        currency=None,
    )
    assert posted["recurrence"] == {"every": 1, "unit": "month", "until": until}
    assert posted["deliveries"][0] == posted["needed_by"]
    assert 3 <= len(posted["deliveries"]) <= 4
    bid = w.acme.post(
        f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid(currency="EUR")
    )  # no budget: any currency
    assert bid.status_code == 201, bid.text
    w.agent.post(
        f"{w.base}/api/v1/me/intents/{posted['id']}/bids/{bid.json()['bid']['id']}/accept",
        json={"share_contact": True},
    )
    with inst.sessions() as session:
        grant = session.execute(
            select(ConsentGrant).where(ConsentGrant.supplier_id == w.creds["acme"].id)
        ).scalar_one()
        end = date.fromisoformat(until) + timedelta(days=1)
        assert grant.expires_at == datetime(end.year, end.month, end.day, tzinfo=UTC)
        agreement = session.execute(select(Agreement)).scalar_one()
        assert agreement.agreement_id == "sd-base-dp"


def test_every_category_has_a_sector_of_the_operator() -> None:
    from infomediary.services.suppliers import SECTORS
    from policies.taxonomy import INTEREST_TAGS

    assert set(SECTOR_OF) == set(INTEREST_TAGS)
    assert set(SECTOR_OF.values()) <= set(SECTORS)


def test_the_log_holds_no_plaintext_of_the_intent(world: World, inst: Instance) -> None:
    w = world
    posted = _post(w, category="diabetes-care", description="Glucose test strips, monthly.")
    assert w.acme.get(f"{w.base}/api/v1/intents").json()["intents"] == []  # not retail's
    pharmacy, _creds = _supplier(w.base, inst, "Corner Pharmacy", "health")
    listed = pharmacy.get(f"{w.base}/api/v1/intents").json()["intents"]
    assert [i["category"] for i in listed] == ["diabetes-care"]
    assert pharmacy.get(f"{w.base}/api/v1/intents/{posted['id']}").status_code == 200
    shown = _entries(inst, "intents.listed") + _entries(inst, "intents.viewed")
    assert len(shown) == 2
    assert all(e.detail is not None for e in shown)  # the special category, sealed
    with inst.sessions() as session:
        rows = list(
            session.execute(
                select(AccessLogEntry).where(AccessLogEntry.customer_id == w.customer_id)
            ).scalars()
        )
    dumped = json.dumps([[r.reason_data, r.categories] for r in rows])
    assert "Glucose" not in dumped
    assert "diabetes" not in dumped
    assert "health" not in dumped


def _operation(document: dict[str, Any], path: str) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path]["post"]
    return operation


def _documented_problem(
    document: dict[str, Any], operation: dict[str, Any], response: requests.Response, field: str
) -> None:
    assert response.status_code == 400, (field, response.text)
    documented = _resolve(document, operation["responses"]["400"])
    assert PROBLEM in documented["content"]
    problem = _problem(response, 400, response.json()["code"])
    assert STATUS[problem["code"]] == 400
    assert field in problem["errors"], problem
    assert problem["detail"] in problem["errors"].values()


def test_the_documented_bodies_are_the_ones_the_endpoints_load(
    world: World, inst: Instance
) -> None:
    """The contract test of the API's document for the intents' operations: every example
    is accepted, and each schema-invalid variant of one (an unknown field, a missing required
    field, a value of the wrong type) gets the documented problem naming the field."""
    w = world
    document = requests.get(f"{w.base}/api/openapi.json", timeout=10).json()
    posting = _operation(document, "/api/v1/me/intents")
    bidding = _operation(document, "/api/v1/intents/{intent_id}/bids")
    accepting = _operation(document, "/api/v1/me/intents/{intent_id}/bids/{bid_id}/accept")
    for operation in (posting, bidding, accepting):
        assert _examples(operation), operation["operationId"]

    made = []
    for example in _examples(posting).values():
        response = w.agent.post(f"{w.base}/api/v1/me/intents", json=example)
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    bids = []
    for example, client in zip(_examples(bidding).values(), (w.acme, w.globex), strict=True):
        url = f"{w.base}/api/v1/intents/{made[0]}/bids"
        response = client.post(url, json=example)
        assert response.status_code == 201, response.text
        bids.append(response.json()["bid"]["id"])
    for example in _examples(accepting).values():
        url = f"{w.base}/api/v1/me/intents/{made[0]}/bids/{bids[0]}/accept"
        response = w.agent.post(url, json=example)
        assert response.status_code == 200, response.text

    checked = 0
    cases = [
        (posting, w.agent, f"{w.base}/api/v1/me/intents"),
        (bidding, w.acme, f"{w.base}/api/v1/intents/{made[1]}/bids"),
        (accepting, w.agent, f"{w.base}/api/v1/me/intents/{made[1]}/bids/x/accept"),
    ]
    for operation, client, url in cases:
        schema = _resolve(
            document, operation["requestBody"]["content"]["application/json"]["schema"]
        )
        example = next(iter(_examples(operation).values()))
        before = _counts(inst)
        for label, field, body in _variants(document, schema, example):
            response = client.post(url, json=body)
            assert response.status_code == 400, (url, label, response.text)
            _documented_problem(document, operation, response, field)
            checked += 1
        not_json = client.post(url, data="{oops", headers={"Content-Type": "application/json"})
        _documented_problem(document, operation, not_json, "body")
        assert not_json.json()["code"] == "invalid_json"
        assert _counts(inst) == before
    assert checked >= 20


def test_posting_intents_and_bids_is_rate_limited(world: World, inst: Instance) -> None:
    w = world
    ids = [_post(w)["id"] for _ in range(10)]  # refused posts above did not count
    before = _counts(inst)
    limited = w.agent.post(f"{w.base}/api/v1/me/intents", json=_intent())
    assert limited.status_code == 429, limited.text
    assert limited.json()["code"] == "rate_limited"
    assert _counts(inst) == before
    for _ in range(30):  # every bid request counts: a burst is a scan of the sector
        bad = w.globex.post(f"{w.base}/api/v1/intents/{ids[0]}/bids", json=_bid(price_minor=0))
        assert bad.status_code == 400
    limited = w.globex.post(f"{w.base}/api/v1/intents/{ids[1]}/bids", json=_bid())
    assert limited.status_code == 429, limited.text
    assert _counts(inst) == before
    # another supplier has its own allowance
    assert w.acme.post(f"{w.base}/api/v1/intents/{ids[1]}/bids", json=_bid()).status_code == 201


def test_intents_and_bids_join_the_export_and_go_with_erasure(world: World, inst: Instance) -> None:
    w = world
    posted = _post(w, recurrence={"every": 2, "unit": "week", "until": _days(60)})
    acme = w.acme.post(f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid()).json()
    w.globex.post(f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid(price_minor=9900))
    w.agent.post(
        f"{w.base}/api/v1/me/intents/{posted['id']}/bids/{acme['bid']['id']}/accept",
        json={"share_contact": True},
    )
    ctx = Context(Actor.system("test"))
    with inst.sessions() as session:
        document = exports.export(session, inst, w.customer_id, ctx)
    validator = Draft202012Validator(
        export_csv.schema(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    assert [e.message for e in validator.iter_errors(document)] == []
    [exported] = document["intents"]
    assert exported["description"] == "A hardback atlas of the world, recent edition."
    assert exported["status"] == "accepted"
    assert exported["recurrence"]["unit"] == "week"
    assert {(b["supplier_name"], b["status"]) for b in exported["bids"]} == {
        ("Acme Books", "won"),
        ("Globex Reads", "not_chosen"),
    }
    with inst.sessions() as session:
        data, _when = export_csv.export_zip(session, inst, w.customer_id, ctx)
    assert export_csv.read_zip(data)["intents"] == document["intents"]
    with inst.sessions() as session:
        erasure.erase(session, inst, w.customer_id, PASSWORD, ctx)
    assert _counts(inst)[:2] == (0, 0)


def test_at_the_deadline_bidding_closes_and_the_rule_accepts_the_best_qualifying_bid(
    world: World, inst: Instance
) -> None:
    w = world
    deadline = datetime.now(UTC) + timedelta(hours=1)
    posted = _post(w, deadline=deadline.isoformat(), auto_accept=True)
    assert posted["auto_accept"] is True
    quiet = _post(w, deadline=deadline.isoformat(), auto_accept=True, description="Another.")
    initech, initech_creds = _supplier(w.base, inst, "Initech Books", "retail")
    with inst.sessions() as session:
        for creds in (w.creds["globex"], initech_creds):
            verify_supplier(session, creds.id)
    url = f"{w.base}/api/v1/intents/{posted['id']}/bids"
    cheapest = w.acme.post(url, json=_bid(price_minor=7000)).json()["bid"]  # not verified
    best = w.globex.post(url, json=_bid(price_minor=8000)).json()["bid"]
    other_terms = initech.post(url, json=_bid(price_minor=7500, terms="no-ai-training"))
    assert other_terms.status_code == 201
    over = w.acme.post(
        f"{w.base}/api/v1/intents/{quiet['id']}/bids", json=_bid(price_minor=9500)
    )  # above the budget
    assert over.status_code == 201
    # before the deadline nothing is decided
    run_pending(inst, now=deadline - timedelta(minutes=1))
    assert w.globex.get(f"{w.base}/api/v1/intents/{posted['id']}").json()["status"] == "open"
    run_pending(inst, now=deadline + timedelta(seconds=1))
    won = w.globex.get(f"{w.base}/api/v1/intents/{posted['id']}").json()
    assert (won["status"], won["bid"]["id"], won["bid"]["status"]) == (
        "accepted",
        best["id"],
        "won",
    )
    lost = w.acme.get(f"{w.base}/api/v1/intents/{posted['id']}").json()["bid"]
    assert (lost["id"], lost["status"]) == (cheapest["id"], "not_chosen")
    [applied] = _entries(inst, "intents.auto_accepted")
    assert params_of(applied) == {
        "intent": posted["id"],
        "bid": best["id"],
        "winner_supplier": w.creds["globex"].id,
    }
    assert applied.customer_id == w.customer_id
    with inst.sessions() as session:
        agreement = session.execute(select(Agreement)).scalar_one()
        assert (agreement.supplier_id, agreement.agreement_id) == (w.creds["globex"].id, "sd-base")
    # no bid qualified on the other: logged, and it stays open for the customer to choose
    [none] = _entries(inst, "intents.auto_accept_none")
    assert params_of(none) == {"intent": quiet["id"], "count": 1}
    mine = {
        i["id"]: i["status"] for i in w.agent.get(f"{w.base}/api/v1/me/intents").json()["intents"]
    }
    assert mine[quiet["id"]] == "open"


def test_bids_after_the_deadline_are_refused(world: World, inst: Instance) -> None:
    w = world
    posted = _post(w, deadline=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert posted["deadline"] is not None
    assert w.acme.get(f"{w.base}/api/v1/intents/{posted['id']}").json()["deadline"]
    with inst.sessions() as session:
        row = session.get(Intent, posted["id"])
        assert row is not None
        row.deadline = utcnow() - timedelta(minutes=1)
        session.commit()
    assert w.acme.get(f"{w.base}/api/v1/intents").json()["intents"] == []
    before = _counts(inst)
    body = _problem(
        w.acme.post(f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid()),
        409,
        "intent_closed",
    )
    assert "deadline" in body["detail"]
    assert _counts(inst) == before


def test_another_customers_agent_reaches_none_of_it(world: World, inst: Instance) -> None:
    w = world
    posted = _post(w)
    bid = w.acme.post(f"{w.base}/api/v1/intents/{posted['id']}/bids", json=_bid()).json()["bid"]
    make_customer(inst, email="other@example.org", password=PASSWORD)
    agent_creds = make_supplier(
        inst, name="Other Agent", scopes=("intents:write",), purposes=("service",)
    )
    other = client_session(w.base, agent_creds, "intents:write")
    result = consent(
        w.base, browser_login(w.base, "other@example.org", PASSWORD), other, purpose="service"
    )
    other.fetch_token(
        authorization_response=result.authorization_response, code_verifier=result.verifier
    )
    path = f"{w.base}/api/v1/me/intents/{posted['id']}"
    before = _counts(inst)
    _problem(other.get(f"{path}/bids"), 404, "not_found")
    _problem(other.post(f"{path}/bids/{bid['id']}/accept", json={}), 404, "not_found")
    _problem(other.post(f"{path}/cancel"), 404, "not_found")
    assert other.get(f"{w.base}/api/v1/me/intents").json() == {"intents": []}
    assert _counts(inst) == before
    mine = w.agent.get(f"{path}/bids")
    assert mine.status_code == 200
    assert [b["status"] for b in mine.json()["bids"]] == ["open"]
    assert mine.json()["intent"]["status"] == "open"
