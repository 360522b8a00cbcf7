"""Warming a process before it takes traffic: what would otherwise be built inside the first
request that needs it.

A server worker (gunicorn's ``post_worker_init``, ``infomediary serve`` before it listens)
calls :func:`warm` once: it opens the first database connection, builds the broker's match
index from ``match_entries`` and folds the privacy ledger from ``releases`` (a first broker
request would otherwise do both while it holds the global budget lock), makes the receipt
signer, the noise source and the dummy password hash, and loads the packaged tables (the
confusables, the export's schema, the time zones, the interest rules). Nothing is written.

Another cache joins with :func:`add` (``warmup.add("name", fn)``, ``fn(session, inst)``);
each warmer runs once per call, in order, in one read-only session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from infomediary.db import begin_read
from infomediary.instance import Instance
from infomediary.logs import get_logger
from infomediary.services import derived_interests, export_csv, privacy_ledger, site_settings
from infomediary.supplier_names import prototypes

log = get_logger("warmup")

Warmer = Callable[[Session, Instance], object]


def _connection(session: Session, inst: Instance) -> None:
    session.execute(text("SELECT 1"))


def _match_index(session: Session, inst: Instance) -> None:
    inst.match_index.refresh(session)


def _privacy_ledger(session: Session, inst: Instance) -> None:
    privacy_ledger.refresh(session, inst)


def _keys_and_noise(session: Session, inst: Instance) -> None:
    inst.receipt_signer  # noqa: B018 - made on first use; the property makes it
    inst.noise  # noqa: B018
    inst.dummy_hash  # noqa: B018


def _tables(session: Session, inst: Instance) -> None:
    prototypes()
    export_csv.layouts()
    site_settings.time_zones()
    derived_interests.rules()


_WARMERS: dict[str, Warmer] = {
    "database": _connection,
    "match_index": _match_index,
    "privacy_ledger": _privacy_ledger,
    "keys_and_noise": _keys_and_noise,
    "tables": _tables,
}


def add(name: str, warmer: Warmer) -> None:
    """Run ``warmer(session, inst)`` in every later :func:`warm` (a name again replaces it)."""
    _WARMERS[name] = warmer


@dataclass(frozen=True, slots=True)
class Warmed:
    """What a warm-up did: the index as built, and the seconds each warmer took."""

    index_version: int
    index_members: int
    seconds: dict[str, float]


def warm(inst: Instance) -> Warmed:
    """Build this process's caches now (idempotent: a second call only refreshes them)."""
    seconds: dict[str, float] = {}
    with inst.sessions() as session:
        # a read phase (on SQLite a WAL read, no write lock): workers warming at once, and the
        # processes already serving, never wait on each other's warm-up
        begin_read(session)
        for name, warmer in list(_WARMERS.items()):
            started = time.perf_counter()
            warmer(session, inst)
            seconds[name] = time.perf_counter() - started
        session.rollback()  # a read: nothing to keep, no transaction left open
    index = inst.match_index
    warmed = Warmed(index.version, index.members, seconds)
    log.info(
        "index warmed: %d member(s) at version %d in %.0f ms; caches warmed in %.0f ms",
        warmed.index_members,
        warmed.index_version,
        1000 * seconds.get("match_index", 0.0),
        1000 * sum(seconds.values()),
    )
    return warmed
