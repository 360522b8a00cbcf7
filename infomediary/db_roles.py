"""Two database roles on PostgreSQL: the owner migrates, the app's role cannot rewrite the log.

With ``INFOMEDIARY_ADMIN_DATABASE_URL`` set, ``infomediary init`` migrates and seeds as that
role (the schema's owner), then grants the role of ``INFOMEDIARY_DATABASE_URL`` what the app
needs: reading and writing the ordinary tables and their sequences, but on the access log only
what an append does (:func:`infomediary.audit.log.append`: insert an entry and the Merkle nodes
it completes, update the head's size, last hash and right edge under ``SELECT ... FOR UPDATE``,
which PostgreSQL allows only to a role that may update the row). ``alembic_version`` is read
only. The grants are made again, revoking first, at the end of every ``init``, so a table a
migration adds is covered and a right given by hand is taken back; then they are read back
with ``has_table_privilege``, which counts what the role holds through ``PUBLIC``, another
role or ownership, and a role that could still change a log row is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from infomediary.db import make_engine, normalise_url

#: What the app's role may do to the ordinary tables.
ORDINARY = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
#: Tables whose rows the app only adds to (or, for the head, moves forward): nothing more.
LIMITED: Mapping[str, frozenset[str]] = {
    "access_log": frozenset({"SELECT", "INSERT"}),
    "log_nodes": frozenset({"SELECT", "INSERT"}),
    "log_checkpoints": frozenset({"SELECT", "INSERT"}),
    "log_head": frozenset({"SELECT", "UPDATE"}),
    "alembic_version": frozenset({"SELECT"}),
}
#: Every privilege PostgreSQL knows on a table (``has_table_privilege`` asks for each).
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
#: SQLSTATE of ``insufficient_privilege``.
INSUFFICIENT_PRIVILEGE = "42501"


class RoleError(RuntimeError):
    """The two roles cannot be set up as asked; the one-line message says why."""


def app_role(database_url: str) -> str:
    """The role the app connects as (config checks that the URL names one)."""
    return str(normalise_url(database_url).username)


def permission_denied(exc: DBAPIError) -> str | None:
    """PostgreSQL's sentence for a refused privilege (``permission denied for ...``), or None
    for any other database error."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
        return None
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return str(primary or "permission denied")


def grant_app_role(admin: Engine, database_url: str, revision: str | None) -> str:
    """Grant the role of ``database_url`` what the app needs on the schema ``admin`` just
    migrated, check what it holds, and check it sees that schema at ``revision``; its name."""
    role = app_role(database_url)
    with admin.begin() as conn:
        _grant(conn, role)
    _check_sees(database_url, role, revision)
    return role


def _grant(conn: Connection, role: str) -> None:
    quote = conn.dialect.identifier_preparer.quote
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    if exists is None:
        raise RoleError(
            f"the role {role} of INFOMEDIARY_DATABASE_URL does not exist: create it "
            f"(CREATE ROLE {quote(role)} LOGIN) and run `infomediary init` again"
        )
    if conn.execute(text("SELECT current_user")).scalar_one() == role:
        raise RoleError(
            "INFOMEDIARY_ADMIN_DATABASE_URL connects as the app's own role "
            f"{role}: it must name the role that owns the schema"
        )
    schema = str(conn.execute(text("SELECT current_schema()")).scalar_one())
    tables = [
        str(name)
        for name in conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY tablename"),
            {"s": schema},
        ).scalars()
    ]
    grantee = quote(role)
    conn.execute(text(f"GRANT USAGE ON SCHEMA {quote(schema)} TO {grantee}"))
    for table in tables:
        name = f"{quote(schema)}.{quote(table)}"
        allowed = LIMITED.get(table, ORDINARY)
        conn.execute(text(f"REVOKE ALL ON TABLE {name} FROM {grantee}"))
        conn.execute(text(f"GRANT {', '.join(sorted(allowed))} ON TABLE {name} TO {grantee}"))
    conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {quote(schema)} FROM {grantee}"))
    conn.execute(
        text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {quote(schema)} TO {grantee}")
    )
    for table in tables:
        _check_holds(conn, role, schema, table)


def _check_holds(conn: Connection, role: str, schema: str, table: str) -> None:
    held = {
        str(privilege)
        for privilege in conn.execute(
            text(
                "SELECT p FROM unnest(CAST(:privileges AS text[])) AS p WHERE "
                "has_table_privilege(:r, format('%I.%I', CAST(:s AS text), CAST(:t AS text)), p)"
            ),
            {"privileges": list(TABLE_PRIVILEGES), "r": role, "s": schema, "t": table},
        ).scalars()
    }
    wanted = LIMITED.get(table, ORDINARY)
    missing = sorted(wanted - held)
    if missing:
        raise RoleError(
            f"the role {role} still lacks {', '.join(missing)} on {table} after the grants: "
            "INFOMEDIARY_ADMIN_DATABASE_URL must name the role that owns the tables"
        )
    if table in LIMITED and held - wanted:
        extra = ", ".join(sorted(held - wanted))
        raise RoleError(
            f"the role {role} may still {extra} on {table} (as a superuser, the tables' owner, "
            "a member of a role that may, or through PUBLIC): the app's role must not be able "
            "to change the access log"
        )


def _check_sees(database_url: str, role: str, revision: str | None) -> None:
    """The app's role reaches the database and reads the revision the owner migrated to (so
    both URLs name one database and the role's search path finds the tables)."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            seen = MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise RoleError(
            f"cannot connect as the app's role {role} at {where}: {type(exc.orig).__name__}"
        ) from None
    except DBAPIError as exc:
        denied = permission_denied(exc)
        if denied is None:
            raise
        raise RoleError(f"the role {role} cannot read the schema: {denied}") from None
    finally:
        engine.dispose()
    if seen != revision:
        raise RoleError(
            f"the role {role} sees schema {seen or 'empty'}, not {revision}: "
            "INFOMEDIARY_DATABASE_URL and INFOMEDIARY_ADMIN_DATABASE_URL must name one database "
            "and schema"
        )
