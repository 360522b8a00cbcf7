"""The auditors' use cases: filters, pseudonyms, search, the read's own entries, export proofs,
statistics per UTC day and the anomaly rules at their thresholds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, select, update

from infomediary.audit.log import Actor, ActorType, StoredTree, append, current_root
from infomediary.audit.reasons import Reason, render
from infomediary.errors import ExportTooLarge, InvalidAuditFilter, NotFound
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, ConsentGrant, utcnow
from infomediary.services import Context, auditing, auditing_stats
from infomediary.tlog import merkle
from tests.factories import make_customer, make_grant, make_supplier

AUDITOR = "3f6c1d52-0000-4000-8000-000000000001"
CTX = Context(Actor(ActorType.AUDITOR, AUDITOR))


def entry(
    inst: Instance,
    supplier_id: str,
    customer_id: str | None = None,
    *,
    at: datetime | None = None,
    allowed: bool = True,
    purpose: str = "service",
    action: str = "read",
    reason: str | Reason = "read",
) -> None:
    with inst.sessions() as session:
        ev = Context.supplier(supplier_id).event(
            action, customer_id=customer_id, reason=reason, purpose=purpose, allowed=allowed
        )
        append(session, ev, at=at)
        session.commit()


def rows(inst: Instance) -> list[AccessLogEntry]:
    with inst.sessions() as session:
        return list(session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars())


# -- filters and pseudonyms ----------------------------------------------------------------


def test_filters_parse_and_round_trip() -> None:
    args = {
        "supplier": "3f6c1d52-aaaa-4000-8000-000000000001",
        "customer": "aud_" + "x" * 43,
        "actor": "supplier",
        "action": "read",
        "outcome": "denied",
        "purpose": "marketing",
        "since": "2026-01-01",
        "until": "2026-01-31",
    }
    parsed = auditing.AuditFilter.parse(args)
    assert parsed.since == date(2026, 1, 1)
    assert parsed.as_args() == args
    assert auditing.AuditFilter.parse({"action": " ", "since": ""}) == auditing.AuditFilter()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"customer": "psn_" + "x" * 43}, "customer"),
        ({"supplier": "a b"}, "supplier"),
        ({"actor": "nobody"}, "actor"),
        ({"outcome": "both"}, "outcome"),
        ({"purpose": "Marketing!"}, "purpose"),
        ({"since": "01/01/2026"}, "since"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "until"),
    ],
)
def test_a_filter_that_cannot_match_is_refused(args: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidAuditFilter) as caught:
        auditing.AuditFilter.parse(args)
    assert field in caught.value.errors


def test_pseudonyms_are_per_auditor_and_stable(inst: Instance) -> None:
    one = auditing.customer_pseudonym(inst, "auditor-1", "customer-1")
    assert one == auditing.customer_pseudonym(inst, "auditor-1", "customer-1")
    assert one.startswith("aud_")
    assert len(one) == 47
    others = {
        auditing.customer_pseudonym(inst, "auditor-2", "customer-1"),
        auditing.customer_pseudonym(inst, "auditor-1", "customer-2"),
        # the separator keeps ("auditor-1", "customer-1") apart from a shifted split
        auditing.customer_pseudonym(inst, "auditor-1c", "ustomer-1"),
    }
    assert one not in others
    assert len(others) == 3


# -- search and the read's own entries -----------------------------------------------------


def test_search_filters_pages_and_logs_the_customers_it_showed(inst: Instance) -> None:
    ada, bob = make_customer(inst), make_customer(inst)
    supplier = make_supplier(inst)
    for _ in range(3):
        entry(inst, supplier.id, ada)
    entry(inst, supplier.id, bob, allowed=False)
    before = len(rows(inst))
    with inst.sessions() as session:
        page = auditing.search(
            session, inst, AUDITOR, auditing.AuditFilter(supplier=supplier.id), CTX, per_page=3
        )
    assert [r.outcome for r in page.rows] == ["denied", "allowed", "allowed"]
    assert page.older == page.rows[-1].seq
    assert {r.customer for r in page.rows} == {
        auditing.customer_pseudonym(inst, AUDITOR, ada),
        auditing.customer_pseudonym(inst, AUDITOR, bob),
    }
    assert all(r.actor == "Acme Books" for r in page.rows)
    written = rows(inst)[before:]
    assert len(written) == 3  # one per customer shown, one for the read
    per_customer = {e.customer_id: render(e.reason_data, e.reason) for e in written}
    assert per_customer[ada] == (
        f"an auditor viewed 2 of your log entries (entries {page.rows[2].seq} to "
        f"{page.rows[1].seq}, search)"
    )
    assert per_customer[None].startswith("auditor read 3 log entries of 2 customers")
    assert {e.actor_id for e in written} == {AUDITOR}
    with inst.sessions() as session:
        rest = auditing.search(
            session,
            inst,
            AUDITOR,
            auditing.AuditFilter(supplier=supplier.id),
            CTX,
            before=page.older,
            per_page=3,
        )
    assert [r.seq for r in rest.rows] == [page.rows[-1].seq - 1]
    assert rest.older is None


def test_the_customer_filter_matches_only_this_auditors_pseudonym(inst: Instance) -> None:
    ada, bob = make_customer(inst), make_customer(inst)
    supplier = make_supplier(inst)
    entry(inst, supplier.id, ada)
    entry(inst, supplier.id, bob)
    mine = auditing.AuditFilter(customer=auditing.customer_pseudonym(inst, AUDITOR, ada))
    theirs = auditing.AuditFilter(customer=auditing.customer_pseudonym(inst, "other", ada))
    with inst.sessions() as session:
        found = auditing.search(session, inst, AUDITOR, mine, CTX).rows
        assert found
        assert {r.customer for r in found} == {mine.customer}
        assert auditing.search(session, inst, AUDITOR, theirs, CTX).rows == []


def test_a_customer_acting_is_named_by_pseudonym_too(inst: Instance) -> None:
    ada = make_customer(inst)
    with inst.sessions() as session:
        Context(Actor.customer(ada)).log(session, "read", reason="profile read")
        session.commit()
    with inst.sessions() as session:
        found = auditing.search(
            session, inst, AUDITOR, auditing.AuditFilter(actor_type="customer"), CTX
        ).rows
    assert found
    assert {r.actor for r in found} == {auditing.customer_pseudonym(inst, AUDITOR, ada)}
    assert ada not in repr(found)


# -- export proofs -------------------------------------------------------------------------


@contextmanager
def counted_queries(inst: Instance) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(inst.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(inst.engine, "before_cursor_execute", count)


def test_export_proofs_match_the_stored_trees_and_read_few_rows(inst: Instance) -> None:
    supplier = make_supplier(inst)
    sparse = make_supplier(inst, name="Sparse Media")
    for number in range(70):
        entry(inst, sparse.id if number % 9 == 0 else supplier.id)
    with inst.sessions() as session, counted_queries(inst) as queries:
        dense = auditing.export(session, inst, AUDITOR, auditing.AuditFilter(), CTX)
    reads = [q for q in queries if "log_nodes" in q or "access_log.leaf_hash" in q]
    assert len(reads) < 20  # a handful of ranged reads, not one per node
    with inst.sessions() as session:
        spread = auditing.export(
            session, inst, AUDITOR, auditing.AuditFilter(supplier=sparse.id), CTX
        )
    with inst.sessions() as session:
        tree = StoredTree(session)
        for found in (dense, spread):
            size, root = found.head.size, found.head.root
            assert found.head.source == "current"
            for item in found.entries:
                assert item.proof is not None
                assert list(item.proof) == merkle.inclusion_proof(tree, item.row.seq, size)
                merkle.verify_inclusion(item.row.seq, size, item.row.leaf_hash, item.proof, root)
    assert len(spread.entries) == 8


def test_an_export_past_its_limit_is_refused_and_writes_nothing(inst: Instance) -> None:
    supplier = make_supplier(inst)
    for _ in range(3):
        entry(inst, supplier.id)
    before = len(rows(inst))
    with inst.sessions() as session, pytest.raises(ExportTooLarge):
        auditing.export(
            session, inst, AUDITOR, auditing.AuditFilter(supplier=supplier.id), CTX, limit=2
        )
    assert len(rows(inst)) == before


def test_the_export_document_and_csv_rows_agree(inst: Instance) -> None:
    supplier = make_supplier(inst, name="=HYPERLINK(1)")
    entry(inst, supplier.id, reason="+1 refused")
    with inst.sessions() as session:
        found = auditing.export(
            session, inst, AUDITOR, auditing.AuditFilter(supplier=supplier.id), CTX
        )
        size, root = current_root(session)
    doc = auditing.export_document(found)
    assert doc["format"] == auditing.EXPORT_FORMAT
    assert doc["tree"]["size"] < size  # the export's own entries came after its tree
    [item] = doc["entries"]
    header, row = list(auditing.export_rows(found))
    cells = dict(zip(header, row, strict=True))
    assert cells["leaf_hash"] == item["leaf_hash"]
    assert cells["proof"].split() == item["proof"]
    assert cells["actor"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert item["actor"] == "=HYPERLINK(1)"
    assert root != base64_root(doc)


def base64_root(doc: dict[str, object]) -> bytes:
    import base64

    tree = doc["tree"]
    assert isinstance(tree, dict)
    return base64.b64decode(tree["root"])


# -- statistics and anomalies --------------------------------------------------------------


def test_days_are_utc_days(inst: Instance) -> None:
    supplier = make_supplier(inst)
    late = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    entry(inst, supplier.id, at=late)
    entry(inst, supplier.id, at=late + timedelta(seconds=2), allowed=False)
    span = auditing_stats.Range(date(2026, 3, 1), date(2026, 3, 2))
    with inst.sessions() as session:
        stats = auditing_stats.supplier_stats(session, inst, AUDITOR, supplier.id, span, CTX)
    assert [(d.day, d.allowed, d.denied) for d in stats.days] == [
        (date(2026, 3, 1), 1, 0),
        (date(2026, 3, 2), 0, 1),
    ]
    with inst.sessions() as session, pytest.raises(NotFound):
        auditing_stats.supplier_stats(session, inst, AUDITOR, "nobody", span, CTX)


def test_ranges_default_and_are_bounded() -> None:
    today = date(2026, 6, 30)
    assert auditing_stats.Range.parse(None, None, today) == auditing_stats.Range(
        date(2026, 6, 1), today
    )
    for since, until in (("2025-01-01", "2026-06-30"), ("2026-07-01", "2026-06-30"), ("x", None)):
        with pytest.raises(InvalidAuditFilter):
            auditing_stats.Range.parse(since, until, today)


@pytest.mark.parametrize(("today", "flagged"), [(5, False), (6, True)])
def test_a_denial_spike_is_three_times_the_trailing_mean(
    inst: Instance, today: int, flagged: bool
) -> None:
    supplier = make_supplier(inst)
    now = utcnow()
    for days_ago in range(1, 8):  # two a day before: a mean of 2
        for _ in range(2):
            entry(inst, supplier.id, allowed=False, at=now - timedelta(days=days_ago))
    for _ in range(today):
        entry(inst, supplier.id, allowed=False, at=now)
    span = auditing_stats.Range(now.date(), now.date())
    with inst.sessions() as session:
        found = auditing_stats.anomalies(session, inst, span, CTX)
    assert any(a.kind == "denial_spike" for a in found) is flagged


def test_outside_purpose_follows_the_grants_live_at_the_time(inst: Instance) -> None:
    customer = make_customer(inst)
    supplier = make_supplier(inst)
    make_grant(inst, customer, supplier.id, purpose="service")
    entry(inst, supplier.id, customer, purpose="service")  # covered
    entry(inst, supplier.id, customer, purpose="marketing")  # not
    entry(inst, supplier.id, customer, purpose="marketing", allowed=False)  # refused: no access
    entry(inst, supplier.id, customer, purpose="marketing", action="count")  # not an access
    with inst.sessions() as session:
        session.execute(update(ConsentGrant).values(expires_at=utcnow()))
        session.commit()
    later = utcnow() + timedelta(seconds=1)
    entry(inst, supplier.id, customer, purpose="service", at=later)  # after the grant expired
    span = auditing_stats.Range.parse(None, None)
    with inst.sessions() as session:
        stats = auditing_stats.supplier_stats(session, inst, AUDITOR, supplier.id, span, CTX)
    assert stats.outside_purpose_total == 2
    assert [r.purpose for r in stats.outside_purpose] == ["service", "marketing"]
    assert {r.customer for r in stats.outside_purpose} == {
        auditing.customer_pseudonym(inst, AUDITOR, customer)
    }
    assert [a.kind for a in stats.anomalies] == ["outside_purpose"]


def test_budget_flags_read_refusals_and_the_spend(inst: Instance) -> None:
    from infomediary.services import budgets

    refused = make_supplier(inst, name="Refused Counts")
    spender = make_supplier(inst, name="Big Spender")
    entry(inst, refused.id, allowed=False, reason=Reason("broker.count_refused_budget"))
    settings = inst.settings
    with inst.sessions() as session:
        step = int(settings.broker_epsilon * budgets.MICRO)
        for number in range(int(settings.broker_budget / settings.broker_epsilon)):
            budgets.charge(session, settings, spender.id, step, f"q{number}")
        session.commit()
    span = auditing_stats.Range.parse(None, None)
    with inst.sessions() as session:
        found = auditing_stats.anomalies(session, inst, span, CTX)
    flagged = {a.supplier for a in found if a.kind == "budget_exhausted"}
    assert flagged == {"Refused Counts", "Big Spender"}


def test_the_budget_anomaly_knows_every_code_a_budget_refusal_is_written_with() -> None:
    from infomediary.audit.reasons import CATALOGUE
    from infomediary.services.auditing_stats import _BUDGET_CODES

    assert set(_BUDGET_CODES) <= CATALOGUE.keys()
    assert {c for c, text in CATALOGUE.items() if "budget exhausted" in text} == set(_BUDGET_CODES)
