"""The migrated schema is exactly the models' schema, on every backend."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import (
    CheckConstraint,
    Engine,
    MetaData,
    Table,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from infomediary.db import make_engine
from infomediary.instance import MIGRATIONS, alembic_config, schema_revision
from infomediary.models import (
    Base,
    PurchaseImportStatus,
    PurchaseUploadOrigin,
    PurchaseUploadStatus,
)
from infomediary.statuses import (
    BidStatus,
    CodeChallengeMethod,
    DeliveryStatus,
    EmailTokenPurpose,
    ErasureStatus,
    IntentStatus,
    JobStatus,
    LedgerAccountKind,
    LedgerTransactionKind,
    OfferStatus,
    PayoutStatus,
    ReceiptEvent,
    RecurrenceUnit,
    RegisteredVia,
    ReleaseKind,
    SupplierKind,
    SupplierStatus,
)
from tests.table_rows import (
    dependencies,
    insert_one_row_everywhere,
    insert_one_row_in_the_tables_there,
    row_counts,
    row_for,
)


def test_migrations_match_models(inst) -> None:
    with inst.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_database_is_at_head(inst) -> None:
    current, head = schema_revision(inst.engine)
    assert current == head is not None


# -- status CHECK constraints (revision 0010) ---------------------------------------------------

STATUS_REVISION = "0010"


def model_checks() -> dict[tuple[str, str], tuple[str, ...]]:
    """(table, constraint name) -> allowed values, for every CHECK the models declare."""
    return {
        (table.name, str(check.name)): tuple(check.info["values"])
        for table in Base.metadata.sorted_tables
        for check in table.constraints
        if isinstance(check, CheckConstraint)
    }


def database_checks(engine: Engine) -> set[tuple[str, str]]:
    found = set()
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    for table in Base.metadata.sorted_tables:
        if table.name not in present:
            continue
        for check in inspector.get_check_constraints(table.name):
            found.add((table.name, str(check["name"])))
    return found


def test_every_status_column_has_a_check() -> None:
    """Each StrEnum column of the models is guarded, under the naming convention's name."""
    assert model_checks() == {
        ("suppliers", "ck_suppliers_kind"): tuple(SupplierKind),
        ("suppliers", "ck_suppliers_status"): tuple(SupplierStatus),
        ("suppliers", "ck_suppliers_registered_via"): tuple(RegisteredVia),
        ("email_tokens", "ck_email_tokens_purpose"): tuple(EmailTokenPurpose),
        ("consent_receipts", "ck_consent_receipts_event"): tuple(ReceiptEvent),
        ("authorization_codes", "ck_authorization_codes_code_challenge_method"): tuple(
            CodeChallengeMethod
        ),
        ("offers", "ck_offers_status"): tuple(OfferStatus),
        ("offer_deliveries", "ck_offer_deliveries_status"): tuple(DeliveryStatus),
        ("ledger_accounts", "ck_ledger_accounts_kind"): tuple(LedgerAccountKind),
        ("ledger_transactions", "ck_ledger_transactions_kind"): tuple(LedgerTransactionKind),
        ("releases", "ck_releases_kind"): tuple(ReleaseKind),
        ("jobs", "ck_jobs_status"): tuple(JobStatus),
        ("purchase_imports", "ck_purchase_imports_status"): tuple(PurchaseImportStatus),
        ("purchase_uploads", "ck_purchase_uploads_status"): tuple(PurchaseUploadStatus),
        ("purchase_uploads", "ck_purchase_uploads_origin"): tuple(PurchaseUploadOrigin),
        ("payout_requests", "ck_payout_requests_status"): tuple(PayoutStatus),
        ("erasure_requests", "ck_erasure_requests_status"): tuple(ErasureStatus),
        ("intents", "ck_intents_status"): tuple(IntentStatus),
        ("intents", "ck_intents_recurrence_unit"): tuple(RecurrenceUnit),
        ("bids", "ck_bids_status"): tuple(BidStatus),
    }


def test_migrated_database_has_the_models_checks(inst) -> None:
    """Autogenerate does not compare CHECK constraints, so the names are compared here."""
    assert database_checks(inst.engine) == set(model_checks())


@pytest.mark.parametrize(("table_name", "check_name"), sorted(model_checks()))
def test_database_refuses_an_unknown_value(inst, table_name: str, check_name: str) -> None:
    table = Base.metadata.tables[table_name]
    column = check_name.removeprefix(f"ck_{table_name}_")
    parents = [t for t in Base.metadata.sorted_tables if t in dependencies(table)]
    for allowed in model_checks()[table_name, check_name]:
        with inst.engine.connect() as conn, conn.begin() as txn:
            for parent in parents:
                conn.execute(parent.insert().values(row_for(parent)))
            conn.execute(table.insert().values(row_for(table, **{column: allowed})))
            txn.rollback()
    with inst.engine.connect() as conn, conn.begin():
        for parent in parents:
            conn.execute(parent.insert().values(row_for(parent)))
        with pytest.raises(IntegrityError) as refused:
            conn.execute(table.insert().values(row_for(table, **{column: "unknown"})))
    assert check_name in str(refused.value)


@pytest.fixture
def scratch_engine(backend: str, database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the backend's kind, apart from the session's migrated one."""
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'scratch.sqlite3'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    schema = f"scratch_{uuid.uuid4().hex[:12]}"
    admin = make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(database_url, connect_args={"options": f"-c search_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_status_checks_upgrade_and_downgrade_keep_every_row(scratch_engine: Engine) -> None:
    """0010 copies tables on SQLite; no row may be lost to a cascading DROP TABLE (an offer's
    deliveries, a grant's receipts), and the downgrade takes only the constraints away."""
    command.upgrade(alembic_config(scratch_engine), "0009")
    with scratch_engine.begin() as conn:
        insert_one_row_in_the_tables_there(conn)
        before = row_counts(conn)
    assert set(before.values()) == {1}
    assert database_checks(scratch_engine) == set()

    command.upgrade(alembic_config(scratch_engine), STATUS_REVISION)
    with scratch_engine.connect() as conn:
        assert row_counts(conn) == before
    assert database_checks(scratch_engine) == {c for c in model_checks() if c[0] in before}
    assert schema_revision(scratch_engine)[0] == STATUS_REVISION
    if scratch_engine.dialect.name == "sqlite":
        with scratch_engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1

    command.downgrade(alembic_config(scratch_engine), "0009")
    with scratch_engine.connect() as conn:
        assert row_counts(conn) == before
    assert database_checks(scratch_engine) == set()
    assert schema_revision(scratch_engine)[0] == "0009"


def test_status_checks_upgrade_refuses_rows_holding_unknown_values(
    scratch_engine: Engine,
) -> None:
    command.upgrade(alembic_config(scratch_engine), "0009")
    suppliers = Base.metadata.tables["suppliers"]
    with scratch_engine.begin() as conn:
        insert_one_row_in_the_tables_there(conn)
        conn.execute(update(suppliers).values(status="archived"))
        before = row_counts(conn)
    with pytest.raises(IntegrityError):
        command.upgrade(alembic_config(scratch_engine), STATUS_REVISION)
    assert schema_revision(scratch_engine)[0] == "0009"
    assert database_checks(scratch_engine) == set()
    with scratch_engine.connect() as conn:
        assert row_counts(conn) == before


# -- jobs and queued offers (revision 0013) -------------------------------------------------------


def test_queued_offers_upgrade_and_downgrade_keep_every_row(scratch_engine: Engine) -> None:
    """0013 replaces the offers' status CHECK (a table copy on SQLite) to allow ``queued``:
    no offer or delivery is lost either way, and the downgrade refuses while one is queued."""
    offers = Base.metadata.tables["offers"]
    command.upgrade(alembic_config(scratch_engine), "0012")
    with scratch_engine.begin() as conn:
        insert_one_row_in_the_tables_there(conn)
        before = row_counts(conn)
    with pytest.raises(IntegrityError), scratch_engine.begin() as conn:
        conn.execute(update(offers).values(status="queued"))  # not yet allowed

    command.upgrade(alembic_config(scratch_engine), "0013")
    with scratch_engine.connect() as conn:
        after = row_counts(conn)
        assert after.pop("jobs") == 0
        assert after == before
    assert ("jobs", "ck_jobs_status") in database_checks(scratch_engine)
    with scratch_engine.begin() as conn:
        conn.execute(update(offers).values(status="queued"))
    with pytest.raises(RuntimeError, match="still queued"):
        command.downgrade(alembic_config(scratch_engine), "0012")
    assert schema_revision(scratch_engine)[0] == "0013"

    with scratch_engine.begin() as conn:
        conn.execute(update(offers).values(status="delivered"))
    command.downgrade(alembic_config(scratch_engine), "0012")
    with scratch_engine.connect() as conn:
        assert row_counts(conn) == before
    assert "jobs" not in inspect(scratch_engine).get_table_names()
    with pytest.raises(IntegrityError), scratch_engine.begin() as conn:
        conn.execute(update(offers).values(status="queued"))


def test_intent_demand_upgrade_and_downgrade_keep_every_release(scratch_engine: Engine) -> None:
    """0028 lets releases be of kind ``intent_demand`` (a table copy on SQLite): no release is
    lost either way, and the downgrade refuses while one of that kind exists."""
    releases = Base.metadata.tables["releases"]
    command.upgrade(alembic_config(scratch_engine), "0027")
    with scratch_engine.begin() as conn:
        insert_one_row_in_the_tables_there(conn)
        before = row_counts(conn)
    assert before["releases"] == 1
    with pytest.raises(IntegrityError), scratch_engine.begin() as conn:
        conn.execute(update(releases).values(kind="intent_demand"))  # not yet allowed

    command.upgrade(alembic_config(scratch_engine), "0028")
    with scratch_engine.connect() as conn:
        assert row_counts(conn) == before
    with scratch_engine.begin() as conn:
        conn.execute(update(releases).values(kind="intent_demand"))
    with pytest.raises(RuntimeError, match="intent_demand"):
        command.downgrade(alembic_config(scratch_engine), "0027")
    assert schema_revision(scratch_engine)[0] == "0028"

    with scratch_engine.begin() as conn:
        conn.execute(update(releases).values(kind="count"))
    command.downgrade(alembic_config(scratch_engine), "0027")
    with scratch_engine.connect() as conn:
        assert row_counts(conn) == before
    with pytest.raises(IntegrityError), scratch_engine.begin() as conn:
        conn.execute(update(releases).values(kind="intent_demand"))


# -- no migration loses or breaks a row ---------------------------------------------------------


def test_upgrade_from_0008_to_head_keeps_every_row(scratch_engine: Engine) -> None:
    """On SQLite a batch migration copies a table and drops the old one; with foreign keys
    enforced the DROP would cascade to the tables referring to it (0009's copy of
    ``consent_grants`` took the receipts, codes and tokens of every grant with it)."""
    command.upgrade(alembic_config(scratch_engine), "0008")
    with scratch_engine.begin() as conn:
        filled = insert_one_row_in_the_tables_there(conn)
    assert {"consent_grants", "consent_receipts", "authorization_codes", "oauth_tokens"} <= filled
    command.upgrade(alembic_config(scratch_engine), "head")
    assert schema_revision(scratch_engine)[0] == schema_revision(scratch_engine)[1]
    with scratch_engine.connect() as conn:
        counts = row_counts(conn)
        assert {t: n for t, n in counts.items() if t in filled} == dict.fromkeys(filled, 1)
        assert set(counts) == {t.name for t in Base.metadata.sorted_tables}
        if scratch_engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


#: A revision after head that leaves rows pointing nowhere if foreign keys are not enforced.
BREAKING_REVISION = """\
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM offers")


def downgrade() -> None:
    pass
"""


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'dangling.sqlite3'}")
    try:
        yield engine
    finally:
        engine.dispose()


def test_sqlite_upgrade_leaving_a_dangling_foreign_key_is_refused(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    """SQLite migrations run with foreign keys off (see migrations/env.py), so nothing stops
    a bad revision from deleting a parent row under its children but the check before commit.
    PostgreSQL enforces foreign keys throughout, so there the DELETE would just cascade."""
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    head = schema_revision(sqlite_engine)[1]
    (scripts / "versions" / "9999_breaks_foreign_keys.py").write_text(
        BREAKING_REVISION.format(head=head)
    )
    config = alembic_config(sqlite_engine)
    config.set_main_option("script_location", str(scripts))
    command.upgrade(config, str(head))
    with sqlite_engine.begin() as conn:
        insert_one_row_everywhere(conn)
        before = row_counts(conn)

    with pytest.raises(CommandError) as refused:
        command.upgrade(config, "9999")
    message = str(refused.value)
    assert "\n" not in message
    assert "9999" in message
    assert "offer_deliveries" in message
    assert schema_revision(sqlite_engine)[0] == head
    with sqlite_engine.connect() as conn:
        assert row_counts(conn) == before
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []


# -- 0012: counts logged before the ledger become releases -------------------------------------


def test_ledger_upgrade_turns_logged_counts_into_releases(scratch_engine: Engine) -> None:
    from pyroaring import BitMap

    command.upgrade(alembic_config(scratch_engine), "0011")
    with scratch_engine.begin() as conn:
        insert_one_row_in_the_tables_there(conn)
        supplier_id = conn.execute(text("SELECT id FROM suppliers")).scalar_one()
        members = BitMap([3, 5, 8]).serialize()
        conn.execute(
            text(
                "UPDATE access_log SET customer_id = NULL, action = 'count', actor_id = :s,"
                " purpose = 'marketing', members = :m, detail = :d"
            ),
            {
                "s": supplier_id,
                "m": members,
                "d": b'{"criteria": {"breakdown": "region", "purpose": "marketing",'
                b' "where": {"interests": ["books"]}}, "epsilon": 0.1}',
            },
        )
    command.upgrade(alembic_config(scratch_engine), "0012")
    with scratch_engine.connect() as conn:
        release = conn.execute(
            text("SELECT kind, supplier_id, epsilon_micro, members, criteria FROM releases")
        ).one()
    assert release[0] == "breakdown"
    assert release[1] == supplier_id
    assert release[2] == 100_000
    assert BitMap.deserialize(bytes(release[3])) == BitMap([3, 5, 8])
    assert '"interests":["books"]' in release[4]


# -- organisations (revision 0011) -------------------------------------------------------------


def test_organisations_upgrade_gives_each_supplier_an_organisation_of_its_own(
    scratch_engine: Engine,
) -> None:
    """0011: one organisation per supplier, named after it, holding its budget rows; a
    self-registered client's broker scopes and sector become requests for the operator."""
    command.upgrade(alembic_config(scratch_engine), "0010")
    with scratch_engine.begin() as conn:
        insert_one_row_in_the_tables_there(conn)  # supplier "x" (operator-made), budget row "x"
        suppliers = Table("suppliers", MetaData(), autoload_with=conn)
        budgets = Table("budget_accounts", MetaData(), autoload_with=conn)
        base = dict(conn.execute(select(suppliers)).mappings().one())
        for supplier_id, via, sector in (("op", "cli", "travel"), ("dcr", "dcr", "finance")):
            conn.execute(
                suppliers.insert().values(
                    {
                        **base,
                        "id": supplier_id,
                        "client_id": f"sup_{supplier_id}",
                        "name": f"Supplier {supplier_id}",
                        "scopes": "audience:count offers:send profile.identity:read",
                        "sector": sector,
                        "registered_via": via,
                    }
                )
            )
        conn.execute(
            budgets.insert(),
            [
                {"supplier_id": "op", "period": 7, "spent_micro": 300_000},
                {"supplier_id": "*", "period": 7, "spent_micro": 900_000},
            ],
        )
        before = row_counts(conn)

    command.upgrade(alembic_config(scratch_engine), "0011")
    with scratch_engine.connect() as conn:
        organisations = Table("organisations", MetaData(), autoload_with=conn)
        suppliers = Table("suppliers", MetaData(), autoload_with=conn)
        budgets = Table("budget_accounts", MetaData(), autoload_with=conn)
        named = dict(conn.execute(select(organisations.c.id, organisations.c.name)).all())
        found = {r.id: r for r in conn.execute(select(suppliers))}
        spent = {(r.supplier_id, r.period): r.spent_micro for r in conn.execute(select(budgets))}
        counts = row_counts(conn)
    assert {t: n for t, n in counts.items() if t in before} == before  # no row lost
    assert len(named) == len(found) == 3
    assert {row.organisation_id for row in found.values()} == set(named)  # one each
    assert all(named[row.organisation_id] == row.name for row in found.values())
    assert spent == {
        (found["op"].organisation_id, 7): 300_000,
        (found["x"].organisation_id, 1): 1,
        ("*", 7): 900_000,
    }
    operator, registered = found["op"], found["dcr"]
    assert (operator.scopes, operator.sector) == (
        "audience:count offers:send profile.identity:read",
        "travel",
    )
    assert (operator.claimed_sector, operator.requested_scopes) == (None, "")
    assert (registered.scopes, registered.requested_scopes) == (
        "profile.identity:read",
        "audience:count offers:send",
    )
    assert (registered.sector, registered.claimed_sector) == ("other", "finance")
    with pytest.raises(IntegrityError), scratch_engine.begin() as conn:
        conn.execute(update(suppliers).where(suppliers.c.id == "op").values(organisation_id=None))

    command.downgrade(alembic_config(scratch_engine), "0010")
    with scratch_engine.connect() as conn:
        assert row_counts(conn) == before
        budgets = Table("budget_accounts", MetaData(), autoload_with=conn)
        assert {(r.supplier_id, r.spent_micro) for r in conn.execute(select(budgets))} == {
            ("x", 1),
            ("op", 300_000),
            ("*", 900_000),
        }
    assert schema_revision(scratch_engine)[0] == "0010"
