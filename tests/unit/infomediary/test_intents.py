"""The intents' use cases (infomediary/services/intents.py) on a real instance, both backends:
each commits exactly once, a refused bid leaves only its denial entry, the details are sealed
to their intent, pseudonyms are unlinkable, and the schedule and grant end are computed from
the intent's dates."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infomediary.crypto.vault import DecryptionError
from infomediary.errors import IntentClosed, IntentOutsideSector, UnknownTerms, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Intent, OAuthToken, Supplier
from infomediary.services import Context, intents
from infomediary.services.customer_keys import customer_key
from infomediary.services.intents import (
    AcceptInput,
    BidInput,
    IntentInput,
    IntentPage,
    Recurrence,
    deliveries,
    ends_at,
)
from infomediary.services.suppliers import SECTORS
from policies.taxonomy import INTEREST_TAGS
from tests.factories import make_customer, make_supplier
from tests.unit.infomediary.services.test_transactions import (
    counting_commits,
    last_entry,
    snapshot,
)

TODAY = datetime.now(UTC).date()


def _intent(**overrides: object) -> IntentInput:
    fields: dict[str, object] = {
        "category": "books",
        "description": "An atlas.",
        "needed_by": TODAY + timedelta(days=10),
        "max_price_minor": 5000,
        "currency": "AUD",
        "region": "VIC",
    }
    return IntentInput(**(fields | overrides))  # type: ignore[arg-type]


def _bid(**overrides: object) -> BidInput:
    fields: dict[str, object] = {
        "price_minor": 4500,
        "currency": "AUD",
        "description": "In stock.",
        "valid_until": TODAY + timedelta(days=5),
    }
    return BidInput(**(fields | overrides))  # type: ignore[arg-type]


def _token(customer_id: str) -> OAuthToken:
    """The agent's token row as the API hands it to the use cases (only its customer is read)."""
    return OAuthToken(customer_id=customer_id, supplier_id="agent", scope="intents:write")


def _bidder(inst: Instance, name: str = "Acme Books", sector: str = "retail") -> Supplier:
    creds = make_supplier(
        inst, name=name, scopes=("intents:read", "intents:bid"), redirect_uris=(), sector=sector
    )
    with inst.sessions() as session:
        supplier = session.get_one(Supplier, creds.id)
        session.expunge(supplier)
    return supplier


def _posted(inst: Instance, customer_id: str, **overrides: object) -> str:
    with inst.sessions() as session:
        ctx = Context.supplier("agent")
        return str(
            intents.post_intent(session, inst, _token(customer_id), _intent(**overrides), ctx)["id"]
        )


def test_posting_listing_bidding_and_accepting_each_commit_once(inst: Instance) -> None:
    customer_id = make_customer(inst)
    acme = _bidder(inst)
    ctx = Context.supplier(acme.id)
    with counting_commits(inst) as (session, commits):
        posted = intents.post_intent(session, inst, _token(customer_id), _intent(), ctx)
        assert commits == [1]
    with counting_commits(inst) as (session, commits):
        page = intents.list_open(session, inst, acme, IntentPage(), ctx)
        assert commits == [1]
        assert [i["id"] for i in page["intents"]] == [posted["id"]]
    with counting_commits(inst) as (session, commits):
        bid = intents.place_bid(session, inst, acme, posted["id"], _bid(), ctx)
        assert commits == [1]
    with counting_commits(inst) as (session, commits):
        intents.accept_bid(
            session,
            inst,
            _token(customer_id),
            posted["id"],
            bid["bid"]["id"],
            AcceptInput(share_contact=True),
            ctx,
            "https://infomediary.example",
        )
        assert commits == [1]
    with counting_commits(inst) as (session, commits):
        intents.cancel_intent(
            session, inst, _token(customer_id), posted["id"], ctx, "https://infomediary.example"
        )
        assert commits == [1]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"currency": "EUR"}, ValidationFailed),
        ({"terms": "not-on-the-roster"}, UnknownTerms),
        ({"valid_until": TODAY - timedelta(days=1)}, ValidationFailed),
    ],
)
def test_a_refused_bid_leaves_only_its_denial_entry(
    inst: Instance, change: dict[str, object], error: type[Exception]
) -> None:
    customer_id = make_customer(inst)
    intent_id = _posted(inst, customer_id)
    acme = _bidder(inst)
    before = snapshot(inst)
    with counting_commits(inst) as (session, commits), pytest.raises(error):
        intents.place_bid(session, inst, acme, intent_id, _bid(**change), Context.supplier(acme.id))
    assert commits == [1]
    after = snapshot(inst)
    assert after.pop("access_log") == before.pop("access_log") + 1
    for follows_the_log in ("log_head", "log_nodes"):
        after.pop(follows_the_log, None), before.pop(follows_the_log, None)
    assert after == before
    entry = last_entry(inst)
    assert (entry.outcome, entry.customer_id, entry.actor_id) == ("denied", customer_id, acme.id)


def test_another_sector_and_a_closed_intent_are_refused(inst: Instance) -> None:
    customer_id = make_customer(inst)
    intent_id = _posted(inst, customer_id)
    travel = _bidder(inst, "Far Away Travel", "travel")
    with inst.sessions() as session, pytest.raises(IntentOutsideSector):
        intents.read_intent(session, inst, travel, intent_id, Context.supplier(travel.id))
    with inst.sessions() as session:
        intents.cancel_intent(
            session, inst, _token(customer_id), intent_id, Context.supplier("agent"), "https://x"
        )
    acme = _bidder(inst)
    with inst.sessions() as session, pytest.raises(IntentClosed):
        intents.place_bid(session, inst, acme, intent_id, _bid(), Context.supplier(acme.id))


def test_details_are_sealed_to_their_intent(inst: Instance) -> None:
    """A ciphertext moved to another intent of the same customer does not open."""
    customer_id = make_customer(inst)
    first, second = _posted(inst, customer_id), _posted(inst, customer_id, description="Other")
    with inst.sessions() as session:
        a, b = session.get_one(Intent, first), session.get_one(Intent, second)
        key = customer_key(session, inst, customer_id)
        assert inst.vault.open(key, "intents", a.id, "details", a.details)["description"] == (
            "An atlas."
        )
        with pytest.raises(DecryptionError):
            inst.vault.open(key, "intents", b.id, "details", a.details)


def test_pseudonyms_are_per_intent(inst: Instance) -> None:
    customer_id = make_customer(inst)
    ids = [_posted(inst, customer_id) for _ in range(3)]
    with inst.sessions() as session:
        rows = [session.get_one(Intent, i) for i in ids]
        names = {intents.intent_pseudonym(inst, row) for row in rows}
    assert len(names) == 3
    assert all(name.startswith("int_") and customer_id not in name for name in names)


def test_every_category_has_an_operator_sector() -> None:
    assert set(intents.SECTOR_OF) == set(INTEREST_TAGS)
    assert set(intents.SECTOR_OF.values()) <= set(SECTORS)
    assert {intents.SECTOR_OF[t] for t in ("diabetes-care", "mental-health", "pregnancy")} == {
        "health"
    }


def _row(
    needed_by: date, every: int | None = None, unit: str | None = None, until: date | None = None
) -> Intent:
    return Intent(
        id="i",
        customer_id="c",
        needed_by=needed_by,
        recurrence_every=every,
        recurrence_unit=unit,
        recurrence_until=until,
    )


@pytest.mark.parametrize(
    ("every", "unit", "until", "expected"),
    [
        (None, None, None, [date(2031, 1, 31)]),
        (2, "week", date(2031, 3, 1), [date(2031, 1, 31), date(2031, 2, 14), date(2031, 2, 28)]),
        (
            1,
            "month",
            date(2031, 4, 30),
            [date(2031, 1, 31), date(2031, 2, 28), date(2031, 3, 31), date(2031, 4, 30)],
        ),
        (3, "month", date(2031, 4, 29), [date(2031, 1, 31)]),
    ],
)
def test_deliveries_follow_the_recurrence(
    every: int | None, unit: str | None, until: date | None, expected: list[date]
) -> None:
    assert deliveries(_row(date(2031, 1, 31), every, unit, until)) == expected


def test_a_grant_for_fulfilment_ends_with_the_intent() -> None:
    one_off = _row(date(2031, 1, 31))
    assert ends_at(one_off) == datetime(2031, 3, 2, tzinfo=UTC)  # 30 days after the date
    recurring = _row(date(2031, 1, 31), 1, "month", date(2031, 12, 31))
    assert ends_at(recurring) == datetime(2032, 1, 1, tzinfo=UTC)  # the day after the term


@given(
    start=st.dates(min_value=date(2026, 1, 1), max_value=date(2040, 1, 1)),
    every=st.integers(min_value=1, max_value=12),
    unit=st.sampled_from(["week", "month"]),
    span=st.integers(min_value=1, max_value=700),
)
def test_deliveries_start_on_the_date_rise_and_stay_in_the_term(
    start: date, every: int, unit: str, span: int
) -> None:
    until = start + timedelta(days=span)
    found = deliveries(_row(start, every, unit, until))
    assert found[0] == start
    assert found == sorted(set(found))
    assert all(start <= d <= until for d in found)
    assert all(
        b - a >= timedelta(days=7 * every if unit == "week" else 28 * every)
        for a, b in itertools.pairwise(found)
    )


def test_a_recurrence_is_checked(inst: Instance) -> None:
    customer_id = make_customer(inst)
    with inst.sessions() as session, pytest.raises(ValidationFailed) as refused:
        intents.post_intent(
            session,
            inst,
            _token(customer_id),
            _intent(recurrence=Recurrence(2, "week", TODAY + timedelta(days=3))),
            Context.supplier("agent"),
        )
    assert set(refused.value.errors) == {"recurrence"}
