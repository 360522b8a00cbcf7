"""One transaction per use case.

- The edge (views, the OAuth adapter and its callbacks, CLI commands, the app factory) never
  commits, rolls back or begins a transaction: a scan of its source fails the build otherwise.
- Each use case commits exactly once, and a refused one leaves nothing behind but its denial
  entry (counted on the very session it is given).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor
from infomediary.errors import PolicyDenied, ServiceError, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import (
    AccessLogEntry,
    Base,
    ConsentGrant,
    InitialAccessToken,
    Supplier,
    utcnow,
)
from infomediary.services import (
    Context,
    accounts,
    auditing,
    auditing_stats,
    auditors,
    authorization,
    broker,
    consent_grants,
    customer_policy,
    customers,
    erasure,
    erasure_requests,
    export_csv,
    exports,
    housekeeping,
    notifications,
    offer_inbox,
    offers,
    profiles,
    resource,
    rewards,
    second_factors,
    site_settings,
    suppliers,
    wallet,
    web_sessions,
)
from infomediary.services.uow import unit_of_work
from tests.factories import make_customer, make_grant, make_supplier

ROOT = Path(__file__).resolve().parents[4] / "infomediary"
EDGE = [ROOT / "web", ROOT / "oauth", ROOT / "cli", ROOT / "app.py"]
#: The login-session store is Flask's ``SessionInterface``, not a use case: it loads and saves
#: the browser's session row in short transactions of its own, after the view's use case has
#: finished (docs/ARCHITECTURE.md, "Data flow of one dashboard request").
NOT_USE_CASES = {ROOT / "web" / "sessions.py"}
TRANSACTION_CALLS = {"commit", "rollback", "begin", "begin_nested"}
PASSWORD = "correct horse battery"


def transaction_calls(source: str) -> list[tuple[int, str]]:
    """(line, method) of every ``x.commit()`` / ``rollback`` / ``begin`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in TRANSACTION_CALLS
        ):
            found.append((node.lineno, node.func.attr))
    return found


#: Below the use cases nothing may end a transaction either: a rollback deep in the domain
#: (the broker index once ended its caller's transaction after a first load) silently drops
#: the use case's work.
DOMAIN = [ROOT / "broker", ROOT / "audit", ROOT / "crypto", ROOT / "models"]


def test_the_domain_never_ends_a_transaction() -> None:
    assert all(base.exists() for base in DOMAIN), "a scanned path moved: update DOMAIN"
    offenders = [
        f"{path.relative_to(ROOT.parent)}:{line} .{call}()"
        for base in DOMAIN
        for path in ([base] if base.is_file() else sorted(base.rglob("*.py")))
        for line, call in transaction_calls(path.read_text())
    ]
    assert offenders == []


def edge_files() -> Iterator[Path]:
    for path in EDGE:
        found = [path] if path.is_file() else sorted(path.rglob("*.py"))
        yield from (f for f in found if f not in NOT_USE_CASES)


def test_the_scan_finds_what_it_forbids() -> None:
    source = "def view():\n    db().commit()\n    s.rollback()\n    s.begin_nested()\n"
    assert transaction_calls(source) == [(2, "commit"), (3, "rollback"), (4, "begin_nested")]
    assert transaction_calls("x.commitment()\ncommit()\n") == []


def test_the_edge_never_commits_or_rolls_back() -> None:
    assert all(path.exists() for path in EDGE), "a scanned path moved: update EDGE"
    files = list(edge_files())
    assert len(files) > 10  # the scan sees the edge
    offenders = [
        f"{path.relative_to(ROOT.parent)}:{line} .{call}()"
        for path in files
        for line, call in transaction_calls(path.read_text())
    ]
    assert offenders == []


@contextmanager
def counting_commits(inst: Instance) -> Iterator[tuple[Session, list[int]]]:
    commits: list[int] = []
    with inst.sessions() as session:
        # Count the session's commits, not SQLAlchemy's after_commit event: that also fires
        # when a savepoint is released (``begin_nested``), which commits nothing.
        commit = session.commit

        def counted() -> None:
            commits.append(1)
            commit()

        session.commit = counted  # type: ignore[method-assign]
        yield session, commits


def snapshot(inst: Instance) -> dict[str, int]:
    with inst.sessions() as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


def last_entry(inst: Instance) -> AccessLogEntry:
    with inst.sessions() as session:
        return session.execute(
            select(AccessLogEntry).order_by(AccessLogEntry.seq.desc()).limit(1)
        ).scalar_one()


CTX = Context(Actor.system("test"))
QUERY = broker.CountQuery("marketing", {"region": ["NSW"]}, None)
WEEK = timedelta(days=7)
IDENTITY = ["profile.identity:read"]


def earned(inst: Instance, customer_id: str) -> int:
    """The customer earns $5.00 (in a session of its own); the cents."""
    with inst.sessions() as session:
        rewards.post(
            session,
            "reward",
            [
                (rewards.account(session, *rewards.PLATFORM), -500),
                (rewards.account(session, "customer", customer_id), 500),
            ],
        )
        session.commit()
    return 500


def requested_payout(inst: Instance, customer_id: str) -> str:
    """The customer's $5.00 earned and requested as a payout (in a session of its own)."""
    earned(inst, customer_id)
    with inst.sessions() as session:
        form = wallet.PayoutInput("5.00", "DE89 3704 0044 0532 0130 00")
        return wallet.request_payout(session, inst, customer_id, form, CTX).id


def _blocked(inst: Instance, customer_id: str, supplier_id: str) -> int:
    with inst.sessions() as session:
        return offer_inbox.block_supplier(
            session,
            inst,
            customer_id,
            supplier_id,
            revoke_grants=False,
            ctx=CTX,
            base_url="https://infomediary.example",
        )


def _erasure_request(inst: Instance, customer_id: str, supplier_id: str) -> str:
    make_grant(inst, customer_id, supplier_id)
    with inst.sessions() as session:
        return erasure_requests.request_erasure(
            session, inst, customer_id, supplier_id, CTX, "https://infomediary.example"
        ).id


def _supplier_rule(s: Session, i: Instance, c: str, p: str) -> None:
    """A rule for a supplier the customer dealt with (a grant)."""
    make_grant(i, c, p)
    customer_policy.set_supplier_rule(
        s, i, c, supplier_id=p, category="health", purpose="service", mode="direct", ctx=CTX
    )


#: A use case each: (name, call) where call(session, inst, customer_id, supplier_id) runs it.
USE_CASES: list[tuple[str, Callable[[Session, Instance, str, str], Any]]] = [
    ("read_profile", lambda s, i, c, _p: profiles.read_profile(s, i, c, CTX)),
    (
        "update_profile",
        lambda s, i, c, _p: profiles.update_profile(s, i, c, {"name": "Ada L."}, CTX),
    ),
    ("apply_template", lambda s, i, c, _p: customer_policy.apply_template(s, i, c, "private", CTX)),
    ("read_settings", lambda s, i, c, _p: site_settings.read_settings(s, i, c, CTX)),
    (
        "change_settings",
        lambda s, i, c, _p: site_settings.change_settings(
            s, i, c, site_settings.SettingsInput("de", "Europe/Berlin"), CTX
        ),
    ),
    (
        "time_zone_from_browser",
        lambda s, i, c, _p: site_settings.time_zone_from_browser(s, i, c, "Asia/Tokyo", CTX),
    ),
    ("mark_notifications_read", lambda s, i, c, _p: notifications.mark_all_read(s, i, c, CTX)),
    ("start_totp", lambda s, i, c, _p: second_factors.start_totp(s, i, c, CTX, PASSWORD)),
    ("new_recovery_codes", lambda s, i, c, _p: second_factors.new_recovery_codes(s, i, c, CTX)),
    ("remove_totp", lambda s, i, c, _p: second_factors.remove_totp(s, i, c, PASSWORD, CTX)),
    ("end_sessions", lambda s, _i, c, _p: web_sessions.end_all(s, c, None, CTX)),
    (
        "change_notification_preferences",
        lambda s, i, c, _p: notifications.change_preferences(
            s, i, c, notifications.PreferencesInput(("new_offer",), ("new_offer",), True), CTX
        ),
    ),
    (
        "set_district_counting",
        lambda s, i, c, _p: customer_policy.set_district_counting(s, i, c, allowed=True, ctx=CTX),
    ),
    (
        "save_grid",
        lambda s, i, c, _p: customer_policy.save_grid(
            s, i, c, {"cell-identity-marketing": "never", "cell-purchases-research": ""}, CTX
        ),
    ),
    (
        "set_supplier_rule",
        _supplier_rule,
    ),
    (
        "remove_rule",
        lambda s, i, c, _p: customer_policy.remove_rule(
            s, i, c, customer_policy.RuleKey("identity", "service", "any"), CTX
        ),
    ),
    ("export", lambda s, i, c, _p: exports.export(s, i, c, CTX)),
    ("export_csv", lambda s, i, c, _p: export_csv.export_zip(s, i, c, CTX)),
    (
        "change_password",
        lambda s, i, c, _p: customers.change_password(s, i, c, PASSWORD, PASSWORD + "!", CTX),
    ),
    ("erase", lambda s, i, c, _p: erasure.erase(s, i, c, PASSWORD, CTX)),
    (
        "revoke_grant",
        lambda s, i, c, p: consent_grants.revoke_grant(
            s, i, c, make_grant(i, c, p).id, CTX, "https://infomediary.example"
        ),
    ),
    (
        "approve",
        lambda s, i, c, p: authorization.approve(
            s,
            i,
            c,
            s.get_one(Supplier, p),
            scopes=["profile.identity:read"],
            purpose="service",
            expires_at=None,
            ctx=CTX,
            base_url="https://infomediary.example",
            issue_code=lambda grant_id: grant_id,
        ),
    ),
    (
        "count_audience",
        lambda s, i, _c, p: broker.count_audience(
            s, i, s.get_one(Supplier, p), QUERY, Context.supplier(p)
        ),
    ),
    (
        "send_offer",
        lambda s, i, _c, p: offers.send_offer(
            s,
            i,
            s.get_one(Supplier, p),
            offers.OfferInput(QUERY, "Autumn list", "New books.", 0, 10, utcnow() + WEEK),
            Context.supplier(p),
        ),
    ),
    (
        "release",
        lambda s, i, c, p: (
            make_grant(i, c, p),
            resource.release(
                s, i, s.get_one(Supplier, p), c, IDENTITY, "service", Context.supplier(p)
            ),
        ),
    ),
    (
        "sign_up",
        lambda s, i, _c, _p: accounts.sign_up(
            s,
            i,
            lambda *_args, **_kw: None,
            email="new.customer@example.com",
            password="a long enough passphrase",
            name=None,
            accepted_notice=True,
            base_url="https://infomediary.example",
        ),
    ),
    ("suspend_supplier", lambda s, _i, _c, p: suppliers.suspend_supplier(s, p, CTX)),
    ("approve_broker", lambda s, _i, _c, p: suppliers.approve_broker(s, p, sector="media")),
    ("revoke_broker", lambda s, _i, _c, p: suppliers.revoke_broker(s, p, CTX)),
    ("fund", lambda s, _i, _c, p: rewards.fund(s, p, 500)),
    ("wallet", lambda s, i, c, _p: wallet.wallet(s, i, c, 1, CTX)),
    (
        "request_payout",
        lambda s, i, c, _p: (
            earned(i, c),
            wallet.request_payout(s, i, c, wallet.PayoutInput("5", "ada@example.org"), CTX),
        ),
    ),
    (
        "cancel_payout",
        lambda s, i, c, _p: wallet.cancel_payout(s, i, c, requested_payout(i, c), CTX),
    ),
    (
        "export_payouts",
        lambda s, i, c, _p: (requested_payout(i, c), wallet.export_payouts(s, i, CTX)),
    ),
    (
        "create_auditor",
        lambda s, i, _c, _p: auditors.create(
            s, i, email="audra@example.org", password="a long auditor passphrase", ctx=CTX
        ),
    ),
    ("audit_search", lambda s, i, _c, _p: auditing.search(s, i, "a", auditing.AuditFilter(), CTX)),
    ("audit_export", lambda s, i, _c, _p: auditing.export(s, i, "a", auditing.AuditFilter(), CTX)),
    ("audit_verify", lambda s, i, _c, _p: auditing.verify_now(s, i, CTX)),
    (
        "audit_statistics",
        lambda s, i, _c, p: auditing_stats.supplier_stats(
            s, i, "a", p, auditing_stats.Range.parse(None, None), CTX
        ),
    ),
    (
        "block_supplier",
        lambda s, i, c, p: offer_inbox.block_supplier(
            s, i, c, p, revoke_grants=True, ctx=CTX, base_url="https://infomediary.example"
        ),
    ),
    (
        "unblock_supplier",
        lambda s, i, c, p: (
            _blocked(i, c, p),
            offer_inbox.unblock_supplier(s, i, c, p, CTX),
        ),
    ),
    (
        "revoke_all_grants",
        lambda s, i, c, p: (
            make_grant(i, c, p),
            offer_inbox.revoke_all_grants(s, i, c, p, CTX, "https://infomediary.example"),
        ),
    ),
    (
        "request_erasure",
        lambda s, i, c, p: (
            make_grant(i, c, p),
            erasure_requests.request_erasure(s, i, c, p, CTX, "https://infomediary.example"),
        ),
    ),
    (
        "set_webhook",
        lambda s, i, _c, p: erasure_requests.set_webhook(
            s, i, p, "https://93.184.216.34/erasure", "https://infomediary.example", CTX
        ),
    ),
    (
        "confirm_erasure",
        lambda s, i, c, p: erasure_requests.confirm(
            s, p, _erasure_request(i, c, p), Context.supplier(p)
        ),
    ),
    (
        "housekeeping_batch",
        lambda s, i, _c, _p: housekeeping.delete_batch(s, i, "sessions"),
    ),
    (
        "audit_anomalies",
        lambda s, i, _c, _p: auditing_stats.anomalies(
            s, i, auditing_stats.Range.parse(None, None), CTX
        ),
    ),
]


@pytest.mark.parametrize(("name", "use_case"), USE_CASES, ids=[n for n, _ in USE_CASES])
def test_a_use_case_commits_exactly_once(
    inst: Instance, name: str, use_case: Callable[..., Any]
) -> None:
    customer_id = make_customer(inst, password=PASSWORD, profile={"name": "Ada"})
    supplier_id = make_supplier(inst).id
    with counting_commits(inst) as (session, commits):
        use_case(session, inst, customer_id, supplier_id)
        assert commits == [1], name
        assert not session.in_transaction() or not session.dirty


def test_approval_writes_grant_receipt_entry_and_code_together(inst: Instance) -> None:
    """If storing the code fails, the grant, its receipt and its log entry go with it."""
    customer_id = make_customer(inst)
    supplier_id = make_supplier(inst).id
    before = snapshot(inst)

    def failing_code(_grant_id: str) -> None:
        raise RuntimeError("the code could not be stored")

    with counting_commits(inst) as (session, commits), pytest.raises(RuntimeError):
        authorization.approve(
            session,
            inst,
            customer_id,
            session.get_one(Supplier, supplier_id),
            scopes=["profile.identity:read"],
            purpose="service",
            expires_at=None,
            ctx=CTX,
            base_url="https://infomediary.example",
            issue_code=failing_code,
        )
    assert commits == []
    assert snapshot(inst) == before
    with inst.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ConsentGrant)) == 0


REFUSED: list[tuple[str, Callable[[Session, Instance, str, str], Any], type[ServiceError]]] = [
    (
        "change_password",
        lambda s, i, c, _p: customers.change_password(s, i, c, "wrong password", "x" * 16, CTX),
        ValidationFailed,
    ),
    ("erase", lambda s, i, c, _p: erasure.erase(s, i, c, "wrong password", CTX), ValidationFailed),
    (
        "release for marketing without a grant",
        lambda s, i, c, p: resource.release(
            s, i, s.get_one(Supplier, p), c, IDENTITY, "marketing", Context.supplier(p)
        ),
        PolicyDenied,
    ),
]


@pytest.mark.parametrize(("name", "use_case", "error"), REFUSED, ids=[n for n, _, _ in REFUSED])
def test_a_refused_use_case_leaves_only_its_denial_entry(
    inst: Instance, name: str, use_case: Callable[..., Any], error: type[ServiceError]
) -> None:
    customer_id = make_customer(inst, password=PASSWORD)
    supplier_id = make_supplier(inst).id
    before = snapshot(inst)
    with counting_commits(inst) as (session, commits), pytest.raises(error):
        use_case(session, inst, customer_id, supplier_id)
    assert commits == [1], name  # the denial entry's own commit, and nothing else
    after = snapshot(inst)
    assert after.pop("access_log") == before.pop("access_log") + 1
    for follows_the_log in ("log_head", "log_nodes"):
        after.pop(follows_the_log, None), before.pop(follows_the_log, None)
    assert after == before
    entry = last_entry(inst)
    assert entry.outcome == "denied"
    assert entry.customer_id == customer_id


def test_a_unit_of_work_commits_once_and_rolls_back_otherwise(inst: Instance) -> None:
    with counting_commits(inst) as (session, commits):
        with unit_of_work(session) as uow:
            uow.commit()
            with pytest.raises(RuntimeError, match="commits once"):
                uow.commit()
        assert commits == [1]
    with counting_commits(inst) as (session, commits):
        with unit_of_work(session):
            session.add(InitialAccessToken(token_hash=b"\x00" * 32, expires_at=utcnow()))
            session.flush()
        assert commits == []
    with inst.sessions() as session:
        assert session.scalar(select(func.count()).select_from(InitialAccessToken)) == 0


def test_registration_spends_its_token_only_with_the_client(inst: Instance) -> None:
    with inst.sessions() as session:
        token = suppliers.issue_initial_access_token(session)
    with inst.sessions() as session, pytest.raises(ValidationFailed):
        suppliers.register_client(
            session,
            token,
            name="!!!",
            redirect_uris=["https://shop.example/cb"],
            scopes=["profile.identity:read"],
            purposes=["service"],
            privacy_policy_url=None,
            sector="retail",
        )
    with inst.sessions() as session:
        assert suppliers.initial_access_token_usable(session, token)  # still unspent
        created = suppliers.register_client(
            session,
            token,
            name="Fine Books",
            redirect_uris=["https://shop.example/cb"],
            scopes=["profile.identity:read"],
            purposes=["service"],
            privacy_policy_url=None,
            sector="retail",
        )
        assert created.supplier.name == "Fine Books"
        assert not suppliers.initial_access_token_usable(session, token)
