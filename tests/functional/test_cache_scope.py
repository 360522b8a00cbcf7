"""The cache scope is the organisation, whatever the data: its clients share answers, and no
answer any of them receives counts a customer who said "never" to one of them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from infomediary.audit.log import Actor
from infomediary.instance import Instance, open_instance
from infomediary.services import Context, customer_policy
from policies.model import Mode, Policy, Recipient, Rule
from policies.templates import load_template
from tests.factories import make_supplier
from tests.functional.test_broker_privacy import count, person
from tests.scripted_noise import ScriptedNoise

TAS = {"purpose": "marketing", "where": {"region": ["TAS"]}}


@pytest.fixture
def broker(inst: Instance) -> Iterator[Instance]:
    settings = replace(inst.settings, broker_k=-1_000_000)
    other = open_instance(settings, noise=ScriptedNoise(0.1, [0] * 200))
    try:
        yield other
    finally:
        other.close()


def client(
    inst: Instance, name: str, organisation: str | None = None, sector: str = "retail"
) -> str:
    return make_supplier(
        inst,
        name=name,
        scopes=("audience:count",),
        purposes=("marketing", "analytics"),
        redirect_uris=(),
        sector=sector,
        organisation=organisation,
    ).id


def organisation_of(inst: Instance, supplier_id: str) -> str:
    from infomediary.models import Supplier

    with inst.sessions() as session:
        supplier = session.get(Supplier, supplier_id)
        assert supplier is not None
        return supplier.organisation_id


def never_to(inst: Instance, customer_id: str, supplier_id: str) -> None:
    """The customer's own rule: never anything to this supplier (on top of their template)."""
    with inst.sessions() as session:
        policy = load_template("balanced")
        rule = Rule("*", "*", Recipient.supplier(supplier_id), Mode.NEVER)
        customer_policy.save_policy(
            session,
            inst,
            customer_id,
            Policy(rules=(*policy.rules, rule)),
            Context(Actor.customer(customer_id)),
            "never this supplier",
        )


def test_clients_of_one_organisation_share_answers(broker: Instance) -> None:
    for _ in range(3):
        person(broker)
    first = client(broker, "Acme Web")
    second = client(broker, "Acme App", organisation=organisation_of(broker, first))
    outsider = client(broker, "Other Shop")
    answer = count(broker, first, TAS)
    replay = count(broker, second, TAS)
    assert replay["cached"] is True
    assert replay["epsilon_spent"] == 0
    assert replay["count"] == answer["count"] == 3
    assert count(broker, outsider, TAS)["cached"] is False


@pytest.mark.parametrize("excluded", ["first", "second"])
def test_no_client_of_an_organisation_receives_a_customer_who_excluded_one_of_them(
    broker: Instance, excluded: str
) -> None:
    """Whichever client asks first, the answer leaves out whoever excluded any of the
    organisation's clients, so the replay to the excluded one never carries them."""
    target = person(broker)
    for _ in range(3):
        person(broker)
    first = client(broker, "Acme Web")
    second = client(broker, "Acme App", organisation=organisation_of(broker, first))
    never_to(broker, target, first if excluded == "first" else second)
    asker, other = (second, first) if excluded == "first" else (first, second)
    answer = count(broker, asker, TAS)
    assert answer["count"] == 3
    replay = count(broker, other, TAS)
    assert replay["cached"] is True
    assert replay["count"] == 3


def test_the_scope_does_not_depend_on_the_data(broker: Instance) -> None:
    """A supplier that some customer excluded by name is answered from the same scope as its
    peers: `cached` tells it nothing about anyone's choice."""
    target = person(broker)
    person(broker)
    first = client(broker, "Acme Web")
    second = client(broker, "Acme App", organisation=organisation_of(broker, first))
    count(broker, first, TAS)
    never_to(broker, target, second)
    assert count(broker, second, TAS)["cached"] is True


def test_a_client_joining_later_is_not_answered_from_earlier_releases(broker: Instance) -> None:
    """Releases made before B joined did not leave out B's excluders: B gets a fresh one."""
    from infomediary.services.suppliers import approve_broker

    target = person(broker)
    for _ in range(3):
        person(broker)
    first = client(broker, "Acme Web")
    second = client(broker, "Other Shop")  # in an organisation of its own, for now
    never_to(broker, target, second)
    assert count(broker, first, TAS)["count"] == 4
    with broker.sessions() as session:
        approve_broker(
            session, second, sector="retail", organisation=organisation_of(broker, first)
        )
    joined = count(broker, second, TAS)
    assert joined["cached"] is False
    assert joined["count"] == 3  # the customer who excluded it is left out
    again = count(broker, first, TAS)
    assert again["cached"] is True  # the organisation's new scope: this fresh release
    assert again["count"] == 3


def test_an_identical_count_that_loses_the_race_is_a_free_replay(
    broker: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two identical counts at once: both miss the cache, the second's answer key is taken
    when it writes. It is answered from the first's release, charged nothing, not a 500."""
    from sqlalchemy.orm import Session

    from infomediary.models import ReleasedAnswer
    from infomediary.services.budgets import budget_remaining

    for _ in range(3):
        person(broker)
    first = client(broker, "Acme Web")
    answer = count(broker, first, TAS)
    real_get = Session.get
    missed: list[bool] = []

    def miss_once(self: Session, entity: Any, ident: Any, **kw: Any) -> Any:
        if entity is ReleasedAnswer and not missed:
            missed.append(True)
            return None  # as if the other request had not committed yet
        return real_get(self, entity, ident, **kw)

    monkeypatch.setattr(Session, "get", miss_once)
    replay = count(broker, first, TAS)
    assert missed == [True]
    assert replay["cached"] is True
    assert replay["count"] == answer["count"]
    with broker.sessions() as session:
        assert budget_remaining(session, broker.settings, first) == pytest.approx(1.9)
