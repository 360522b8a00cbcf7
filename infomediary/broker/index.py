"""The in-memory match index: one compressed bitmap (pyroaring) per blinded token.

A count is a few unions and intersections of bitmaps plus a popcount. Each worker process
builds the index at start from ``match_entries`` and, before every answer, compares its
version with ``broker_state.version``; if it is stale it applies the changed entries
(``version > loaded``), so a policy tightened a moment ago is honoured by every worker.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from pyroaring import BitMap
from sqlalchemy import select
from sqlalchemy.orm import Session

from infomediary import metrics
from infomediary.broker.attributes import categories_of, value_category
from infomediary.broker.members import (
    STATE_ID,
    TOKEN_BYTES,
    eligibility_text,
    exclusion_text,
    token,
    value_text,
)
from infomediary.models import BrokerState, MatchEntry
from policies.model import Mode

_EMPTY = BitMap()


@dataclass(frozen=True)
class Selection:
    """What a query selects: the members, and the categories its predicates touched."""

    members: BitMap
    categories: frozenset[str]


class MatchIndex:
    def __init__(self, key: bytes):
        self._key = key
        self._bitmaps: dict[bytes, BitMap] = {}
        self._tokens: dict[str, bytes] = {}
        self.version = -1
        self._all = BitMap()  # every ordinal with tokens: eligibility bitmaps are subsets of it
        self._lock = threading.Lock()

    def _token(self, text: str) -> bytes:
        cached = self._tokens.get(text)
        if cached is None:
            cached = self._tokens[text] = token(self._key, text)
        return cached

    @property
    def members(self) -> int:
        """Customers currently in the index (with at least one token)."""
        return len(self._all)

    def bitmap(self, text: str) -> BitMap:
        return self._bitmaps.get(self._token(text), _EMPTY)

    # -- building and refreshing -----------------------------------------------------------
    @metrics.INDEX_BUILD_SECONDS.time()
    def load(self, session: Session, batch: int = 50_000) -> None:
        """Full build from the database."""
        version = _current_version(session)
        lists: dict[bytes, list[int]] = defaultdict(list)
        live: list[int] = []
        after = 0
        while True:
            rows = session.execute(
                select(MatchEntry.ordinal, MatchEntry.tokens)
                .where(MatchEntry.ordinal > after)
                .order_by(MatchEntry.ordinal)
                .limit(batch)
            ).all()
            if not rows:
                break
            for ordinal, blob in rows:
                if blob:
                    live.append(ordinal)
                for start in range(0, len(blob), TOKEN_BYTES):
                    lists[blob[start : start + TOKEN_BYTES]].append(ordinal)
            after = rows[-1][0]
        bitmaps = {tok: BitMap(ordinals) for tok, ordinals in lists.items()}
        for bitmap in bitmaps.values():
            bitmap.run_optimize()
        with self._lock:
            self._bitmaps = bitmaps
            self.version = version
            self._all = BitMap(live)

    def refresh(self, session: Session) -> bool:
        """Apply entries changed since the loaded version; True if anything changed."""
        current = _current_version(session)
        if current == self.version:
            return False
        if self.version < 0:
            self.load(session)
            return True
        rows = session.execute(
            select(MatchEntry.ordinal, MatchEntry.tokens).where(
                MatchEntry.version > self.version, MatchEntry.version <= current
            )
        ).all()
        with self._lock:
            if current <= self.version:  # a concurrent refresh applied newer entries meanwhile
                return False
            for ordinal, blob in rows:
                for bitmap in self._bitmaps.values():
                    bitmap.discard(ordinal)
                if blob:
                    self._all.add(ordinal)
                else:
                    self._all.discard(ordinal)
                for start in range(0, len(blob), TOKEN_BYTES):
                    key = blob[start : start + TOKEN_BYTES]
                    if key not in self._bitmaps:
                        self._bitmaps[key] = BitMap()
                    self._bitmaps[key].add(ordinal)
            self.version = current
        return True

    # -- queries ---------------------------------------------------------------------------
    def select(
        self,
        where: dict[str, list[str]],
        purpose: str,
        mode: Mode,
        supplier_id: str,
        sector: str | None,
        *,
        others: Iterable[tuple[str, str | None]] = (),
    ) -> Selection:
        """Members matching every attribute (any of its values), eligible for this use, minus
        whoever excluded the supplier, its sector, or any of ``others`` (the other clients of its
        organisation, with their sectors: an answer may be replayed to each of them).

        Operands that cannot change the result are skipped rather than combined: an
        eligibility bitmap holding every member (the common case, as most customers keep a
        template) and empty exclusions. The result is always a fresh bitmap, never one the
        index will update in place.
        """
        result: BitMap | None = None
        stored = False  # is ``result`` one of the index's own bitmaps?
        categories: set[str] = set()
        for attribute, values in where.items():
            by_category: dict[str, list[str]] = defaultdict(list)
            for value in values:
                by_category[value_category(attribute, value)].append(value)
            parts = []
            for category, group in by_category.items():
                categories |= categories_of(category)
                maps = [self.bitmap(value_text(attribute, v)) for v in group]
                union = maps[0] if len(maps) == 1 else BitMap.union(*maps)
                eligible = self.bitmap(eligibility_text(category, purpose, mode))
                # an eligibility bitmap as large as the live set *is* the live set (a subset of
                # equal size), so intersecting with it cannot remove anyone
                parts.append(union if len(eligible) == len(self._all) else union & eligible)
            matched = parts[0] if len(parts) == 1 else BitMap.union(*parts)
            result = matched if result is None else result & matched
            stored = stored or any(matched is m for m in maps)
        if result is None:
            return Selection(BitMap(), frozenset())
        excluded = self.excluded(supplier_id, sector, others)
        if excluded:
            result = result - excluded
        elif stored and len(where) == 1:
            result = result.copy()
        return Selection(result, frozenset(categories))

    def excluded(
        self,
        supplier_id: str,
        sector: str | None,
        others: Iterable[tuple[str, str | None]] = (),
        *,
        agreements: bool = True,
    ) -> BitMap:
        """Everyone who said "never" to the supplier, to its sector, or to one of ``others``,
        and (with ``agreements``) everyone whose MyTerms agreement with one of them is in
        force: its rules are ``never`` rules naming that supplier."""
        maps = []
        for who, where in ((supplier_id, sector), *others):
            maps.append(self.bitmap(exclusion_text("supplier", who)))
            if agreements:
                maps.append(self.bitmap(exclusion_text("agreement", who)))
            if where:
                maps.append(self.bitmap(exclusion_text("sector", where)))
        found = [m for m in maps if m]
        if not found:
            return _EMPTY
        return found[0] if len(found) == 1 else BitMap.union(*found)

    def cell_members(
        self, selection: BitMap, attribute: str, values: tuple[str, ...], purpose: str, mode: Mode
    ) -> BitMap:
        """The members of ``selection`` that fall in some cell of a breakdown (each in one)."""
        cells = [
            self.bitmap(value_text(attribute, value))
            & self.bitmap(eligibility_text(value_category(attribute, value), purpose, mode))
            for value in values
        ]
        return selection & BitMap.union(*cells) if cells else BitMap()

    def cells(
        self, selection: BitMap, attribute: str, values: tuple[str, ...], purpose: str, mode: Mode
    ) -> list[int]:
        """True counts per value of a disjoint attribute, within ``selection``."""
        counts = []
        for value in values:
            category = value_category(attribute, value)
            cell = self.bitmap(value_text(attribute, value)) & self.bitmap(
                eligibility_text(category, purpose, mode)
            )
            counts.append(selection.intersection_cardinality(cell))
        return counts


def _current_version(session: Session) -> int:
    state = session.get(BrokerState, STATE_ID)
    return state.version if state else 0
