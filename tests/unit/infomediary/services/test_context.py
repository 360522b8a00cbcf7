"""The request Context writes log entries: ``ctx.log`` appends this actor's entry in this
request, ``ctx.event`` builds it, ``ctx.denied`` marks it refused; refusals go through it too.

And no use case builds a ``LogEvent`` by hand: a scan of ``infomediary/services/`` fails the
build on a ``LogEvent(...)`` outside the modules that define how entries are written.
"""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import select

from infomediary.audit.log import Actor, ActorType, LogEvent, Sealed, append, verify
from infomediary.models import AccessLogEntry
from infomediary.services import REASON_LENGTH, Context
from infomediary.services.refusals import record_refusal, refuse_supplier
from tests.log_reasons import shown

SERVICES = Path(__file__).resolve().parents[4] / "infomediary" / "services"
#: Where entries are defined (``Context``, the unit of work's ``refuse``), and the modules of
#: the broker and the offers, whose entries are not yet written through ``ctx.log``.
MAY_BUILD_ENTRIES = {
    "__init__.py",
    "uow.py",
}


def entries(session) -> list[AccessLogEntry]:
    return list(session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars())


def test_log_appends_the_entry_of_this_actor_in_this_request(inst) -> None:
    ctx = Context.supplier("sup-1", "req-42")
    with inst.sessions() as session:
        ctx.log(
            session,
            "read",
            customer_id="cust-1",
            reason="policy allows",
            categories=frozenset({"identity", "demographics"}),
            purpose="marketing",
        )
        session.commit()
        [entry] = entries(session)
        assert (entry.actor_type, entry.actor_id) == ("supplier", "sup-1")
        assert entry.request_id == "req-42"
        assert (entry.action, entry.customer_id, shown(entry)) == (
            "read",
            "cust-1",
            "policy allows",
        )
        assert entry.categories == "demographics,identity"
        assert (entry.purpose, entry.outcome) == ("marketing", "allowed")
        assert verify(session).ok


def test_log_writes_what_a_hand_built_event_would(inst) -> None:
    """The same entry, byte for byte: the hash chain does not change with the helper."""
    ctx = Context(Actor.customer("cust-1"), "req-7")
    by_hand = LogEvent(
        actor=Actor.customer("cust-1"),
        action="update",
        customer_id="cust-1",
        categories=frozenset({"account"}),
        reason="password changed",
        request_id="req-7",
    )
    built = ctx.event(
        "update", customer_id="cust-1", reason="password changed", categories=frozenset({"account"})
    )
    assert built == by_hand
    with inst.sessions() as session:
        ctx.log(
            session,
            "update",
            customer_id="cust-1",
            reason="password changed",
            categories=frozenset({"account"}),
        )
        append(session, by_hand)
        session.commit()
        first, second = entries(session)
        fields = ["actor_type", "actor_id", "customer_id", "action", "categories", "purpose"]
        fields += ["outcome", "reason", "request_id", "detail"]
        assert [getattr(first, f) for f in fields] == [getattr(second, f) for f in fields]


def test_event_builds_the_entry_without_appending_it(inst) -> None:
    ctx = Context(Actor(ActorType.OPERATOR, "cli"))
    sealed = Sealed(b"sealed", bytes(32))
    event = ctx.event("update", reason="supplier verified", detail=sealed)
    assert event.actor == Actor(ActorType.OPERATOR, "cli")
    assert (event.action, event.customer_id, event.request_id) == ("update", None, "-")
    assert (event.allowed, event.detail, event.purpose) == (True, sealed, "service")
    with inst.sessions() as session:
        assert entries(session) == []


def test_denied_marks_the_entry_refused_and_cuts_its_reason_to_the_column(inst) -> None:
    ctx = Context.supplier("sup-1", "req-9")
    long = "scope missing: " + "x" * 400
    event = ctx.event("read", customer_id="cust-1", reason=long)
    refused = ctx.denied(event)
    assert refused.allowed is False
    assert refused.reason == long[:REASON_LENGTH]
    assert len(refused.reason) == REASON_LENGTH
    assert refused == LogEvent(
        actor=event.actor,
        action="read",
        customer_id="cust-1",
        allowed=False,
        reason=long[:REASON_LENGTH],
        request_id="req-9",
    )
    # the original is left as it was
    assert event.allowed is True
    assert event.reason == long
    short = ctx.denied(ctx.event("read", reason="token revoked"))
    assert (short.allowed, short.reason) == (False, "token revoked")
    with inst.sessions() as session:
        append(session, refused)
        session.commit()
        [entry] = entries(session)
        assert (entry.outcome, shown(entry), entry.request_id) == (
            "denied",
            long[:REASON_LENGTH],
            "req-9",
        )


def test_a_refusal_drops_the_work_and_commits_only_its_denied_entry(inst) -> None:
    ctx = Context(Actor.customer("cust-1"), "req-3")
    with inst.sessions() as session:
        ctx.log(session, "update", customer_id="cust-1", reason="work the refusal drops")
        record_refusal(
            session,
            ctx,
            "consent",
            customer_id="cust-1",
            reason="address not yet confirmed",
            categories=frozenset({"account"}),
        )
        [entry] = entries(session)
        assert (entry.actor_type, entry.actor_id, entry.request_id) == (
            "customer",
            "cust-1",
            "req-3",
        )
        assert (entry.action, entry.outcome, entry.categories) == ("consent", "denied", "account")
        assert shown(entry) == "address not yet confirmed"


def test_refuse_supplier_logs_the_suppliers_refused_access(inst) -> None:
    with inst.sessions() as session:
        refuse_supplier(
            session,
            Context.supplier("sup-1", "req-5"),
            action="read",
            reason="consent revoked",
            customer_id="cust-1",
            purpose="marketing",
            categories=frozenset({"identity"}),
        )
        (entry,) = entries(session)
        assert (entry.actor_type, entry.actor_id, entry.request_id) == (
            "supplier",
            "sup-1",
            "req-5",
        )
        assert (entry.action, entry.customer_id, entry.outcome) == ("read", "cust-1", "denied")
        assert (shown(entry), entry.purpose, entry.categories) == (
            "consent revoked",
            "marketing",
            "identity",
        )


def log_event_constructions(source: str) -> list[int]:
    """Lines of every ``LogEvent(...)`` (or ``log.LogEvent(...)``) call in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name == "LogEvent":
                found.append(node.lineno)
    return found


def test_the_scan_finds_a_hand_built_entry() -> None:
    source = (
        "from infomediary.audit import log\n"
        "def use_case(session, ctx):\n"
        "    append(session, LogEvent(actor=ctx.actor, action='read', customer_id=None))\n"
        "    log.append(session, log.LogEvent(ctx.actor, 'update', None))\n"
    )
    assert log_event_constructions(source) == [3, 4]
    clean = "def use_case(session, ctx):\n    ctx.log(session, 'read')\n    x: LogEvent = e\n"
    assert log_event_constructions(clean) == []


def test_use_cases_write_entries_through_the_context() -> None:
    modules = sorted(SERVICES.glob("*.py"))
    assert len(modules) > 20
    built = {
        path.name: lines
        for path in modules
        if path.name not in MAY_BUILD_ENTRIES
        and (lines := log_event_constructions(path.read_text(encoding="utf-8")))
    }
    assert built == {}, f"build entries with ctx.log / ctx.event instead: {built}"
