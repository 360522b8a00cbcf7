"""Complete transparency: a customer sees every release that used their data, replays
included, with its epsilon and the supplier's name, paginated without a cap, through an
index rather than a scan of every member set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from pyroaring import BitMap
from sqlalchemy import func, select, update

from infomediary.instance import Instance, open_instance
from infomediary.models import Release
from infomediary.services import exposure
from tests.conftest import Auth
from tests.factories import make_customer
from tests.functional.test_broker_privacy import count, new_supplier, person
from tests.scripted_noise import ScriptedNoise

TAS = {"purpose": "marketing", "where": {"region": ["TAS"]}}


@pytest.fixture
def broker(inst: Instance) -> Iterator[Callable[..., Instance]]:
    opened: list[Instance] = []

    def open_broker(budget: float = 10.0) -> Instance:
        settings = replace(inst.settings, broker_customer_budget=budget, broker_k=-1_000_000)
        opened.append(open_instance(settings, noise=ScriptedNoise(0.1, [0] * 2000)))
        return opened[-1]

    yield open_broker
    for other in opened:
        other.close()


def page(
    inst: Instance, customer_id: str, before: int | None = None, size: int = 50
) -> exposure.ExposurePage:
    with inst.sessions() as session:
        return exposure.exposure_page(session, inst, customer_id, before, size)


def every_page(inst: Instance, customer_id: str, size: int) -> list[int]:
    seen: list[int] = []
    before = None
    while True:
        current = page(inst, customer_id, before, size)
        seen += [u.seq for u in current.uses]
        if current.older is None:
            return seen
        before = current.older


def index_everything(inst: Instance) -> None:
    with inst.sessions() as session:
        while exposure.index_releases(session, max_releases=3):
            pass


def test_every_release_is_listed_with_its_replays_and_supplier(
    broker: Callable[..., Instance],
) -> None:
    inst = broker()
    target = person(inst)
    outsider = person(inst, postcode="0800")
    acme = new_supplier(inst, "Acme Books")
    other = new_supplier(inst, "Other Shop")
    count(inst, acme, TAS)
    count(inst, acme, TAS)  # a replay: listed under its release, no charge
    count(inst, acme, {**TAS, "breakdown": "household"})
    count(inst, other, TAS)
    shown = page(inst, target)
    assert [u.kind for u in shown.uses] == ["count", "breakdown", "count"]
    assert [u.supplier for u in shown.uses] == ["Other Shop", "Acme Books", "Acme Books"]
    first = shown.uses[-1]
    assert [r.supplier for r in first.replays] == ["Acme Books"]
    assert first.epsilon == pytest.approx(0.1)
    assert first.criteria["where"] == {"region": ["TAS"]}
    assert shown.total_epsilon == pytest.approx(0.3)
    assert shown.epsilon_by_supplier == pytest.approx({"Acme Books": 0.2, "Other Shop": 0.1})
    assert shown.standing.spent == pytest.approx(0.3)
    assert page(inst, outsider).uses == []


def test_pages_cover_every_release_once_without_a_cap(broker: Callable[..., Instance]) -> None:
    inst = broker()
    target = person(inst)
    supplier = new_supplier(inst)
    households = ["1", "2", "3", "4", "5+"]
    for purpose in ("marketing", "analytics"):
        for n in range(6):  # twelve distinct questions, each including the target's household
            extra = households[n % 5]
            count(
                inst,
                supplier,
                {
                    "purpose": purpose,
                    "where": {"household": ["2", extra], "region": ["TAS", "NT"][: 1 + n // 5]},
                },
            )
    everything = [u.seq for u in page(inst, target, size=200).uses]
    assert len(everything) == page(inst, target).releases == 12
    assert every_page(inst, target, size=5) == everything  # newest first, no gap, no repeat
    index_everything(inst)
    assert every_page(inst, target, size=5) == everything  # the index gives the same pages


def test_indexed_pages_do_not_read_the_member_sets(broker: Callable[..., Instance]) -> None:
    """Once indexed, a page comes from the postings: blanking every release's member set
    changes nothing the customer sees."""
    inst = broker()
    target = person(inst)
    supplier = new_supplier(inst)
    for purpose in ("marketing", "analytics", "research"):
        count(inst, supplier, {"purpose": purpose, "where": {"region": ["TAS"]}})
    before = page(inst, target)
    index_everything(inst)
    with inst.sessions() as session:
        session.execute(update(Release).values(members=b""))
        session.commit()
    after = page(inst, target)
    assert [u.seq for u in after.uses] == [u.seq for u in before.uses]
    assert after.total_epsilon == pytest.approx(before.total_epsilon)


def test_a_customer_at_the_cap_still_sees_every_earlier_release(
    broker: Callable[..., Instance],
) -> None:
    inst = broker(budget=0.2)
    target = person(inst)
    person(inst)
    supplier = new_supplier(inst)
    for purpose in ("marketing", "analytics", "research"):
        count(inst, supplier, {"purpose": purpose, "where": {"region": ["TAS"]}})
    shown = page(inst, target)
    assert len(shown.uses) == 2  # the third release left them out
    assert shown.standing.at_cap
    assert shown.standing.remaining == 0


def test_the_counts_page_names_suppliers_and_the_budget(inst: Instance, auth: Auth) -> None:
    make_customer(
        inst,
        email="ada@example.org",
        profile={"postcode": "7000", "birth_year": 1990, "household_size": 2},
    )
    supplier = new_supplier(inst, "Acme Books")
    count(inst, supplier, TAS)
    assert auth.login("ada@example.org").status_code == 302
    body = auth.client.get("/counts").get_data(as_text=True)
    assert "Acme Books" in body
    assert "0.1</strong> of your <strong>10.0</strong>" in body
    assert "an audience count" in body
    activity = auth.client.get("/activity").get_data(as_text=True)
    assert "See every count you were part of" in activity
    assert auth.client.get("/counts?before=not-a-number").status_code == 200
    overview = auth.client.get("/dashboard").get_data(as_text=True)
    assert "9.9 of 10.0 left for the last" in overview


def test_the_export_holds_every_release_and_the_budget(broker: Callable[..., Instance]) -> None:
    from infomediary.audit.log import Actor
    from infomediary.services import Context, exports

    inst = broker()
    target = person(inst)
    supplier = new_supplier(inst, "Acme Books")
    count(inst, supplier, TAS)
    count(inst, supplier, TAS)
    with inst.sessions() as session:
        document = exports.export(session, inst, target, Context(Actor.customer(target)))
    part = document["counts_you_were_part_of"]
    assert part["budget"]["epsilon_spent"] == pytest.approx(0.1)
    assert part["budget"]["epsilon_cap"] == pytest.approx(10.0)
    [release] = part["releases"]
    assert (release["supplier_id"], release["supplier_name"]) == (supplier, "Acme Books")
    assert release["kind"] == "count"
    assert [(r["supplier_id"], r["supplier_name"]) for r in release["replayed_to"]] == [
        (supplier, "Acme Books")
    ]


def test_the_indexing_job_keeps_the_postings_up_to_date(broker: Callable[..., Instance]) -> None:
    from infomediary.models import BrokerState, Job
    from infomediary.services import jobs

    inst = broker()
    target = person(inst)
    supplier = new_supplier(inst)
    count(inst, supplier, TAS)
    count(inst, supplier, {"purpose": "analytics", "where": {"region": ["TAS"]}})
    assert jobs.run_pending(inst) >= 1
    with inst.sessions() as session:
        state = session.get(BrokerState, 1)
        assert state is not None
        newest = session.execute(select(func.max(Release.seq))).scalar_one()
        assert state.postings_through == newest
        job = session.query(Job).filter(Job.kind == exposure.INDEX_JOB).one()
        assert job.status == "queued"  # recurring: it stays scheduled
    assert len(page(inst, target).uses) == 2


def test_a_rolled_back_first_release_does_not_stop_the_indexing_job(
    broker: Callable[..., Instance],
) -> None:
    from infomediary.models import Job
    from infomediary.services import privacy_ledger
    from infomediary.statuses import ReleaseKind

    inst = broker()
    supplier = new_supplier(inst)
    with inst.sessions() as session:
        privacy_ledger.record(
            session,
            inst,
            kind=ReleaseKind.COUNT,
            supplier_id=supplier,
            purpose="marketing",
            criteria={},
            epsilon_micro=100_000,
            members=BitMap([1]),
        )
        session.rollback()  # the release failed, and its job row with it
    person(inst)
    count(inst, supplier, TAS)  # the next release schedules it again
    with inst.sessions() as session:
        assert session.query(Job).filter(Job.kind == exposure.INDEX_JOB).count() == 1
