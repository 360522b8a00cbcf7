"""The declarative base and what every model module shares: the naming convention that
names each constraint, the UTC timestamp type, ``one_of`` CHECK constraints, ``utcnow``."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, DateTime, Dialect, MetaData, TypeDecorator, column
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def one_of(name: str, values: type[StrEnum]) -> CheckConstraint:
    """CHECK that column ``name`` holds a member of ``values``; named ``ck_<table>_<name>``.

    The column stays ``String``: a new member needs a migration replacing the constraint,
    not a type change (PostgreSQL enum types cannot drop a value). ``info["values"]`` keeps
    the allowed values for whoever inspects the metadata.
    """
    allowed = [member.value for member in values]
    return CheckConstraint(column(name).in_(allowed), name=name, info={"values": tuple(allowed)})


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend.

    SQLite keeps no offset; normalising on the way in and out makes the access log's
    canonical form (and so its hashes) identical on SQLite and PostgreSQL.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
