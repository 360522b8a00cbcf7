"""Key-encryption-key rotation and pruning (``infomediary keys rotate`` / ``keys prune``).

Envelope encryption (NIST SP 800-57 Part 1 §5.3 on cryptoperiods): rotating the KEK
re-wraps every customer's DEK (AES key wrap, RFC 3394) under a new KEK; the DEKs, and so
every field, stay as they are. Order matters because servers keep running meanwhile:

1. the new KEK is saved to the keyring file (or generated in the token), then named active
   in the database, in one transaction that locks ``keyring_state`` (so two rotations do
   not interleave);
2. DEKs under any other version are re-wrapped in committed batches (a rerun resumes): each
   batch reads only the three columns it needs, re-wraps in the provider, and writes back
   with one ``executemany`` UPDATE that matches each row's old wrapping, so a data key
   replaced or erased meanwhile is left alone;
3. pruning removes KEK versions that no DEK uses, that the database does not name active,
   and that no live process lease names (:mod:`infomediary.leases`), so a server that has
   not yet noticed the rotation never finds the KEK it wraps with gone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, select, update
from sqlalchemy.orm import Session

from infomediary.audit.log import Actor
from infomediary.audit.reasons import Reason
from infomediary.errors import KeysInUse
from infomediary.instance import Instance, record_fingerprints
from infomediary.leases import active_kek, delete_lapsed, live_leases, set_active_kek
from infomediary.models import DataKey, ProcessLease, utcnow
from infomediary.services import Context

#: Who rotates and prunes: the ``keys`` command, run by the system on the operator's behalf.
COMMAND = Context(Actor.system("cli"))
#: Data keys re-wrapped per committed batch.
BATCH = 5000
DATA_KEYS = cast(Table, DataKey.__table__)
#: One row's re-wrap: matched on its key and its old wrapping (compare and set).
REWRAP = (
    update(DATA_KEYS)
    .where(
        and_(
            DATA_KEYS.c.customer_id == bindparam("b_customer"),
            DATA_KEYS.c.kek_version == bindparam("b_from"),
            DATA_KEYS.c.wrapped_key == bindparam("b_old"),
        )
    )
    .values(kek_version=bindparam("b_to"), wrapped_key=bindparam("b_new"))
)
_COMPILED: dict[str, tuple[str, list[str] | None]] = {}


def write_rewrapped(session: Session, params: list[dict[str, Any]]) -> None:
    """:data:`REWRAP` for every row, as one ``executemany`` of the driver's: the statement is
    compiled once per dialect, and the values (ints, strings and bytes the driver takes as
    they are) skip SQLAlchemy's per-value processing, which cost more than the UPDATE."""
    connection = session.connection()
    dialect = connection.dialect
    compiled = _COMPILED.get(dialect.name)
    if compiled is None:
        done = REWRAP.compile(dialect=dialect)
        compiled = _COMPILED[dialect.name] = (done.string, done.positiontup)
    sql, order = compiled
    if order is None:
        connection.exec_driver_sql(sql, params)
    else:
        connection.exec_driver_sql(sql, [tuple(row[name] for name in order) for row in params])


@dataclass
class Rotation:
    active_kek: int
    resumed: bool
    pending: int
    rewrapped: int = 0


@dataclass(frozen=True)
class RotationReport:
    active_kek: int
    resumed: bool
    rewrapped: int
    removable: list[int]


@dataclass(frozen=True)
class PruneReport:
    removed: list[int]
    #: KEK versions kept because data keys still use them (version -> how many).
    still_wrapping: dict[int, int] = field(default_factory=dict)


def _pending(session: Session, active: int) -> int:
    query = select(func.count()).select_from(DataKey).where(DataKey.kek_version != active)
    return int(session.execute(query).scalar_one())


def start_rotation(session: Session, inst: Instance) -> Rotation:
    """Make a new KEK active, or resume an interrupted rotation to the newest one."""
    ring = inst.keyring
    named = active_kek(session, lock="update")  # serialises rotations
    ring.reload()
    pending = _pending(session, ring.active_kek_version)
    resumed = pending > 0 or named != ring.active_kek_version
    version = ring.active_kek_version if resumed else ring.add_kek()
    record_fingerprints(session, ring)
    set_active_kek(session, version)
    session.commit()  # from here on, every new data key is wrapped under ``version``
    return Rotation(version, resumed, _pending(session, version))


def rewrap(
    session: Session, inst: Instance, rotation: Rotation, *, batch: int = BATCH
) -> Iterator[int]:
    """Re-wrap data keys under the rotation's KEK, ``batch`` per commit; yields each count.

    Walks the keys in primary-key order (keyset pages), so each batch's query starts where
    the last one stopped; a rerun starts again from the first key not under the KEK."""
    target = rotation.active_kek
    after = ""
    while True:
        session.rollback()
        rows = session.execute(
            select(DataKey.customer_id, DataKey.kek_version, DataKey.wrapped_key)
            .where(DataKey.kek_version != target, DataKey.customer_id > after)
            .order_by(DataKey.customer_id)
            .limit(batch)
        ).all()
        if not rows:
            return
        rewrap_one = inst.vault.rewrap
        params = [
            {
                "b_customer": customer_id,
                "b_from": version,
                "b_old": wrapped,
                "b_to": target,
                "b_new": rewrap_one(wrapped, version, target),
            }
            for customer_id, version, wrapped in rows
        ]
        write_rewrapped(session, params)
        # Rotation is the one use case that commits many times, on purpose: each batch of
        # re-wrapped keys is durable on its own, so an interrupted rotation resumes where it
        # stopped and never holds a lock over every data key at once.
        session.commit()
        after = rows[-1][0]
        rotation.rewrapped += len(rows)
        yield len(rows)


def finish_rotation(
    session: Session, inst: Instance, rotation: Rotation, *, ctx: Context = COMMAND
) -> RotationReport:
    ctx.log(
        session,
        "update",
        reason=Reason(
            "keys.rewrapped", {"rewrapped": rotation.rewrapped, "kek": rotation.active_kek}
        ),
    )
    session.commit()
    removable = [v for v in inst.keyring.kek_versions() if v != rotation.active_kek]
    return RotationReport(rotation.active_kek, rotation.resumed, rotation.rewrapped, removable)


def rotate(
    session: Session, inst: Instance, *, batch: int = BATCH, ctx: Context = COMMAND
) -> RotationReport:
    rotation = start_rotation(session, inst)
    for _count in rewrap(session, inst, rotation, batch=batch):
        pass
    return finish_rotation(session, inst, rotation, ctx=ctx)


def _refusal(blocked: list[int], leases: list[ProcessLease], now_seconds: float) -> str:
    """One line: which versions, which processes, and how long until their leases let go."""
    waits = []
    for lease in leases:
        expires = lease.expires_at.timestamp()
        if lease.active_kek in blocked:
            # a live process notices the rotation before its lease runs out, then keeps
            # naming the old version for one more lease period
            period = expires - lease.refreshed_at.timestamp()
            waits.append(expires + period)
        else:
            releases = lease.releases_at.timestamp() if lease.releases_at else expires
            waits.append(min(expires, releases))
    wait = max(1, math.ceil(max(waits) - now_seconds))
    who = ", ".join(f"pid {lease.pid} on {lease.host}" for lease in leases[:3])
    if len(leases) > 3:
        who += f" and {len(leases) - 3} more"
    return (
        f"not pruning KEK version(s) {blocked}: the lease of {len(leases)} running process(es) "
        f"({who}) says they may still wrap new data keys with them; a lease lets go within "
        f"{wait} s (sooner if the process stops), so run `infomediary keys prune` again in "
        f"{wait} s"
    )


def prune(session: Session, inst: Instance, *, ctx: Context = COMMAND) -> PruneReport:
    """Remove KEK versions nothing uses, or raise :class:`KeysInUse` naming who might."""
    ring = inst.keyring
    ring.reload()
    now = utcnow()
    named = active_kek(session)
    counts = select(DataKey.kek_version, func.count()).group_by(DataKey.kek_version)
    used = {int(version): int(count) for version, count in session.execute(counts)}
    keep = {ring.active_kek_version, named}
    candidates = [v for v in ring.kek_versions() if v not in keep and v not in used]
    leases = [
        lease
        for lease in live_leases(session, now)
        if lease.id != inst.leases.lease_id and set(lease.versions()) & set(candidates)
    ]
    if leases:
        blocked = sorted({v for lease in leases for v in lease.versions()} & set(candidates))
        session.rollback()
        raise KeysInUse(_refusal(blocked, leases, now.timestamp()))
    delete_lapsed(session, now)
    if candidates:
        ctx.log(session, "update", reason=Reason("keys.removed", {"versions": list(candidates)}))
    session.commit()
    if candidates:
        ring.remove_keks(candidates)
    still = {v: n for v, n in used.items() if v not in keep}
    return PruneReport(removed=candidates, still_wrapping=still)
