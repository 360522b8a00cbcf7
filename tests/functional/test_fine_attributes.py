"""The postal district counts a customer only with their yes; one query, one answer.

1. No template releases the postal district; a customer who has not said yes holds neither
   its value token nor its eligibility in the broker's entry, and is in no ``area`` count,
   while an identical customer who said yes is (and is again out once they say no).
2. The yes goes through the policy engine: it counts only for purposes the policy counts
   demographics for, a ``never`` rule beats it, an expiring yes counts for nothing.
3. The consents page's control turns it on and off, re-syncs the entry in the same
   transaction, logs the change, and says what it does; bad input is a 400 that changes
   nothing.
4. Spellings equivalent for every customer cost one charge through POST
   /api/v1/audiences/count (the others are replays with ``epsilon_spent`` 0); spellings that
   differ in meaning are charged.
5. /counting and the privacy notice list every queryable attribute, from ``ATTRIBUTES``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session
from pyroaring import BitMap
from sqlalchemy import func, select

from infomediary.audit.log import Actor
from infomediary.broker import attributes
from infomediary.broker.attributes import ATTRIBUTES, Attribute
from infomediary.broker.members import (
    TOKEN_BYTES,
    eligibility_text,
    member_texts,
    token,
    value_text,
)
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, BudgetCharge, MatchEntry, Supplier, utcnow
from infomediary.services import Context, customer_policy, policy_store, profiles
from infomediary.services.broker import CountQuery, count_audience
from infomediary.web.schemas import CountRequestSchema, load
from policies.model import Mode, Policy, Recipient, Rule
from policies.templates import TEMPLATES, load_template
from tests.conftest import csrf
from tests.factories import make_customer
from tests.log_reasons import shown
from tests.oauth_helpers import make_supplier

SYDNEY = "2000"  # area 20, NSW
AREA_TOKEN = value_text("area", "20")


def person(inst: Instance, postcode: str = SYDNEY) -> str:
    return make_customer(
        inst,
        password=None,
        profile={
            "postcode": postcode,
            "birth_year": utcnow().year - 30,
            "household_size": 2,
            "interests": ["books"],
        },
    )


def say(inst: Instance, customer_id: str, allowed: bool) -> None:
    with inst.sessions() as session:
        customer_policy.set_district_counting(
            session,
            inst,
            customer_id,
            allowed=allowed,
            ctx=Context(Actor.customer(customer_id), "test"),
        )


def set_policy(inst: Instance, customer_id: str, policy: Policy) -> None:
    with inst.sessions() as session:
        customer_policy.save_policy(
            session, inst, customer_id, policy, Context(Actor.customer(customer_id)), "test"
        )


def entry(inst: Instance, customer_id: str) -> tuple[int, set[bytes]]:
    with inst.sessions() as session:
        row = session.execute(
            select(MatchEntry).where(MatchEntry.customer_id == customer_id)
        ).scalar_one()
        blob = row.tokens
        return row.ordinal, {blob[i : i + TOKEN_BYTES] for i in range(0, len(blob), TOKEN_BYTES)}


def holds(inst: Instance, customer_id: str, text: str) -> bool:
    return token(inst.keyring.secret("blind_index"), text) in entry(inst, customer_id)[1]


def counter(inst: Instance) -> str:
    return make_supplier(
        inst,
        name="Counting Co",
        scopes=("audience:count",),
        purposes=("marketing", "analytics", "research", "service"),
        redirect_uris=(),
    ).id


def counted(inst: Instance, supplier_id: str, raw: dict[str, Any]) -> set[int]:
    """The ordinals a count released (the member bitmap of its access-log entry)."""
    with inst.sessions() as session:
        supplier = session.get(Supplier, supplier_id)
        assert supplier is not None
        query = load(CountRequestSchema(), raw, CountQuery)
        answer = count_audience(session, inst, supplier, query, Context.supplier(supplier_id))
        assert answer["cached"] is False
        members = session.execute(
            select(AccessLogEntry.members)
            .where(AccessLogEntry.action == "count")
            .order_by(AccessLogEntry.seq.desc())
            .limit(1)
        ).scalar_one()
    assert members is not None
    return set(BitMap.deserialize(members))


# -- 1. off unless the customer says yes ----------------------------------------------------


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_no_template_puts_the_postal_district_in_a_match_entry(name: str) -> None:
    profile = {"postcode": SYDNEY, "birth_year": 1990, "household_size": 2}
    texts = member_texts(profile, load_template(name), utcnow())
    assert not [t for t in texts if t.startswith(("v|area|", "e|district|"))], name
    if name != "private":  # the region is there: it is the district alone that is left out
        assert value_text("region", "NSW") in texts


def test_an_area_counts_the_customer_who_said_yes_and_not_their_twin(inst: Instance) -> None:
    supplier = counter(inst)
    yes, no = person(inst), person(inst)
    say(inst, yes, True)
    assert holds(inst, yes, AREA_TOKEN)
    assert holds(inst, yes, eligibility_text("district", "analytics", Mode.AGGREGATE))
    # counts only: no offer reaches anyone by their district
    assert not holds(inst, yes, eligibility_text("district", "marketing", Mode.PSEUDONYMOUS))
    assert not holds(inst, no, AREA_TOKEN)
    assert not [
        p
        for p in ("marketing", "analytics", "research", "service")
        if holds(inst, no, eligibility_text("district", p, Mode.AGGREGATE))
    ]
    both = {entry(inst, yes)[0], entry(inst, no)[0]}
    assert counted(inst, supplier, {"purpose": "analytics", "where": {"area": ["20"]}}) == {
        entry(inst, yes)[0]
    }
    assert counted(inst, supplier, {"purpose": "analytics", "where": {"region": ["NSW"]}}) == both
    # no again: out of the entry at once, and out of the next count
    say(inst, yes, False)
    assert not holds(inst, yes, AREA_TOKEN)
    assert counted(inst, supplier, {"purpose": "research", "where": {"area": ["20"]}}) == set()
    assert counted(inst, supplier, {"purpose": "research", "where": {"region": ["NSW"]}}) == both


# -- 2. through the policy engine -----------------------------------------------------------


def test_the_yes_counts_only_where_demographics_count_and_never_wins(inst: Instance) -> None:
    supplier = counter(inst)
    private = person(inst)
    set_policy(inst, private, load_template("private"))
    say(inst, private, True)
    ordinal = entry(inst, private)[0]
    with inst.sessions() as session:
        policy = policy_store.load_policy(session, inst, private)
    assert customer_policy.district_counting(policy).purposes == ("service",)
    # "private" counts demographics for the service only, and says never to marketing
    assert counted(inst, supplier, {"purpose": "service", "where": {"area": ["20"]}}) == {ordinal}
    assert counted(inst, supplier, {"purpose": "analytics", "where": {"area": ["20"]}}) == set()
    assert counted(inst, supplier, {"purpose": "marketing", "where": {"area": ["20"]}}) == set()
    # a "*" rule that allows does not say yes for the customer; one that says never says no
    wide = person(inst)
    star = Rule("*", "*", Recipient.anyone(), Mode.AGGREGATE)
    set_policy(inst, wide, Policy((*load_template("balanced").rules, star)))
    assert not holds(inst, wide, AREA_TOKEN)
    say(inst, wide, True)
    assert holds(inst, wide, AREA_TOKEN)
    never = Rule("*", "analytics", Recipient.anyone(), Mode.NEVER)
    with inst.sessions() as session:
        current = policy_store.load_policy(session, inst, wide)
    set_policy(inst, wide, Policy((*current.rules, never)))
    assert not holds(inst, wide, eligibility_text("district", "analytics", Mode.AGGREGATE))
    assert holds(inst, wide, eligibility_text("district", "research", Mode.AGGREGATE))


def test_an_expiring_yes_counts_for_nothing(inst: Instance) -> None:
    customer = person(inst)
    soon = utcnow() + timedelta(days=30)
    until = Rule("district", "*", Recipient.anyone(), Mode.AGGREGATE, expires=soon)
    set_policy(inst, customer, Policy((*load_template("balanced").rules, until)))
    assert not holds(inst, customer, AREA_TOKEN)


# -- 3. the consents page's control ----------------------------------------------------------


@pytest.fixture
def signed_up(auth: Any, inst: Instance) -> str:
    auth.signup()
    with inst.sessions() as session:
        customer_id = session.execute(
            select(AccessLogEntry.customer_id).where(AccessLogEntry.action == "create")
        ).scalar_one()
        assert customer_id is not None
    with inst.sessions() as session:
        profiles.update_profile(
            session, inst, customer_id, {"postcode": SYDNEY}, Context(Actor.customer(customer_id))
        )
    return str(customer_id)


def test_the_policy_page_turns_district_counting_on_and_off(
    client: Any, inst: Instance, signed_up: str
) -> None:
    page = client.get("/policy").get_data(as_text=True)
    assert "Count me by postal district (the first two digits of my postcode)" in page
    assert 'name="district" value="yes" aria-describedby="district-status" >' in page
    assert "You said no: nobody counts you by postal district." in page
    assert not holds(inst, signed_up, AREA_TOKEN)

    on = client.post(
        "/policy/district", data={"csrf_token": csrf(client, "/consents"), "district": "yes"}
    )
    assert on.status_code == 302
    assert on.headers["Location"].endswith("/policy#district")
    assert holds(inst, signed_up, AREA_TOKEN)  # the entry followed in the same use case
    page = client.get("/policy").get_data(as_text=True)
    assert 'aria-describedby="district-status" checked>' in page
    assert "You said yes: suppliers may count you by postal district" in page
    assert "for marketing, analytics, research" in page  # balanced counts demographics so

    off = client.post("/policy/district", data={"csrf_token": csrf(client, "/consents")})
    assert off.status_code == 302
    assert not holds(inst, signed_up, AREA_TOKEN)
    assert "You said no: nobody counts you by postal district." in client.get("/policy").get_data(
        as_text=True
    )
    with inst.sessions() as session:
        reasons = [
            shown(row)
            for row in session.execute(
                select(AccessLogEntry)
                .where(AccessLogEntry.customer_id == signed_up, AccessLogEntry.action == "update")
                .order_by(AccessLogEntry.seq)
            ).scalars()
        ]
    assert reasons[-2:] == [
        "counting by postal district turned on",
        "counting by postal district turned off",
    ]


def test_a_bad_district_choice_is_400_and_changes_nothing(
    client: Any, inst: Instance, signed_up: str
) -> None:
    before = entry(inst, signed_up)
    response = client.post(
        "/policy/district", data={"csrf_token": csrf(client, "/consents"), "district": "maybe"}
    )
    assert response.status_code == 400
    assert "Tick the box or leave it empty." in response.get_data(as_text=True)
    assert entry(inst, signed_up) == before


def test_starting_again_from_a_template_turns_it_off(
    client: Any, inst: Instance, signed_up: str
) -> None:
    say(inst, signed_up, True)
    assert holds(inst, signed_up, AREA_TOKEN)
    client.post(
        "/policy/template",
        data={"csrf_token": csrf(client, "/consents"), "template": "rewarded", "confirm": "yes"},
    )
    assert not holds(inst, signed_up, AREA_TOKEN)


# -- 4. one query, one answer, through the API ------------------------------------------------


@pytest.fixture
def broker_client(live_server: str, inst: Instance) -> OAuth2Session:
    creds = make_supplier(
        inst,
        name="Counting Co",
        scopes=("audience:count",),
        purposes=("marketing", "analytics"),
        redirect_uris=(),
    )
    client = OAuth2Session(
        creds.client_id,
        creds.client_secret,
        scope="audience:count",
        token_endpoint=f"{live_server}/oauth/token",
    )
    client.fetch_token(grant_type="client_credentials")
    return client


EVERY_AGE = list(ATTRIBUTES["age_band"].values)
#: Each list: spellings of one query for every customer; the first is charged, the rest replay.
EQUIVALENT = [
    [
        '{"purpose": "marketing", "where": {"area": ["20"], "household": ["2"]}}',
        '{"where":{"household":["2","2"],"area":["20"]},"purpose":"marketing"}',
        '{"purpose": "marketing", "where": {"region": ["NSW"], "area": ["20"], "household": ["2"]}}',
        '{"purpose": "marketing", "where": {"area": ["20", "20"], "household": ["2"],'
        ' "region": ["QLD", "NSW"]}, "breakdown": null}',
    ],
    [
        '{"purpose": "marketing", "where": {"area": ["20"]}, "breakdown": "age_band"}',
        json.dumps(
            {
                "purpose": "marketing",
                "breakdown": "age_band",
                "where": {"age_band": EVERY_AGE[::-1], "region": ["NSW"], "area": ["20"]},
            }
        ),
    ],
]
#: Spellings that differ from the first of EQUIVALENT[0] in meaning: each charged afresh.
DIFFERENT = [
    {"purpose": "marketing", "where": {"area": ["20"], "household": ["2"], "age_band": EVERY_AGE}},
    {"purpose": "marketing", "where": {"area": ["26"], "household": ["2"], "region": ["NSW"]}},
    {"purpose": "analytics", "where": {"area": ["20"], "household": ["2"]}},
    {"purpose": "marketing", "where": {"region": ["NSW"], "household": ["2"]}},
]


def post(live_server: str, client: OAuth2Session, body: str | dict[str, Any]) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    response = client.post(
        f"{live_server}/api/v1/audiences/count",
        data=text.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def charges(inst: Instance) -> int:
    with inst.sessions() as session:
        return int(session.execute(select(func.count()).select_from(BudgetCharge)).scalar_one())


def test_equivalent_spellings_cost_one_charge(
    live_server: str, inst: Instance, broker_client: OAuth2Session
) -> None:
    for number, spellings in enumerate(EQUIVALENT, start=1):
        first = post(live_server, broker_client, spellings[0])
        assert first["cached"] is False
        assert first["epsilon_spent"] == pytest.approx(0.1)
        for text in spellings[1:]:
            again = post(live_server, broker_client, text)
            assert again["cached"] is True, text
            assert again["epsilon_spent"] == 0
            assert again["query_id"] == first["query_id"]
            assert again["count"] == first["count"]
        assert charges(inst) == number
    ids = set()
    for body in DIFFERENT:
        answer = post(live_server, broker_client, body)
        assert answer["cached"] is False, body
        assert answer["epsilon_spent"] == pytest.approx(0.1)
        ids.add(answer["query_id"])
    assert len(ids) == len(DIFFERENT)
    assert charges(inst) == len(EQUIVALENT) + len(DIFFERENT)


# -- 5. what customers are told, from ATTRIBUTES ----------------------------------------------


@pytest.mark.parametrize("path", ["/counting", "/privacy"])
def test_pages_name_every_queryable_attribute_and_its_granularity(client: Any, path: str) -> None:
    page = client.get(path).get_data(as_text=True)
    for a in ATTRIBUTES.values():
        assert f'data-attribute="{a.name}"' in page, a.name
        assert a.granularity[1:] in page, a.name
    assert "age band (13-17, 18-24, 25-34, 35-44, 45-54, 55-64, 65+)" in page
    assert "Your state or territory, worked out from your postcode" in page
    assert (
        "postal district, the first two digits of your postcode, <strong>only if you said yes"
        in (page.lower())
    )
    assert "Faith and spirituality" in page  # a sensitive interest, named as such
    assert "not your postcode" not in page
    assert "averaged away" not in page


def test_the_pages_follow_the_attribute_table(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    shoe = Attribute("shoe_size", "demographics", ("40", "41"), "Shoe size", "your shoe size band")
    monkeypatch.setitem(attributes.ATTRIBUTES, "shoe_size", shoe)
    for path in ("/counting", "/privacy"):
        page = client.get(path).get_data(as_text=True)
        assert 'data-attribute="shoe_size">Your shoe size band.' in page, path


def test_the_counting_page_states_the_guarantee(client: Any, inst: Instance) -> None:
    # Sentences are compared with their white space collapsed: how a template wraps its text is
    # not what the page says.
    page = " ".join(client.get("/counting").get_data(as_text=True).split())
    settings = inst.settings
    assert (
        f"over any {settings.broker_customer_window_days} days is at most "
        f"{settings.broker_customer_budget:g} epsilon"
    ) in page
    assert "Questions that differ in meaning select different people" in page
