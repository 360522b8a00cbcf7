"""Each test starts from empty tables: the list of what is emptied comes from the models."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, MetaData, String, Table

from infomediary.instance import Instance
from infomediary.models import Base, BrokerState, LogHead
from tests.conftest import KEPT_TABLES, cleaned_tables, empty_tables
from tests.table_rows import insert_one_row_everywhere, row_counts


def test_every_model_table_but_the_kept_ones_is_cleaned() -> None:
    cleaned = {t.name for t in cleaned_tables()}
    assert cleaned == set(Base.metadata.tables) - set(KEPT_TABLES)
    assert set(KEPT_TABLES) <= set(Base.metadata.tables)  # no stale exception


def test_a_table_added_to_the_models_is_cleaned_children_first() -> None:
    metadata = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(metadata)
    Table(
        "newly_added",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("supplier_id", ForeignKey("suppliers.id")),
    )
    order = [t.name for t in cleaned_tables(metadata)]
    assert "newly_added" in order
    assert order.index("newly_added") < order.index("suppliers")
    for table in cleaned_tables(metadata):
        for fk in table.foreign_keys:
            if fk.column.table.name in order:
                assert order.index(table.name) < order.index(fk.column.table.name)


def test_cleanup_empties_every_cleaned_table_and_reseeds_state(inst: Instance) -> None:
    with inst.engine.begin() as conn:
        for table in cleaned_tables():
            conn.execute(table.delete())
        insert_one_row_everywhere(conn, skip=set(KEPT_TABLES))
        filled = row_counts(conn)
    assert all(filled[name] == 1 for name in filled if name not in KEPT_TABLES)
    assert all(filled[name] >= 1 for name in KEPT_TABLES)  # written by initialise

    empty_tables(inst)

    with inst.engine.connect() as conn:
        after = row_counts(conn)
    seeded = {LogHead.__tablename__, BrokerState.__tablename__}
    assert {name for name, n in after.items() if n} == seeded | set(KEPT_TABLES)
    assert all(after[name] == 1 for name in seeded)
    assert {name: after[name] for name in KEPT_TABLES} == {
        name: filled[name] for name in KEPT_TABLES
    }
