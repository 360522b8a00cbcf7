"""Interests from purchases: derived by the mapping, kept apart from declared ones, the
customer's to see, remove, restore and adopt; released and counted only where the policy
allows purchases too, special tags only under the customer's own rule; moved on daily."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.lines import LineStatus, PurchaseLine
from infomediary.audit.log import Actor
from infomediary.errors import ImportRunning, NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, DerivedInterests, Job, Supplier
from infomediary.services import (
    Context,
    customer_policy,
    derived_interests,
    derived_record,
    erasure,
    exports,
    profiles,
    purchases,
    resource,
)
from infomediary.services.customer_keys import customer_key
from policies.model import Mode
from tests.conftest import Auth, csrf_token_in
from tests.factories import make_customer, make_supplier
from tests.log_reasons import shown as reason_shown

CTX = Context(Actor.system("test"))
SCOPES = ("profile.interests:read", "purchases:read")
NOW = datetime.now(UTC)
FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "connectors" / "fixtures"


def line(
    key: str,
    *,
    name: str = "A Paperback",
    category: str | None = "Books",
    days_ago: int = 10,
    quantity: int = 1,
    price: int = 2_000,
    currency: str = "AUD",
    status: LineStatus = LineStatus.SHIPPED,
    order: str = "111-1",
) -> PurchaseLine:
    return PurchaseLine(
        retailer="amazon.com.au",
        order_id=order,
        line_key=key,
        ordered_at=NOW - timedelta(days=days_ago),
        product_name=name,
        product_id=None,
        category=category,
        quantity=quantity,
        unit_price_minor=price,
        currency=currency,
        status=status,
        source="test",
        line_number=1,
    )


def bring(inst: Instance, customer_id: str, lines: Iterable[PurchaseLine]) -> Any:
    with inst.sessions() as session:
        return purchases.import_lines(
            session, inst, customer_id, list(lines), "push", "test", ctx=CTX
        )


def record(inst: Instance, customer_id: str) -> dict[str, Any]:
    with inst.sessions() as session:
        return derived_record.load(session, inst, customer_key(session, inst, customer_id))


def shown(inst: Instance, customer_id: str) -> dict[str, derived_interests.DerivedInterest]:
    with inst.sessions() as session:
        return {d.tag: d for d in derived_interests.customer_view(session, inst, customer_id, CTX)}


def choose(inst: Instance, customer_id: str, tag: str, action: str) -> None:
    with inst.sessions() as session:
        derived_interests.choose(session, inst, customer_id, tag, action, CTX)


def counted(inst: Instance, where: dict[str, list[str]], purpose: str = "analytics") -> int:
    """Who the match index selects (the true set the broker's noisy answer starts from)."""
    with inst.sessions() as session:
        inst.match_index.refresh(session)
    return len(inst.match_index.select(where, purpose, Mode.AGGREGATE, "nobody", None).members)


def allow(inst: Instance, customer_id: str, category: str, mode: str = "aggregate") -> None:
    with inst.sessions() as session:
        customer_policy.set_rule(
            session, inst, customer_id, category=category, purpose="analytics", mode=mode, ctx=CTX
        )


# -- deriving -----------------------------------------------------------------------------------


def test_purchases_suggest_interests_kept_apart_from_declared_ones(inst: Instance) -> None:
    customer = make_customer(inst, profile={"interests": ["travel"]})
    bring(
        inst,
        customer,
        [
            line("a", name="A Novel", category=None, days_ago=40),
            line("b", name="Cast iron skillet", category="Kitchen & Dining", days_ago=5),
            line("c", name="Hardcover atlas", status=LineStatus.RETURNED),
            line("d", name="Plain thing", category="Unmapped"),
        ],
    )
    found = shown(inst, customer)
    assert set(found) == {"books", "cooking"}
    assert found["books"].lines == 1  # the returned hardcover is no evidence
    assert found["cooking"].latest_month == f"{(NOW - timedelta(days=5)):%Y-%m}"
    assert not found["books"].removed
    assert not found["books"].declared
    # the declared interests are untouched
    with inst.sessions() as session:
        profile = profiles.read_profile(session, inst, customer, CTX)
    assert profile["interests"] == ["travel"]
    # re-importing the same lines adds no evidence (idempotent by line key)
    bring(inst, customer, [line("a", name="A Novel", category=None, days_ago=40)])
    assert shown(inst, customer)["books"].lines == 1
    assert record(inst, customer)["evidence"]["books"]


def test_the_record_is_sealed_and_erased(inst: Instance) -> None:
    customer = make_customer(inst)
    bring(inst, customer, [line("a", name="Diabetic glucose meter", category="Health")])
    with inst.sessions() as session:
        sealed = session.execute(select(DerivedInterests.sealed)).scalar_one()
    assert b"diabetes" not in sealed
    assert b"evidence" not in sealed
    with inst.sessions() as session:
        erasure.erase(session, inst, customer, "correct horse battery", CTX)
    with inst.sessions() as session:
        assert session.execute(select(DerivedInterests)).first() is None


def test_remove_restore_and_adopt(inst: Instance) -> None:
    customer = make_customer(inst)
    bring(inst, customer, [line("a")])
    assert counted(inst, {"bought": ["books"]}) == 1
    choose(inst, customer, "books", "remove")
    assert shown(inst, customer)["books"].removed
    assert counted(inst, {"bought": ["books"]}) == 0
    # later purchases do not bring a removed interest back
    bring(inst, customer, [line("b", name="Second Paperback")])
    assert shown(inst, customer)["books"].removed
    assert shown(inst, customer)["books"].lines == 2
    assert counted(inst, {"bought": ["books"]}) == 0
    choose(inst, customer, "books", "restore")
    assert counted(inst, {"bought": ["books"]}) == 1
    choose(inst, customer, "books", "adopt")
    with inst.sessions() as session:
        assert profiles.read_profile(session, inst, customer, CTX)["interests"] == ["books"]
    assert shown(inst, customer)["books"].declared
    with pytest.raises(NotFound, match="no such interest"):
        choose(inst, customer, "gardening", "remove")
    with pytest.raises(ValidationFailed) as refused:
        choose(inst, customer, "books", "explode")
    assert "remove" in refused.value.errors["action"]
    with inst.sessions() as session:
        reasons = [reason_shown(r) for r in session.execute(select(AccessLogEntry)).scalars()]
    assert "interest from purchases removed" in reasons
    assert "interest from purchases restored" in reasons


def test_deleting_the_lines_removes_what_they_suggested(inst: Instance) -> None:
    customer = make_customer(inst)
    result = bring(inst, customer, [line("a"), line("b", name="Skillet", category="Kitchen")])
    assert set(shown(inst, customer)) == {"books", "cooking"}
    with inst.sessions() as session:
        rows = purchases.list_purchases(session, inst, customer, CTX)
    skillet = next(r for r in rows if r["product_name"] == "Skillet")
    with inst.sessions() as session:
        purchases.delete_purchase(session, inst, customer, skillet["id"], CTX)
    assert set(shown(inst, customer)) == {"books"}
    assert counted(inst, {"bought": ["cooking"]}) == 0
    with inst.sessions() as session:
        purchases.delete_import(session, inst, customer, result.import_id, CTX)
    assert shown(inst, customer) == {}
    assert counted(inst, {"bought": ["books"]}) == 0


# -- the broker ---------------------------------------------------------------------------------


def test_bought_and_spend_under_the_policy(inst: Instance) -> None:
    customer = make_customer(inst)  # balanced: purchases counted for analytics, not marketing
    bring(inst, customer, [line("a", quantity=2, price=3_000), line("b", price=1_000, days_ago=3)])
    assert counted(inst, {"bought": ["books"]}) == 1
    assert counted(inst, {"spend": ["books:50-199"]}) == 1  # 2 x 30.00 + 10.00 AUD
    assert counted(inst, {"spend": ["books:under-50", "books:200-499"]}) == 0
    assert counted(inst, {"bought": ["books"]}, purpose="marketing") == 0
    # lines in another currency count for bought, never for spend
    other = make_customer(inst)
    bring(inst, other, [line("x", currency="USD", price=90_000)])
    assert counted(inst, {"bought": ["books"]}) == 2
    assert counted(inst, {"spend": ["books:500-plus"]}) == 0
    # a customer who denies purchases is not counted by them
    allow(inst, other, "purchases", "never")
    assert counted(inst, {"bought": ["books"]}) == 1


def test_a_special_tag_needs_the_customers_own_rule_and_purchases(inst: Instance) -> None:
    customer = make_customer(inst)
    bring(inst, customer, [line("a", name="Glucose meter", category="Diabetic Supplies")])
    assert "diabetes-care" in shown(inst, customer)
    assert shown(inst, customer)["diabetes-care"].special
    assert counted(inst, {"bought": ["diabetes-care"]}) == 0  # no rule of their own: never
    allow(inst, customer, "health")
    assert counted(inst, {"bought": ["diabetes-care"]}) == 1
    allow(inst, customer, "purchases", "never")  # health alone is not enough
    assert counted(inst, {"bought": ["diabetes-care"]}) == 0
    assert counted(inst, {"spend": ["diabetes-care:under-50"]}) == 0


def test_the_daily_refresh_moves_the_window(inst: Instance) -> None:
    customer = make_customer(inst)
    bring(inst, customer, [line("a", days_ago=20)])
    assert counted(inst, {"bought": ["books"]}) == 1
    with inst.sessions() as session:
        job = session.execute(select(Job).where(Job.kind == derived_interests.REFRESH_JOB)).one()
    assert job[0].run_after > NOW
    with inst.sessions() as session:
        assert derived_interests.refresh_all(session, inst, NOW) == 0  # nothing moved yet
        assert derived_interests.refresh_all(session, inst, NOW + timedelta(days=400)) == 1
    assert counted(inst, {"bought": ["books"]}) == 0
    assert shown(inst, customer)["books"].lines == 1  # still theirs to see


# -- identified release and the export ----------------------------------------------------------


def release(inst: Instance, customer_id: str, scopes: list[str]) -> dict[str, Any]:
    supplier_id = make_supplier(
        inst, name=f"Shop {uuid.uuid4().hex[:8]}", scopes=SCOPES, purposes=("service",)
    ).id
    with inst.sessions() as session:
        supplier = session.get(Supplier, supplier_id)
        assert supplier is not None
        return resource.release(
            session, inst, supplier, customer_id, scopes, "service", Context(Actor.system("s"))
        )


def test_me_releases_them_only_with_purchases_too(inst: Instance) -> None:
    customer = make_customer(inst, profile={"interests": ["travel"]})
    bring(
        inst,
        customer,
        [line("a"), line("b", name="Glucose meter", category="Diabetic Supplies")],
    )
    for category in ("interests", "purchases"):
        with inst.sessions() as session:
            customer_policy.set_rule(
                session,
                inst,
                customer,
                category=category,
                purpose="service",
                mode="direct",
                ctx=CTX,
            )
    both = release(inst, customer, ["profile.interests:read", "purchases:read"])
    assert both["interests"] == ["travel"]
    assert both["interests_from_purchases"] == ["books"]  # the health tag needs its own rule
    alone = release(inst, customer, ["profile.interests:read"])
    assert "interests_from_purchases" not in alone
    choose(inst, customer, "books", "remove")
    assert (
        release(inst, customer, ["profile.interests:read", "purchases:read"])[
            "interests_from_purchases"
        ]
        == []
    )


def test_the_export_holds_the_evidence_and_the_removals(inst: Instance) -> None:
    customer = make_customer(inst)
    bring(inst, customer, [line("a"), line("b", name="Skillet", category="Kitchen")])
    choose(inst, customer, "cooking", "remove")
    with inst.sessions() as session:
        data = exports.export(session, inst, customer, CTX)
    derived = data["interests_from_purchases"]
    assert {e["interest"] for e in derived["evidence"]} == {"books", "cooking"}
    assert derived["removed"] == ["cooking"]


# -- the profile page ---------------------------------------------------------------------------


def test_the_profile_page_shows_and_changes_them(inst: Instance, client: Any, auth: Auth) -> None:
    auth.signup()
    with inst.sessions() as session:
        customer = purchases.customer_by_email(session, inst, "ada@example.org")
    bring(inst, customer, [line("a")])
    page = client.get("/profile").get_data(as_text=True)
    assert "Interests from your purchases" in page
    assert re.search(r"Books.*from your purchases", page, re.S)
    token = csrf_token_in(page)
    answer = client.post(
        "/profile/from-purchases",
        data={"csrf_token": token, "interest": "books", "action": "remove"},
    )
    assert answer.status_code == 302
    assert shown(inst, customer)["books"].removed
    page = client.get("/profile").get_data(as_text=True)
    assert "Removed" in page
    assert "Restore" in page
    unknown = client.post(
        "/profile/from-purchases",
        data={"csrf_token": token, "interest": "nonsense", "action": "remove"},
    )
    assert unknown.status_code == 303
    refused = client.post(
        "/profile/from-purchases", data={"interest": "books", "action": "restore"}
    )
    assert refused.status_code in (400, 403)  # no CSRF token
    assert shown(inst, customer)["books"].removed
    assert client.get("/profile/from-purchases").status_code == 405


def test_bought_needs_interests_as_well_as_purchases(inst: Instance) -> None:
    customer = make_customer(inst)
    bring(inst, customer, [line("a", quantity=2, price=3_000)])
    assert counted(inst, {"bought": ["books"]}) == 1
    allow(inst, customer, "interests", "never")  # purchases still allowed for analytics
    assert counted(inst, {"bought": ["books"]}) == 0
    assert counted(inst, {"spend": ["books:50-199"]}) == 0


def test_the_refresh_is_scheduled_again_after_a_rollback_and_a_failure(inst: Instance) -> None:
    customer = make_customer(inst)
    derived_interests._SCHEDULED.discard(inst)
    with inst.sessions() as session:
        derived_interests.schedule_refresh(session, inst)
        session.rollback()
    assert inst not in derived_interests._SCHEDULED
    bring(inst, customer, [line("a")])
    assert inst in derived_interests._SCHEDULED
    with inst.sessions() as session:
        job = session.execute(
            select(Job).where(Job.key == derived_interests.REFRESH_JOB)
        ).scalar_one()
        job.status = "failed"
        job.attempts = job.max_attempts
        session.commit()
    derived_interests._SCHEDULED.discard(inst)  # a new process
    bring(inst, customer, [line("b", name="Skillet", category="Kitchen")])
    with inst.sessions() as session:
        job = session.execute(
            select(Job).where(Job.key == derived_interests.REFRESH_JOB)
        ).scalar_one()
        assert job.status == "queued"
        assert job.attempts == 0


def test_a_record_that_will_not_open_stops_only_its_own_refresh(inst: Instance) -> None:
    broken, fine = make_customer(inst), make_customer(inst)
    bring(inst, broken, [line("a")])
    bring(inst, fine, [line("b")])
    with inst.sessions() as session:
        row = session.get(DerivedInterests, broken)
        assert row is not None
        row.sealed = b"not a vault blob"
        session.commit()
    with inst.sessions() as session:
        assert derived_interests.refresh_all(session, inst, NOW + timedelta(days=400)) == 1
    assert counted(inst, {"bought": ["books"]}) == 1  # the broken one's entry left as it was


def test_writers_of_the_record_take_turns(inst: Instance) -> None:
    """A customer's removal made while an import publishes is not written over by it."""
    import threading

    customer = make_customer(inst)
    bring(inst, customer, [line("a")])
    done = threading.Event()
    with inst.sessions() as publishing:
        key = customer_key(publishing, inst, customer)
        held = derived_interests._locked(publishing, inst, key)  # an import's final commit

        def remove() -> None:
            choose(inst, customer, "books", "remove")
            done.set()

        thread = threading.Thread(target=remove)
        thread.start()
        assert not done.wait(0.5)  # the removal waits for the import's commit
        evidence = derived_interests.Accumulator()
        evidence.add(line("b", name="Skillet", category="Kitchen"))
        derived_interests._merge(held, evidence)
        derived_interests._store(publishing, inst, key, held)
        publishing.commit()
    thread.join(10)
    assert done.is_set()
    final = record(inst, customer)
    assert final["removed"] == ["books"]
    assert set(final["evidence"]) == {"books", "cooking"}


def test_a_line_returned_since_is_updated_and_stops_counting(inst: Instance) -> None:
    customer = make_customer(inst)
    bring(inst, customer, [line("a", quantity=2, price=3_000)])
    assert counted(inst, {"spend": ["books:50-199"]}) == 1
    again = bring(inst, customer, [line("a", quantity=2, price=3_000, status=LineStatus.RETURNED)])
    assert (again.imported, again.duplicates, again.updated) == (0, 0, 1)
    with inst.sessions() as session:
        held = purchases.list_purchases(session, inst, customer, CTX)
    assert [row["status"] for row in held] == ["returned"]
    assert shown(inst, customer) == {}  # a returned product is no evidence
    assert counted(inst, {"bought": ["books"]}) == 0
    same = bring(inst, customer, [line("a", quantity=2, price=3_000, status=LineStatus.RETURNED)])
    assert (same.imported, same.duplicates, same.updated) == (0, 1, 0)


def test_one_import_at_a_time(inst: Instance) -> None:
    customer = make_customer(inst)

    def second_import_meanwhile() -> Iterable[PurchaseLine]:
        yield line("a")
        with pytest.raises(ImportRunning, match="another import"):
            bring(inst, customer, [line("a")])
        yield line("b", name="Second Paperback")

    with inst.sessions() as session:
        result = purchases.import_lines(
            session, inst, customer, second_import_meanwhile(), "push", "test", ctx=CTX, batch=1
        )
    assert result.imported == 2
    assert bring(inst, customer, [line("a")]).duplicates == 1  # and now it may
