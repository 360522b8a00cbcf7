"""Offers through the job runner, over the API: queued at once and delivered by a job, a
crashed delivery retried once, views free (with the budget spent too), noisy totals once per
epoch, expiry closed by a job, and the supplier's list of its offers."""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from infomediary import create_app
from infomediary.audit.log import Actor
from infomediary.demo import population as demo
from infomediary.demo import seed_synthetic
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    BudgetCharge,
    Job,
    Offer,
    OfferDelivery,
    Release,
    utcnow,
)
from infomediary.services import Context, jobs, offer_inbox, offers, rewards
from infomediary.services.broker import epoch_of
from infomediary.services.budgets import MICRO, budget_remaining, charge
from infomediary.statuses import DeliveryStatus, JobStatus, OfferStatus, ReleaseKind
from tests.factories import make_supplier
from tests.log_reasons import code_of, shown
from tests.scripted_noise import scripted_instances

TAS = "7000"
AUDIENCE = 60
OFFER: dict[str, Any] = {
    "purpose": "marketing",
    "where": {"region": ["TAS"]},
    "title": "Island books",
    "body": "Ferry-side pickup.",
    "reward_cents": 10,
    "max_recipients": 1000,
    "expires_in_days": 7,
}
FUNDS = 1_000_000
#: The offers' jobs: other features' jobs may be queued beside them, and are not counted here.
KINDS = [offers.DELIVER, offers.TOTALS, offers.CLOSE]


@pytest.fixture
def worker(inst: Instance) -> Iterator[Callable[[list[int]], Instance]]:
    """A job worker's instance on the same database, whose noise the test scripts."""
    with scripted_instances() as open_scripted:
        yield lambda samples: open_scripted(inst.settings, samples)


@pytest.fixture
def island(inst: Instance, monkeypatch: pytest.MonkeyPatch) -> None:
    """AUDIENCE verified customers in Tasmania, every one eligible for the offers below."""

    def profile(rng: random.Random, year: int) -> dict[str, Any]:
        return {"postcode": TAS, "birth_year": year - 40, "interests": ["books"]}

    with monkeypatch.context() as patch, inst.sessions() as session:
        patch.setattr(demo, "synthetic_profile", profile)
        seed_synthetic(session, inst, AUDIENCE, workers=1)


class Supplier:
    """A funded supplier with ``offers:send`` and its bearer token, on the app's test client."""

    def __init__(self, inst: Instance, client: FlaskClient, name: str = "Island Co") -> None:
        creds = make_supplier(
            inst,
            name=name,
            scopes=("offers:send",),
            purposes=("marketing",),
            redirect_uris=(),
            fund_cents=FUNDS,
        )
        self.id = creds.id
        self.client = client
        basic = base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()
        issued = client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "offers:send"},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert issued.status_code == 200, issued.get_data(as_text=True)
        self.headers = {"Authorization": f"Bearer {issued.get_json()['access_token']}"}

    def send(self, **fields: Any) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/offers", json={**OFFER, **fields}, headers=self.headers
        )
        assert response.status_code == 202, response.get_json()
        return dict(response.get_json())

    def get(self, path: str, **query: Any) -> Any:
        return self.client.get(path, query_string=query, headers=self.headers)

    def view(self, offer_id: str) -> dict[str, Any]:
        response = self.get(f"/api/v1/offers/{offer_id}")
        assert response.status_code == 200, response.get_json()
        return dict(response.get_json())


@pytest.fixture
def supplier(inst: Instance, client: FlaskClient) -> Supplier:
    return Supplier(inst, client)


def count(inst: Instance, model: Any, *where: Any) -> int:
    with inst.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def job_of(inst: Instance, kind: str, offer_id: str) -> Job:
    with inst.sessions() as session:
        return session.execute(
            select(Job).where(Job.kind == kind, Job.key == f"{kind}:{offer_id}")
        ).scalar_one()


def next_epoch(inst: Instance, now: datetime, epochs: int = 1) -> datetime:
    hours = inst.settings.broker_epoch_hours
    start = (epoch_of(now, hours) + epochs) * hours * 3600
    return datetime.fromtimestamp(start, now.tzinfo) + timedelta(minutes=1)


def test_an_offer_is_answered_queued_and_its_job_delivers(
    inst: Instance, island: None, supplier: Supplier, worker
) -> None:
    sent = supplier.send()
    assert set(sent) == {
        "id",
        "status",
        "epsilon_spent",
        "budget_remaining",
        "created_at",
        "expires_at",
    }
    assert sent["status"] == "queued"
    assert supplier.view(sent["id"])["status"] == "queued"
    assert supplier.view(sent["id"])["reach"] is None
    assert job_of(inst, offers.DELIVER, sent["id"]).status == JobStatus.QUEUED
    assert count(inst, OfferDelivery) == 0

    assert jobs.run_pending(worker([1_000]), kinds=KINDS) == 1  # later jobs are not due yet
    shown = supplier.view(sent["id"])
    assert (shown["status"], shown["reach"]) == ("delivered", AUDIENCE + 1_000)
    assert count(inst, OfferDelivery) == AUDIENCE
    assert job_of(inst, offers.DELIVER, sent["id"]).status == JobStatus.DONE
    close = job_of(inst, offers.CLOSE, sent["id"])
    assert close.run_after == datetime.fromisoformat(sent["expires_at"])
    totals = job_of(inst, offers.TOTALS, sent["id"])
    assert totals.status == JobStatus.QUEUED
    assert totals.run_after > utcnow()


def test_a_crashed_delivery_is_retried_and_delivers_once(
    inst: Instance, island: None, supplier: Supplier, worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = supplier.send()
    now = utcnow()
    with inst.sessions() as session:
        crashed = jobs.claim(session, now, kinds=[offers.DELIVER])  # and the worker dies
    assert crashed is not None
    again = worker([1_000, 2_000])
    assert jobs.run_pending(again, now + timedelta(seconds=10), kinds=KINDS) == 0  # its lease holds
    assert supplier.view(sent["id"])["status"] == "queued"
    lapsed = now + timedelta(seconds=jobs.DEFAULT_LEASE_SECONDS + 1)
    assert jobs.run_pending(again, lapsed, kinds=[offers.DELIVER]) == 1
    assert supplier.view(sent["id"])["status"] == "delivered"
    done = job_of(inst, offers.DELIVER, sent["id"])
    assert (done.status, done.attempts) == (JobStatus.DONE, 2)
    # the first worker comes back and runs its stale claim: refused, nothing changes
    with inst.sessions() as session, pytest.raises(jobs.LeaseLost):
        offers.deliver_offer(session, again, crashed)
    assert count(inst, OfferDelivery) == AUDIENCE
    assert count(inst, Release, Release.offer_id == sent["id"]) == 1
    delivered_entries = count(
        inst,
        AccessLogEntry,
        AccessLogEntry.action == "offer",
        # the supplier's views log apart (a structured reason's JSON starts with its code)
        AccessLogEntry.reason_data.not_like('{"code":"offers.viewed"%'),
    )
    assert delivered_entries == 1
    assert count(inst, BudgetCharge) == 1  # the request's, once


def test_a_delivery_failing_midway_leaves_nothing_and_is_retried(
    inst: Instance, island: None, supplier: Supplier, worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = supplier.send()
    failing = worker([1_000, 1_000])
    now = utcnow()
    with monkeypatch.context() as patch:

        def lost(*_args: Any) -> list[str]:
            raise ConnectionError("the database went away")

        patch.setattr(offers, "_customers_of", lost)
        assert jobs.run_pending(failing, now, kinds=[offers.DELIVER]) == 1
    failed = job_of(inst, offers.DELIVER, sent["id"])
    assert (failed.status, failed.attempts, failed.last_error) == (
        JobStatus.QUEUED,
        1,
        "ConnectionError",
    )
    assert supplier.view(sent["id"])["status"] == "queued"
    assert count(inst, Release) == 0  # the ledger row went with the transaction
    assert count(inst, OfferDelivery) == 0
    assert jobs.run_pending(failing, now + jobs.backoff(1), kinds=[offers.DELIVER]) == 1
    assert supplier.view(sent["id"])["status"] == "delivered"
    assert count(inst, OfferDelivery) == AUDIENCE
    assert count(inst, Release, Release.kind == ReleaseKind.OFFER_REACH) == 1


def spend_budget(inst: Instance, supplier_id: str) -> None:
    with inst.sessions() as session:
        left = round(budget_remaining(session, inst.settings, supplier_id) * MICRO)
        charge(session, inst.settings, supplier_id, left, "spent by the test")
        session.commit()


def test_viewing_is_logged(inst: Instance, island: None, supplier: Supplier, worker) -> None:
    sent = supplier.send()
    jobs.run_pending(worker([1_000]), kinds=KINDS)
    supplier.view(sent["id"])
    with inst.sessions() as session:
        entry = session.execute(
            select(AccessLogEntry).order_by(AccessLogEntry.seq.desc()).limit(1)
        ).scalar_one()
    assert entry.action == "offer"
    assert entry.outcome == "allowed"
    assert entry.actor_id == supplier.id
    assert code_of(entry) == "offers.viewed"
    assert shown(entry).startswith("offer viewed: 0 accepters")


def test_viewing_is_free_and_works_with_the_budget_spent(
    inst: Instance, island: None, supplier: Supplier, worker
) -> None:
    sent = supplier.send()
    jobs.run_pending(worker([1_000]), kinds=KINDS)
    first = supplier.view(sent["id"])
    charges, releases = count(inst, BudgetCharge), count(inst, Release)
    for _ in range(40):
        assert supplier.view(sent["id"])["budget_remaining"] == first["budget_remaining"]
        assert supplier.get("/api/v1/offers").status_code == 200
    assert (count(inst, BudgetCharge), count(inst, Release)) == (charges, releases)
    spend_budget(inst, supplier.id)
    spent = supplier.view(sent["id"])  # never locked out of its own offers
    assert spent["status"] == "delivered"
    assert spent["budget_remaining"] == 0
    assert supplier.get("/api/v1/offers").get_json()["offers"][0]["id"] == sent["id"]
    refused = supplier.client.post("/api/v1/offers", json=OFFER, headers=supplier.headers)
    assert refused.status_code == 429  # while sending a new one is refused, at once


def answer(inst: Instance, offer_id: str, accept: int, decline: int) -> None:
    with inst.sessions() as session:
        recipients = session.scalars(
            select(OfferDelivery.customer_id).where(OfferDelivery.offer_id == offer_id)
        ).all()
    for n, customer in enumerate(recipients[: accept + decline]):
        action = "accept" if n < accept else "decline"
        with inst.sessions() as session:
            offer_inbox.respond(
                session, inst, customer, offer_id, action, Context(Actor.customer(customer))
            )


def totals_charges(inst: Instance, offer_id: str) -> int:
    return count(inst, BudgetCharge, BudgetCharge.query_hash == f"offer-totals:{offer_id}")


def test_totals_are_released_once_per_epoch_and_charged_once(
    inst: Instance, island: None, supplier: Supplier, worker
) -> None:
    sent = supplier.send()
    runner = worker([1_000, 0, 0, 3, -2])
    jobs.run_pending(runner, kinds=KINDS)
    answer(inst, sent["id"], accept=1, decline=2)
    shown = supplier.view(sent["id"])
    assert len(shown["accepted"]) == 1  # acceptances reach the supplier one by one
    assert shown["response_totals"] is None
    assert shown["totals_as_of"] is None

    first = next_epoch(inst, utcnow())
    assert jobs.run_pending(runner, first, kinds=KINDS) == 1
    shown = supplier.view(sent["id"])
    # true: 2 declines, 58 others; noise 0 and 0; the declines are below k
    assert shown["response_totals"] == {"declined": None, "reached": AUDIENCE}
    assert datetime.fromisoformat(shown["totals_as_of"]) == first
    assert totals_charges(inst, sent["id"]) == 1
    totals = count(inst, Release, Release.kind == ReleaseKind.OFFER_TOTALS)
    assert totals == 1
    with inst.sessions() as session:
        release = session.execute(
            select(Release).where(Release.kind == ReleaseKind.OFFER_TOTALS)
        ).scalar_one()
        from pyroaring import BitMap

        assert len(BitMap.deserialize(release.members)) == AUDIENCE  # every recipient
        entry = session.execute(
            select(AccessLogEntry).order_by(AccessLogEntry.seq.desc()).limit(1)
        ).scalar_one()
        assert entry.action == "offer"

    # later the same epoch, and however many views: nothing more is released or charged
    assert jobs.run_pending(runner, first + timedelta(hours=5), kinds=KINDS) == 0
    for _ in range(10):
        supplier.view(sent["id"])
    assert totals_charges(inst, sent["id"]) == 1
    with inst.sessions() as session:  # and the job itself is idempotent within an epoch
        run = jobs.JobRun(
            job_of(inst, offers.TOTALS, sent["id"]).id,
            offers.TOTALS,
            {"offer_id": sent["id"]},
            1,
            5,
            "not-the-holder",
            first + timedelta(hours=6),
        )
        assert offers.release_totals(session, runner, run) is not None
    assert totals_charges(inst, sent["id"]) == 1

    second = next_epoch(inst, utcnow(), epochs=2)
    assert jobs.run_pending(runner, second, kinds=KINDS) == 1
    shown = supplier.view(sent["id"])
    assert shown["response_totals"] == {"declined": None, "reached": AUDIENCE + 1}
    assert datetime.fromisoformat(shown["totals_as_of"]) == second
    assert totals_charges(inst, sent["id"]) == 2


def test_totals_stay_as_of_their_last_release_when_the_budget_is_spent(
    inst: Instance, island: None, supplier: Supplier, worker
) -> None:
    sent = supplier.send()
    runner = worker([1_000, 0, 0])
    jobs.run_pending(runner, kinds=KINDS)
    first = next_epoch(inst, utcnow())
    jobs.run_pending(runner, first, kinds=KINDS)
    before = supplier.view(sent["id"])
    spend_budget(inst, supplier.id)
    second = next_epoch(inst, utcnow(), epochs=2)
    assert jobs.run_pending(runner, second, kinds=KINDS) == 1
    after = supplier.view(sent["id"])
    assert after["response_totals"] == before["response_totals"]
    assert after["totals_as_of"] == before["totals_as_of"]
    assert count(inst, Release, Release.kind == ReleaseKind.OFFER_TOTALS) == 1
    with inst.sessions() as session:
        refused = session.execute(
            select(AccessLogEntry).where(AccessLogEntry.outcome == "denied")
        ).scalar_one()
    assert shown(refused) == "offer totals not refreshed: privacy budget exhausted"
    job = job_of(inst, offers.TOTALS, sent["id"])
    assert job.status == JobStatus.QUEUED  # tried again next epoch
    assert job.run_after > second


def test_an_offer_closes_at_expiry_by_its_job(
    inst: Instance, island: None, supplier: Supplier, worker
) -> None:
    sent = supplier.send(max_recipients=100)
    runner = worker([1_000, 0, 0])
    jobs.run_pending(runner, kinds=KINDS)
    answer(inst, sent["id"], accept=1, decline=0)
    expiry = datetime.fromisoformat(sent["expires_at"])
    assert jobs.run_pending(runner, expiry - timedelta(minutes=1), kinds=[offers.CLOSE]) == 0
    assert supplier.view(sent["id"])["status"] == "delivered"
    assert (
        jobs.run_pending(runner, expiry + timedelta(seconds=1), kinds=KINDS) == 2
    )  # totals, then close
    assert supplier.view(sent["id"])["status"] == "closed"
    with inst.sessions() as session:
        mine = rewards.balance(session, rewards.account(session, "supplier", supplier.id).id)
        escrow = rewards.balance(session, rewards.account(session, "escrow", sent["id"]).id)
        assert rewards.total_of_all_balances(session) == 0
    assert (mine, escrow) == (FUNDS - 10, 0)  # reward x (cap - acceptances) came back
    assert job_of(inst, offers.CLOSE, sent["id"]).status == JobStatus.DONE
    # the totals released once after expiry, and no more
    assert job_of(inst, offers.TOTALS, sent["id"]).status == JobStatus.DONE
    assert jobs.run_pending(runner, expiry + timedelta(days=30), kinds=KINDS) == 0


def test_the_supplier_lists_its_own_offers_newest_first(
    inst: Instance, client: FlaskClient, supplier: Supplier
) -> None:
    ids = [supplier.send(title=f"Offer {n}")["id"] for n in range(5)]
    other = Supplier(inst, client, name="Other Co")
    other.send(title="Not yours")
    listed: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = supplier.get("/api/v1/offers", **query)
        assert page.status_code == 200, page.get_json()
        body = page.get_json()
        assert len(body["offers"]) <= 2
        listed += body["offers"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [o["id"] for o in listed] == ids[::-1]
    assert [o["title"] for o in listed] == [f"Offer {n}" for n in range(4, -1, -1)]
    assert set(listed[0]) == {"id", "status", "title", "created_at", "expires_at", "reach"}
    assert {o["status"] for o in listed} == {"queued"}
    assert [o["title"] for o in other.get("/api/v1/offers").get_json()["offers"]] == ["Not yours"]
    default = supplier.get("/api/v1/offers").get_json()
    assert len(default["offers"]) == 5
    assert default["next_cursor"] is None
    for bad in ({"cursor": "not-a-cursor"}, {"limit": 0}, {"limit": "many"}, {"sort": "asc"}):
        refused = supplier.get("/api/v1/offers", **bad)
        assert refused.status_code == 400, bad
        assert refused.content_type == "application/problem+json"
        assert refused.get_json()["code"] in ("invalid_request", "validation_failed"), bad


def test_the_app_runs_jobs_in_its_own_worker(inst: Instance) -> None:
    app: Flask = create_app(inst.settings, instance=inst, run_jobs=True)
    app.config["TESTING"] = True
    running = app.extensions["infomediary.jobs"]
    try:
        assert running.is_alive()
        supplier = Supplier(inst, app.test_client())
        sent = supplier.send()
        deadline = time.monotonic() + 30
        while supplier.view(sent["id"])["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert supplier.view(sent["id"])["status"] == "too_small"  # nobody matches
    finally:
        running.stop(timeout=30)
    assert not running.is_alive()
    with inst.sessions() as session:
        assert session.get_one(Offer, sent["id"]).status == OfferStatus.TOO_SMALL
    assert count(inst, OfferDelivery, OfferDelivery.status == DeliveryStatus.DELIVERED) == 0


def test_totals_leave_out_recipients_who_blocked_the_supplier_since(
    inst: Instance, island: None, supplier: Supplier, worker
) -> None:
    sent = supplier.send()
    runner = worker([1_000, 0, 0])
    jobs.run_pending(runner, kinds=KINDS)
    with inst.sessions() as session:
        blocker = session.scalars(
            select(OfferDelivery.customer_id).where(OfferDelivery.offer_id == sent["id"])
        ).first()
    assert blocker is not None
    with inst.sessions() as session:
        offer_inbox.respond(
            session, inst, blocker, sent["id"], "block", Context(Actor.customer(blocker))
        )
    assert jobs.run_pending(runner, next_epoch(inst, utcnow()), kinds=KINDS) == 1
    assert supplier.view(sent["id"])["response_totals"] == {
        "declined": None,
        "reached": AUDIENCE - 1,  # noise 0: the one who blocked it is not in the number
    }
    with inst.sessions() as session:
        from pyroaring import BitMap

        release = session.execute(
            select(Release).where(Release.kind == ReleaseKind.OFFER_TOTALS)
        ).scalar_one()
        assert len(BitMap.deserialize(release.members)) == AUDIENCE - 1


def test_an_offer_queued_before_its_approval_was_taken_back_is_not_delivered(
    inst: Instance, island: None, supplier: Supplier, worker
) -> None:
    from infomediary.services.suppliers import revoke_broker

    sent = supplier.send()
    with inst.sessions() as session:
        revoke_broker(session, supplier.id)
    assert jobs.run_pending(worker([1_000]), kinds=KINDS) == 1
    assert count(inst, OfferDelivery) == 0
    assert count(inst, Release) == 0  # nobody selected, nobody charged
    with inst.sessions() as session:
        offer = session.get(Offer, sent["id"])
        assert offer is not None
        assert offer.status == OfferStatus.TOO_SMALL


def test_an_offer_whose_delivery_gave_up_closes_at_expiry_with_its_escrow_back(
    inst: Instance, island: None, supplier: Supplier
) -> None:
    sent = supplier.send(max_recipients=100)
    with inst.sessions() as session:  # the delivery job used up its attempts
        job = session.get(Job, job_of(inst, offers.DELIVER, sent["id"]).id)
        assert job is not None
        job.status = JobStatus.FAILED
        session.commit()
    expiry = datetime.fromisoformat(sent["expires_at"])
    assert jobs.run_pending(inst, expiry + timedelta(seconds=1), kinds=[offers.CLOSE]) == 1
    with inst.sessions() as session:
        offer = session.get(Offer, sent["id"])
        assert offer is not None
        assert offer.status == OfferStatus.CLOSED
        mine = rewards.balance(session, rewards.account(session, "supplier", supplier.id).id)
        assert rewards.total_of_all_balances(session) == 0
    assert mine == FUNDS  # the whole escrow came back
    assert count(inst, OfferDelivery) == 0
