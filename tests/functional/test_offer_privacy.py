"""Offers cannot single anyone out.

1. The delivery decision: the noisy reach must pass the threshold, and the true admitted
   audience must reach the minimum (whatever the noise); both refusals look the same.
2. The decision is (epsilon, delta)-DP: checked exactly from the discrete Laplace pmf and
   empirically with OpenDP's own noise, for audiences either side of each boundary; the same
   check catches a gate that is not private.
3. Customers at their cap are left out of the audience (and so of the deliveries); every
   admitted customer is charged, delivered or not.
4. Each customer answers each offer under a pseudonym of its own.
5. The request does nothing that depends on the data; bad input costs nothing.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from pyroaring import BitMap
from sqlalchemy import event, func, select

from infomediary.audit.log import Actor
from infomediary.broker.index import MatchIndex
from infomediary.broker.noise import NoiseSource
from infomediary.config import Settings
from infomediary.demo import population as demo
from infomediary.demo import seed_synthetic
from infomediary.errors import NotFound, PolicyDenied
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    BudgetCharge,
    Customer,
    Job,
    MatchEntry,
    Offer,
    OfferDelivery,
    Release,
    Supplier,
)
from infomediary.services import Context, offer_contacts, offer_inbox, privacy_ledger, rewards
from infomediary.services.jobs import run_pending
from infomediary.services.offers import (
    DELIVER,
    OfferInput,
    decide,
    delivery_delta,
    delivery_threshold,
    send_offer,
    tail_probability,
)
from infomediary.services.pseudonyms import offer_pseudonym, pairwise_pseudonym
from infomediary.statuses import OfferStatus, ReleaseKind
from infomediary.web.schemas import OfferRequestSchema, load
from tests.factories import make_customer, make_supplier
from tests.functional.supplier_api import supplier_api
from tests.scripted_noise import scripted_instances

TAS, NT = "7000", "0800"
OFFER: dict[str, Any] = {
    "purpose": "marketing",
    "where": {"region": ["TAS"]},
    "title": "Island books",
    "body": "Ferry-side pickup.",
    "reward_cents": 10,
    "max_recipients": 1000,
    "expires_in_days": 7,
}


@pytest.fixture
def scripted(inst: Instance) -> Iterator[Callable[[list[int]], Instance]]:
    """Another open instance on the same database and keys whose noise the test scripts."""
    with scripted_instances() as open_scripted:
        yield lambda samples: open_scripted(inst.settings, samples)


@pytest.fixture
def populate(inst: Instance, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, int], None]:
    """Add ``n`` synthetic customers (verified, default policy) with the given postcode."""

    def add(postcode: str, n: int) -> None:
        def profile(rng: random.Random, year: int) -> dict[str, Any]:
            return {"postcode": postcode, "birth_year": year - 40, "interests": ["books"]}

        with monkeypatch.context() as patch, inst.sessions() as session:
            patch.setattr(demo, "synthetic_profile", profile)
            total = demo.synthetic_count(session) + n
            seed_synthetic(session, inst, total, workers=1)

    return add


def supplier(inst: Instance, name: str = "Island Co") -> str:
    return make_supplier(
        inst,
        name=name,
        scopes=("offers:send",),
        purposes=("marketing",),
        redirect_uris=(),
        fund_cents=1_000_000,
    ).id


def send(inst: Instance, supplier_id: str, **fields: Any) -> str:
    """Queue an offer through the service, as the API does, and run its delivery job on
    ``inst`` (whose noise a test may script). Returns the offer's id."""
    offer_in = load(OfferRequestSchema(), {**OFFER, **fields}, OfferInput)
    with inst.sessions() as session:
        sent = send_offer(
            session,
            inst,
            session.get_one(Supplier, supplier_id),
            offer_in,
            Context.supplier(supplier_id),
        )
    assert sent["status"] == "queued"
    assert run_pending(inst, kinds=[DELIVER]) == 1
    return str(sent["id"])


def offer(inst: Instance, offer_id: str) -> Offer:
    with inst.sessions() as session:
        return session.get_one(Offer, offer_id)


def deliveries(inst: Instance, offer_id: str) -> int:
    with inst.sessions() as session:
        return session.scalar(select(func.count()).where(OfferDelivery.offer_id == offer_id)) or 0


def reach_release(inst: Instance, offer_id: str) -> Release:
    with inst.sessions() as session:
        return session.execute(
            select(Release).where(
                Release.offer_id == offer_id, Release.kind == ReleaseKind.OFFER_REACH
            )
        ).scalar_one()


def view(inst: Instance, supplier_id: str, offer_id: str) -> dict[str, Any]:
    from infomediary.services.offers import offer_view

    with inst.sessions() as session:
        return offer_view(
            session,
            inst,
            session.get_one(Supplier, supplier_id),
            offer_id,
            Context.supplier(supplier_id),
        )


def refusal_view(inst: Instance, supplier_id: str, offer_id: str) -> dict[str, Any]:
    """What the supplier sees of a refused offer, without what differs between any two."""
    shown = view(inst, supplier_id, offer_id)
    for varying in ("id", "created_at", "expires_at", "budget_remaining"):
        shown.pop(varying)
    return shown


# -- 1. the decision --------------------------------------------------------------------------


def test_the_threshold_is_k_plus_the_tail_for_delta() -> None:
    settings = Settings()
    assert (settings.broker_k, settings.broker_epsilon, settings.broker_delta) == (50, 0.1, 1e-6)
    continuous = 50 + math.log(1 / (2 * 1e-6)) / 0.1
    assert continuous == pytest.approx(181.2, abs=0.05)
    assert delivery_threshold(settings) == 182 == math.ceil(continuous)
    assert delivery_delta(settings) <= settings.broker_delta


def test_a_true_audience_below_the_minimum_is_never_delivered_whatever_the_noise(
    inst: Instance, populate, scripted
) -> None:
    populate(TAS, 49)
    island = supplier(inst)
    minimum = inst.settings.broker_offer_min_audience
    assert minimum == 50
    for boost in (200, 1_000, 1_000_000):  # noisy reaches far past the threshold
        offer_id = send(scripted([boost]), island)
        assert offer(inst, offer_id).status == OfferStatus.TOO_SMALL
        assert offer(inst, offer_id).noisy_reach is None
        assert deliveries(inst, offer_id) == 0
        # every admitted customer was charged, though nothing was delivered
        assert len(BitMap.deserialize(reach_release(inst, offer_id).members)) == 49
        with inst.sessions() as session:  # nothing delivered: the escrow went back
            escrow = rewards.account(session, "escrow", offer_id)
            assert rewards.balance(session, escrow.id) == 0
    # one customer more and the same noise delivers: the second line sits exactly there
    populate(TAS, 1)
    offer_id = send(scripted([200]), island)
    assert offer(inst, offer_id).status == OfferStatus.DELIVERED
    assert offer(inst, offer_id).noisy_reach == 250
    assert deliveries(inst, offer_id) == 50


def test_a_noisy_reach_below_the_threshold_is_not_delivered(
    inst: Instance, populate, scripted
) -> None:
    populate(TAS, 60)
    island = supplier(inst)
    threshold = delivery_threshold(inst.settings)
    below = send(scripted([threshold - 1 - 60]), island)
    assert offer(inst, below).status == OfferStatus.TOO_SMALL
    assert deliveries(inst, below) == 0
    at = send(scripted([threshold - 60]), island)
    assert offer(inst, at).status == OfferStatus.DELIVERED
    assert offer(inst, at).noisy_reach == threshold
    assert deliveries(inst, at) == 60
    # capped: a random sample of max_recipients of them
    capped = send(scripted([threshold]), island, max_recipients=7)
    assert deliveries(inst, capped) == 7


def test_both_refusals_look_the_same_to_the_supplier(inst: Instance, populate, scripted) -> None:
    populate(TAS, 49)
    populate(NT, 60)
    island = supplier(inst)
    threshold = delivery_threshold(inst.settings)
    too_few = send(scripted([10_000]), island)  # the second line refuses
    too_noisy = send(scripted([threshold - 61]), island, where={"region": ["NT"]})
    assert refusal_view(inst, island, too_few) == {
        **refusal_view(inst, island, too_noisy),
        "criteria": {"purpose": "marketing", "where": {"region": ["TAS"]}, "breakdown": None},
    }
    assert refusal_view(inst, island, too_few)["status"] == "too_small"
    assert refusal_view(inst, island, too_few)["reach"] is None


# -- 2. (epsilon, delta) ----------------------------------------------------------------------


def pmf(epsilon: float, z: int) -> float:
    """The discrete Laplace of scale 1/epsilon: (1 - q) / (1 + q) q^|z|, q = e^-epsilon."""
    q = math.exp(-epsilon)
    return (1 - q) / (1 + q) * q ** abs(z)


@pytest.mark.parametrize(
    "settings",
    [
        Settings(),
        Settings(broker_epsilon=0.5, broker_delta=1e-9, broker_k=20, broker_offer_min_audience=80),
        Settings(broker_epsilon=1.0, broker_delta=1e-3, broker_k=5, broker_offer_min_audience=5),
    ],
    ids=["defaults", "minimum-above-k", "coarse"],
)
def test_delivering_to_k_or_fewer_has_probability_at_most_delta(settings: Settings) -> None:
    """Summed from the pmf itself (not the closed form): for every true audience up to the
    larger of k and the minimum, the chance its noisy reach passes the threshold."""
    epsilon, threshold = settings.broker_epsilon, delivery_threshold(settings)
    floor = max(settings.broker_k, settings.broker_offer_min_audience)
    for n in range(floor + 1):
        exact = math.fsum(pmf(epsilon, z) for z in range(threshold - n, threshold - n + 20_000))
        assert exact <= settings.broker_delta, (n, exact)
    at_floor = math.fsum(
        pmf(epsilon, z) for z in range(threshold - floor, threshold - floor + 20_000)
    )
    assert at_floor == pytest.approx(delivery_delta(settings), rel=1e-9)
    # and one less on the threshold would break it: the threshold is the smallest that holds
    lower = math.fsum(pmf(epsilon, z) for z in range(threshold - 1 - floor, 20_000))
    assert lower > settings.broker_delta


DRAWS = 100_000


def delivery_rates(
    gate: Callable[[int, int], bool], audiences: list[int], noise: NoiseSource
) -> dict[int, float]:
    """The fraction of DRAWS noisy reaches of each true audience that ``gate`` delivers.

    One set of DRAWS OpenDP samples serves every audience (OpenDP's exact sampler costs
    ~15 us a sample): each rate is still an unbiased estimate of its own probability, and the
    tolerance below holds for each estimate on its own."""
    noise_counts = Counter(noise.release([0] * DRAWS))
    return {
        n: sum(times for z, times in noise_counts.items() if gate(n + z, n)) / DRAWS
        for n in audiences
    }


def violations(rates: dict[int, float], epsilon: float, delta: float) -> list[str]:
    """Neighbouring audiences whose delivery rates break P[a] <= e^eps P[b] + delta, by more
    than four standard errors of the estimates (0.5 is the worst-case rate)."""
    tolerance = 4 * math.sqrt(0.25 / DRAWS) * (1 + math.exp(epsilon))
    found = []
    for n in sorted(rates):
        if n + 1 not in rates:
            continue
        for a, b in ((n + 1, n), (n, n + 1)):
            if rates[a] > math.exp(epsilon) * rates[b] + delta + tolerance:
                found.append(f"P[{a}]={rates[a]:.4f} > e^eps P[{b}]={rates[b]:.4f} + delta")
    return found


def test_the_decision_is_epsilon_delta_dp_with_opendp_noise() -> None:
    settings = Settings()
    noise = NoiseSource(settings.broker_epsilon)
    minimum, threshold = settings.broker_offer_min_audience, delivery_threshold(settings)
    audiences = [minimum - 2, minimum - 1, minimum, minimum + 1]
    audiences += list(range(threshold - 3, threshold + 3))
    rates = delivery_rates(lambda noisy, n: decide(noisy, n, settings), audiences, noise)
    assert violations(rates, settings.broker_epsilon, settings.broker_delta) == []
    # the audiences straddle the threshold: the decision really varies there
    assert rates[threshold - 3] < 0.45 < 0.55 < rates[threshold + 2]
    assert rates[minimum] < 0.001  # and at the minimum it (almost) never delivers


def test_the_dp_check_catches_gates_that_are_not_private() -> None:
    """The same check fails for a gate on the true audience alone, and for a noisy gate at k
    whose second line is at k too (no margin for delta): the bound is not vacuous."""
    settings = Settings()
    noise = NoiseSource(settings.broker_epsilon)
    k = settings.broker_k
    true_only = delivery_rates(lambda _noisy, n: n >= k, [k - 1, k], noise)
    assert violations(true_only, settings.broker_epsilon, settings.broker_delta)
    no_margin = delivery_rates(lambda noisy, n: noisy >= k and n >= k, [k - 1, k], noise)
    assert violations(no_margin, settings.broker_epsilon, settings.broker_delta)


def test_opendp_noise_has_the_discrete_laplace_tail() -> None:
    """The closed form the threshold is derived from describes the noise the broker uses."""
    noise = NoiseSource(0.1)
    samples = noise.release([0] * DRAWS)
    for t in (0, 1, 5, 10, 20, 40):
        expected = tail_probability(0.1, t)
        observed = sum(z >= t for z in samples) / DRAWS
        assert observed == pytest.approx(expected, abs=4 * math.sqrt(0.25 / DRAWS)), t


# -- 3. the per-customer ledger -----------------------------------------------------------------


def ordinals_of(inst: Instance) -> list[int]:
    with inst.sessions() as session:
        return sorted(
            session.execute(
                select(MatchEntry.ordinal).where(MatchEntry.customer_id.is_not(None))
            ).scalars()
        )


def spend_cap(inst: Instance, supplier_id: str, ordinals: list[int]) -> None:
    """Charge these customers their whole cap, as earlier releases would have."""
    with inst.sessions() as session:
        privacy_ledger.record(
            session,
            inst,
            kind=ReleaseKind.COUNT,
            supplier_id=supplier_id,
            purpose="marketing",
            criteria="{}",
            epsilon_micro=round(inst.settings.broker_customer_budget * 1_000_000),
            members=BitMap(ordinals),
        )
        session.commit()


def test_customers_at_their_cap_are_left_out_and_the_rest_are_charged(
    inst: Instance, populate, scripted
) -> None:
    populate(TAS, 60)
    island = supplier(inst)
    capped = ordinals_of(inst)[:15]
    spend_cap(inst, island, capped)
    # 45 admitted: below the minimum, whatever the noise
    small = send(scripted([10_000]), island)
    assert offer(inst, small).status == OfferStatus.TOO_SMALL
    charged = BitMap.deserialize(reach_release(inst, small).members)
    assert len(charged) == 45
    assert not charged & BitMap(capped)
    populate(TAS, 10)
    big = send(scripted([10_000]), island)
    assert offer(inst, big).status == OfferStatus.DELIVERED
    assert len(BitMap.deserialize(reach_release(inst, big).members)) == 55
    with inst.sessions() as session:
        received = set(
            session.execute(
                select(MatchEntry.ordinal)
                .join(OfferDelivery, OfferDelivery.customer_id == MatchEntry.customer_id)
                .where(OfferDelivery.offer_id == big)
            ).scalars()
        )
        logged = (
            session.execute(select(AccessLogEntry).where(AccessLogEntry.action == "offer"))
            .scalars()
            .all()
        )
    assert len(received) == 55
    assert not received & set(capped)
    # the offer match's entry names the admitted set, the one the ledger charged
    assert {len(BitMap.deserialize(e.members)) for e in logged if e.members} == {45, 55}


# -- 4. a pseudonym per offer -----------------------------------------------------------------


def test_two_offers_accepted_by_one_customer_show_unrelated_pseudonyms(
    inst: Instance, populate, scripted
) -> None:
    populate(TAS, 60)
    customer = make_customer(inst, profile={"postcode": TAS, "birth_year": 1980})
    island = supplier(inst)
    scripted_inst = scripted([1_000, 1_000])
    first, second = send(scripted_inst, island), send(scripted_inst, island, title="Again")
    ctx = Context(Actor.customer(customer))
    for offer_id in (first, second):
        with inst.sessions() as session:
            offer_inbox.respond(session, inst, customer, offer_id, "accept", ctx)
    subs = [view(inst, island, offer_id)["accepted"][0]["sub"] for offer_id in (first, second)]
    assert subs[0] != subs[1]
    assert all(sub.startswith("off_") for sub in subs)
    identified = pairwise_pseudonym(inst, island, customer)
    assert identified.startswith("psn_")
    assert identified not in subs
    assert subs == [offer_pseudonym(inst, first, customer), offer_pseudonym(inst, second, customer)]
    # the supplier reaches the accepter of an offer only by that offer's pseudonym
    with inst.sessions() as session:
        who = session.get_one(Supplier, island)
        with pytest.raises(NotFound):
            offer_contacts.contact_of(session, inst, who, first, subs[1], Context.supplier(island))
    with inst.sessions() as session:
        who = session.get_one(Supplier, island)
        with pytest.raises(PolicyDenied):  # found, but not shared
            offer_contacts.contact_of(session, inst, who, first, subs[0], Context.supplier(island))


# -- 5. the request ---------------------------------------------------------------------------


def test_the_request_does_nothing_that_depends_on_the_data(
    inst: Instance, populate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Selection, the ledger and the noise are the job's: the request works without them, its
    answer has the same shape, and it makes the same database statements, for an empty
    audience as for a large one."""
    populate(TAS, 200)
    api = supplier_api(inst)

    def forbidden(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the request touched the data")

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    answers, counts = [], []
    with monkeypatch.context() as patch:
        patch.setattr(MatchIndex, "select", forbidden)
        patch.setattr(MatchIndex, "refresh", forbidden)
        patch.setattr(privacy_ledger, "admit", forbidden)
        patch.setattr(NoiseSource, "release", forbidden)
        event.listen(inst.engine, "before_cursor_execute", record)
        try:
            for where in ({"region": ["TAS"]}, {"region": ["NT"]}, {"region": ["TAS"]}):
                statements.clear()
                response = api.client.post(
                    "/api/v1/offers", json={**OFFER, "where": where}, headers=api.headers
                )
                assert response.status_code == 202, response.get_json()
                answers.append(response.get_json())
                counts.append(len(statements))
        finally:
            event.remove(inst.engine, "before_cursor_execute", record)
    assert {a["status"] for a in answers} == {"queued"}
    assert len({frozenset(a) for a in answers}) == 1
    # the first request of a period creates its budget and ledger accounts; after that the
    # same statements, whatever the audience
    assert counts[1] == counts[2], counts
    with inst.sessions() as session:
        # each offer's delivery and its closing at expiry
        assert session.scalar(select(func.count()).select_from(Job)) == 6
        assert session.scalar(select(func.count()).select_from(Release)) == 0
    assert run_pending(inst, kinds=[DELIVER]) == 3
    statuses = [offer(inst, a["id"]).status for a in answers]
    assert statuses[1] == OfferStatus.TOO_SMALL  # nobody in NT
    assert OfferStatus.QUEUED not in statuses


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"title": ""}, "invalid_offer"),
        ({"max_recipients": 0}, "invalid_offer"),
        ({"where": {"region": ["Atlantis"]}}, "unknown_value"),
        ({"where": {"shoe_size": ["9"]}}, "unknown_attribute"),
        ({"purpose": "research"}, "undeclared_purpose"),
        ({"breakdown": "region"}, "invalid_offer"),
    ],
)
def test_bad_offers_fail_the_same_whatever_the_audience_and_cost_nothing(
    inst: Instance, populate, change: dict[str, Any], code: str
) -> None:
    populate(TAS, 60)
    api = supplier_api(inst)
    answers = []
    for where in ({"region": ["TAS"]}, {"region": ["NT"]}):
        body = {**OFFER, "where": where, **change}
        response = api.client.post("/api/v1/offers", json=body, headers=api.headers)
        assert response.status_code == 400
        problem = response.get_json()
        problem.pop("instance", None)
        answers.append(problem)
    assert answers[0] == answers[1]
    assert answers[0]["code"] == code
    with inst.sessions() as session:
        for model in (BudgetCharge, Offer, Job, Release):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model


def test_every_offer_customer_is_verified(inst: Instance, populate, scripted) -> None:
    """Unverified accounts are no part of the audience: neither counted nor delivered to."""
    populate(TAS, 49)
    for _ in range(3):
        make_customer(inst, profile={"postcode": TAS, "birth_year": 1980}, verified=False)
    island = supplier(inst)
    offer_id = send(scripted([10_000]), island)
    assert offer(inst, offer_id).status == OfferStatus.TOO_SMALL  # 49 verified: too few
    with inst.sessions() as session:
        unverified = session.scalars(
            select(Customer.id).where(Customer.verified_at.is_(None), Customer.synthetic.is_(False))
        ).all()
    assert len(unverified) == 3
    assert len(BitMap.deserialize(reach_release(inst, offer_id).members)) == 49


def test_settings_change_the_threshold_as_stated() -> None:
    settings = replace(Settings(), broker_offer_min_audience=300)
    # a minimum above k raises the threshold's floor, so the noisy gate still covers it
    assert delivery_threshold(settings) == 300 + delivery_threshold(Settings()) - 50
    assert delivery_delta(settings) <= settings.broker_delta
    assert decide(delivery_threshold(settings), 299, settings) is False
    assert decide(delivery_threshold(settings), 300, settings) is True
    assert decide(delivery_threshold(settings) - 1, 10_000, settings) is False
