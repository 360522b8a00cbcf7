"""Demand signals on both backends: the number of distinct customers with open intents per
category and region, released under the broker's budgets and the per-customer ledger.

The noise is scripted to zero and k set out of the way, so the released cells are the true
cells and the tests can read who was counted; the API test runs with real noise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import requests
from pyroaring import BitMap
from sqlalchemy import func, select, update

from infomediary.errors import BudgetExhausted, ValidationFailed
from infomediary.instance import Instance, open_instance
from infomediary.models import AccessLogEntry, BudgetCharge, Intent, Release, Supplier, utcnow
from infomediary.services import Context, customer_policy, intent_demand, intents, offer_inbox
from infomediary.services.intent_demand import UNSPECIFIED, DemandQuery
from infomediary.services.intents import IntentInput
from infomediary.statuses import IntentStatus, ReleaseKind
from infomediary.web.schemas import DemandRequestSchema
from infomediary.web.schemas.loading import load
from policies.taxonomy import REGIONS
from tests.factories import make_customer
from tests.functional.test_broker_privacy import CTX, new_supplier, ordinal_of, person
from tests.functional.test_privacy_ledger import spent
from tests.oauth_helpers import browser_login, client_credentials, make_supplier
from tests.scripted_noise import ScriptedNoise


@pytest.fixture
def broker(inst: Instance) -> Iterator[Instance]:
    settings = replace(inst.settings, broker_k=-1_000_000, broker_customer_budget=10.0)
    opened = open_instance(settings, noise=ScriptedNoise(settings.broker_epsilon, [0] * 500))
    yield opened
    opened.close()


def post(inst: Instance, customer_id: str, category: str = "books", **fields: Any) -> str:
    with inst.sessions() as session:
        view = intents.post_for_customer(
            session,
            inst,
            customer_id,
            IntentInput(
                category=category,
                description="Something to read.",
                needed_by=intents.today() + timedelta(days=30),
                **fields,
            ),
            CTX,
        )
    return str(view["id"])


def demand(inst: Instance, supplier_id: str, raw: Any) -> dict[str, Any]:
    """One demand count through the service, loaded as the API loads it."""
    with inst.sessions() as session:
        supplier = session.get(Supplier, supplier_id)
        assert supplier is not None
        query = load(DemandRequestSchema(), raw, DemandQuery)
        return intent_demand.demand_count(
            session, inst, supplier, query, Context.supplier(supplier_id)
        )


def cells(answer: dict[str, Any]) -> dict[str, int]:
    return {c["value"]: c["count"] for c in answer["cells"] if c["count"]}


def release_members(inst: Instance) -> list[BitMap]:
    with inst.sessions() as session:
        rows = session.execute(
            select(Release.members)
            .where(Release.kind == ReleaseKind.INTENT_DEMAND)
            .order_by(Release.seq)
        ).scalars()
        return [BitMap.deserialize(blob) for blob in rows]


@pytest.fixture
def people(broker: Instance) -> dict[str, str]:
    """a: one intent in NSW; b: two in NSW; c: NSW, then VIC (newest); d: no region;
    e: travel only; f: no intent."""
    found = {name: person(broker) for name in "abcdef"}
    post(broker, found["a"], region="NSW")
    post(broker, found["b"], region="NSW")
    post(broker, found["b"], region="NSW")
    post(broker, found["c"], region="NSW")
    post(broker, found["c"], region="VIC")
    post(broker, found["d"])
    post(broker, found["e"], category="travel", region="NSW")
    return found


def test_each_customer_counts_once_in_the_region_of_their_newest_intent(
    broker: Instance, people: dict[str, str]
) -> None:
    planner = new_supplier(broker, name="Planning Co", sector="travel")
    answer = demand(broker, planner, {"purpose": "analytics", "category": "books"})
    assert answer["breakdown"] == "region"
    assert [c["value"] for c in answer["cells"]] == [*REGIONS, UNSPECIFIED]
    assert cells(answer) == {"NSW": 2, "VIC": 1, UNSPECIFIED: 1}
    assert answer["count"] == 4
    assert answer["epsilon_spent"] == pytest.approx(0.1)
    [members] = release_members(broker)
    assert members == BitMap(ordinal_of(broker, people[n]) for n in "abcd")
    for name in "abcd":  # b posted two intents and lost one epsilon, not two
        assert spent(broker, people[name]) == pytest.approx(0.1), name
    for name in "ef":  # the count cannot depend on them
        assert spent(broker, people[name]) == 0


def test_one_region_charges_only_that_regions_customers(
    broker: Instance, people: dict[str, str]
) -> None:
    planner = new_supplier(broker, name="Planning Co", sector="travel")
    answer = demand(broker, planner, {"purpose": "analytics", "category": "books", "region": "NSW"})
    assert (answer["count"], answer["region"], answer["suppressed"]) == (2, "NSW", False)
    assert "cells" not in answer
    assert spent(broker, people["a"]) == spent(broker, people["b"]) == pytest.approx(0.1)
    assert spent(broker, people["c"]) == 0  # counted in VIC, where the newest intent is
    with broker.sessions() as session:
        entry = session.execute(
            select(AccessLogEntry).where(AccessLogEntry.action == "count")
        ).scalar_one()
    detail = json.loads(entry.detail or b"{}")
    assert detail["criteria"]["where"] == {"intent_category": ["books"], "region": ["NSW"]}
    assert detail["released"] == 2
    assert BitMap.deserialize(entry.members or b"") == BitMap(
        ordinal_of(broker, people[n]) for n in "ab"
    )


def test_the_same_question_again_is_free_and_logged_as_a_replay(
    broker: Instance, people: dict[str, str]
) -> None:
    planner = new_supplier(broker, name="Planning Co", sector="travel")
    first = demand(broker, planner, {"purpose": "analytics", "category": "books"})
    again = demand(broker, planner, {"purpose": "analytics", "category": "books"})
    assert again["cached"] is True
    assert again["epsilon_spent"] == 0
    assert again["cells"] == first["cells"]
    assert len(release_members(broker)) == 1
    assert spent(broker, people["b"]) == pytest.approx(0.1)
    other = demand(broker, planner, {"purpose": "research", "category": "books"})
    assert other["cached"] is False  # another purpose is another question
    assert spent(broker, people["b"]) == pytest.approx(0.2)


def test_closed_cancelled_and_past_intents_are_not_demand(
    broker: Instance, people: dict[str, str]
) -> None:
    with broker.sessions() as session:
        rows = session.execute(select(Intent.id, Intent.customer_id)).all()
        mine = {str(i): str(c) for i, c in rows}
        a_intent = next(i for i, c in mine.items() if c == people["a"])
        d_intent = next(i for i, c in mine.items() if c == people["d"])
        c_intents = [i for i, c in mine.items() if c == people["c"]]
        session.execute(
            update(Intent).where(Intent.id == a_intent).values(status=IntentStatus.CANCELLED)
        )
        session.execute(
            update(Intent)
            .where(Intent.id == d_intent)
            .values(needed_by=intents.today() - timedelta(days=1))
        )
        session.execute(
            update(Intent)
            .where(Intent.id.in_(c_intents))
            .values(deadline=utcnow() - timedelta(minutes=1))
        )
        session.commit()
    planner = new_supplier(broker, name="Planning Co", sector="travel")
    answer = demand(broker, planner, {"purpose": "analytics", "category": "books"})
    assert cells(answer) == {"NSW": 1}  # only b is left


def test_customers_who_said_never_or_blocked_the_supplier_are_left_out(
    broker: Instance, people: dict[str, str]
) -> None:
    planner = new_supplier(broker, name="Planning Co", sector="travel")
    with broker.sessions() as session:
        customer_policy.apply_template(session, broker, people["a"], "private", CTX)
        customer_policy.set_rule(
            session,
            broker,
            people["c"],
            category="demographics",
            purpose="analytics",
            mode="never",
            ctx=CTX,
        )
        offer_inbox.block_supplier(
            session,
            broker,
            people["d"],
            planner,
            revoke_grants=False,
            ctx=CTX,
            base_url="http://localhost",
        )
    answer = demand(broker, planner, {"purpose": "analytics", "category": "books"})
    # a is out; c keeps the interest in counts but not the region; d blocked the supplier
    assert cells(answer) == {"NSW": 1, UNSPECIFIED: 1}
    assert spent(broker, people["a"]) == spent(broker, people["d"]) == 0
    assert spent(broker, people["c"]) == pytest.approx(0.1)


def test_a_customer_at_their_cap_is_not_counted(broker: Instance, people: dict[str, str]) -> None:
    capped = open_instance(
        replace(broker.settings, broker_customer_budget=0.1),
        noise=ScriptedNoise(broker.settings.broker_epsilon, [0] * 100),
    )
    try:
        planner = new_supplier(capped, name="Planning Co", sector="travel")
        demand(capped, planner, {"purpose": "analytics", "category": "books"})
        answer = demand(capped, planner, {"purpose": "research", "category": "books"})
        assert cells(answer) == {}  # everyone spent their cap on the first
        assert spent(capped, people["b"]) == pytest.approx(0.1)
    finally:
        capped.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ({"purpose": "analytics", "category": "unicorns"}, "unknown_value"),
        ({"purpose": "analytics", "category": "books", "region": "Narnia"}, "unknown_value"),
        ({"purpose": "spying", "category": "books"}, "unknown_purpose"),
        ({"purpose": "service", "category": "books"}, "undeclared_purpose"),
        ({"purpose": "analytics"}, "invalid_query"),
        ({"purpose": "analytics", "category": "books", "who": "me"}, "invalid_query"),
    ],
)
def test_a_bad_question_is_refused_and_costs_nothing(
    broker: Instance, people: dict[str, str], raw: Any, code: str
) -> None:
    planner = new_supplier(broker, name="Planning Co", sector="travel")
    with pytest.raises(ValidationFailed) as caught:
        demand(broker, planner, raw)
    assert caught.value.code == code
    with broker.sessions() as session:
        assert session.scalar(select(func.count()).select_from(BudgetCharge)) == 0
    assert release_members(broker) == []


def test_demand_spends_the_suppliers_budget(broker: Instance, people: dict[str, str]) -> None:
    tight = open_instance(
        replace(broker.settings, broker_budget=0.1),
        noise=ScriptedNoise(broker.settings.broker_epsilon, [0] * 100),
    )
    try:
        planner = new_supplier(tight, name="Planning Co", sector="travel")
        demand(tight, planner, {"purpose": "analytics", "category": "books"})
        with pytest.raises(BudgetExhausted):
            demand(tight, planner, {"purpose": "analytics", "category": "travel"})
        assert len(release_members(tight)) == 1
    finally:
        tight.close()


def test_through_the_api_with_a_client_credentials_token(live_server: str, inst: Instance) -> None:
    for _ in range(2):
        post(inst, person(inst), region="NSW")
    counted = make_customer(
        inst,
        email="counted@example.org",
        password="correct horse battery",
        profile={"postcode": "2000", "birth_year": 1990, "interests": ["books"]},
    )
    post(inst, counted, region="NSW")
    creds = make_supplier(
        inst,
        name="Planning Co",
        scopes=("audience:count",),
        purposes=("analytics",),
        redirect_uris=(),
        sector="travel",
    )
    client = client_credentials(live_server, creds, "audience:count")
    url = f"{live_server}/api/v1/audiences/intent-demand"
    response = client.post(url, json={"purpose": "analytics", "category": "books"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["value"] for c in body["cells"]] == [*REGIONS, UNSPECIFIED]
    for cell in body["cells"]:  # three customers, k of the instance: every cell suppressed
        assert (cell["count"] is None) == cell["suppressed"]
        assert cell["count"] is None or cell["count"] >= inst.settings.broker_k
    assert body["epsilon_spent"] == pytest.approx(0.1)
    assert body["category"] == "books"
    refused = client.post(url, json={"purpose": "analytics", "category": "unicorns"})
    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.json()["code"] == "unknown_value"
    anonymous = requests.post(url, json={"purpose": "analytics", "category": "books"}, timeout=10)
    assert anonymous.status_code == 401
    page = browser_login(live_server, "counted@example.org", "correct horse battery")
    listed = page.get(f"{live_server}/counts").text
    assert "Planning Co" in listed
    assert "a count of customers with open intents" in listed
    assert "intent category = books; split by region" in listed
