"""One row in any table of the models, built from the metadata alone.

Every string column takes "x" (so each foreign key meets its parent's row, whose id is "x"
too) and a column with a CHECK takes its first allowed value; tests of the schema use these
to fill every table without knowing them one by one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, Connection, MetaData, Table, func, inspect, select

from infomediary.models import Base


def filler(col: Column[Any]) -> Any:
    """A value any column of that type takes; every string is "x", so each foreign key
    meets the one parent row (whose id is "x" too)."""
    kind = getattr(col.type, "impl", col.type).python_type  # a TypeDecorator names none
    return {str: "x", bytes: b"x", int: 1, bool: False, datetime: NOW, date: NOW.date()}[kind]


NOW = datetime(2026, 12, 1, tzinfo=UTC)


def row_for(table: Table, **values: Any) -> dict[str, Any]:
    """One row of ``table``: a column with a CHECK takes its first allowed value."""
    checked = {
        str(check.name): check.info["values"][0]
        for check in table.constraints
        if isinstance(check, CheckConstraint)
    }
    row = {}
    for col in table.columns:
        name = f"ck_{table.name}_{col.name}"
        row[col.name] = checked[name] if name in checked else filler(col)
    row.update(values)
    return row


def insert_one_row_everywhere(conn: Connection, skip: set[str] | None = None) -> None:
    for table in Base.metadata.sorted_tables:
        if table.name not in (skip or set()):
            conn.execute(table.insert().values(row_for(table)))


def insert_one_row_in_the_tables_there(conn: Connection) -> set[str]:
    """One row in every table the database holds, in the columns it holds: a database at an
    older revision lacks some of the models' tables and columns. Returns the tables filled."""
    present = set(inspect(conn).get_table_names())
    filled = set()
    for model in Base.metadata.sorted_tables:
        if model.name not in present:
            continue
        table = Table(model.name, MetaData(), autoload_with=conn)  # the columns there, no defaults
        values = row_for(model)
        conn.execute(
            table.insert().values({c.name: values.get(c.name, filler(c)) for c in table.columns})
        )
        filled.add(model.name)
    return filled


def row_counts(conn: Connection) -> dict[str, int]:
    """Rows per table, for the models' tables the database holds (an older revision has fewer)."""
    present = set(inspect(conn).get_table_names())
    return {
        table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
        for table in Base.metadata.sorted_tables
        if table.name in present
    }


def dependencies(table: Table) -> set[Table]:
    """Every table ``table``'s foreign keys lead to, transitively."""
    found: set[Table] = set()
    todo = [table]
    while todo:
        for fk in todo.pop().foreign_keys:
            if fk.column.table not in found:
                found.add(fk.column.table)
                todo.append(fk.column.table)
    return found
