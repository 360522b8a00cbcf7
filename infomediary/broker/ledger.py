"""The per-customer privacy ledger in memory: every customer's loss as bit-sliced counters.

A customer's loss in the window is ``units x quantum`` epsilon, where ``quantum`` is the
broker's epsilon per release and ``units`` counts the releases (weighted) that charged them.
The counts are held transposed, as bit slices: slice ``j`` is the roaring bitmap of the
ordinals whose count has bit ``j`` set. Charging a release's member set ``M`` is a ripple-carry
addition of ``M`` into the slices (``slice ^= carry; carry &= old slice``), a handful of
bitmap operations whatever the size of ``M``; an expired release is subtracted the same way,
with a borrow. Who would pass their cap is a comparison circuit over the slices, restricted to
the candidates. Memory is one bit per customer per slice: seven slices hold a cap of 100
releases, under one byte a customer (the budget is 16).

This module holds no database: :mod:`infomediary.services.privacy_ledger` folds the durable
``releases`` rows into it, in ``seq`` order.
"""

from __future__ import annotations

import threading
from datetime import datetime

from pyroaring import BitMap


class Ledger:
    """Bit-sliced loss counters per ordinal, and the releases folded in so far."""

    def __init__(self, quantum_micro: int, cap_micro: int) -> None:
        if quantum_micro <= 0:
            raise ValueError("the quantum must be positive")
        self.quantum_micro = quantum_micro
        self.cap_micro = cap_micro
        #: The cap in units: a customer may be charged ``cap_units`` units in a window.
        self.cap_units = cap_micro // quantum_micro
        self._slices: list[BitMap] = []
        #: The highest release seq added, and the highest subtracted on leaving the window.
        self.added_through = 0
        self.expired_through = 0
        #: When the services last took expired releases back (``None``: not since loading).
        self.checked_at: datetime | None = None
        self.lock = threading.RLock()

    def clear(self) -> None:
        """Forget every charge (the durable rows are folded in again from the start)."""
        self._slices = []
        self.added_through = self.expired_through = 0
        self.checked_at = None

    # -- units ---------------------------------------------------------------------------------
    def units(self, epsilon_micro: int) -> int:
        """A charge in whole units, rounded up: a customer is never charged less than lost."""
        return -(-epsilon_micro // self.quantum_micro)

    # -- adding and subtracting member sets --------------------------------------------------
    def add(self, members: BitMap, units: int = 1) -> None:
        """Charge ``units`` to every ordinal of ``members``."""
        bit = 0
        while units:
            if units & 1:
                self._add_at(members, bit)
            units >>= 1
            bit += 1

    def _add_at(self, members: BitMap, bit: int) -> None:
        carry = members
        j = bit
        while carry:
            while j >= len(self._slices):
                self._slices.append(BitMap())
            current = self._slices[j]
            self._slices[j] = current ^ carry
            carry = current & carry
            j += 1

    def subtract(self, members: BitMap, units: int = 1) -> None:
        """Take back a charge (a release leaving the window). Counts never go below zero."""
        bit = 0
        while units:
            if units & 1:
                self._subtract_at(members, bit)
            units >>= 1
            bit += 1

    def _subtract_at(self, members: BitMap, bit: int) -> None:
        borrow = members
        j = bit
        while borrow and j < len(self._slices):
            current = self._slices[j]
            self._slices[j] = current ^ borrow
            borrow = borrow - current
            j += 1
        # a borrow left over means a count would go negative: only a release subtracted twice
        # or never added can cause it, and the services never do either

    # -- reading -------------------------------------------------------------------------------
    def spent_units(self, ordinal: int) -> int:
        return sum(1 << j for j, s in enumerate(self._slices) if ordinal in s)

    def spent_micro(self, ordinal: int) -> int:
        return self.spent_units(ordinal) * self.quantum_micro

    def at_least(self, threshold: int, among: BitMap) -> BitMap:
        """The ordinals of ``among`` whose count is ``>= threshold`` (a comparison circuit)."""
        if threshold <= 0:
            return among.copy()
        if threshold >= 1 << len(self._slices):
            return BitMap()
        greater = BitMap()
        equal = among
        for j in range(len(self._slices) - 1, -1, -1):
            if not equal:
                break
            if threshold >> j & 1:
                equal = equal & self._slices[j]
            else:
                greater |= equal & self._slices[j]
                equal = equal - self._slices[j]
        return greater | equal

    def admit(self, members: BitMap, units: int) -> BitMap:
        """The filter: the members a charge of ``units`` keeps within their cap."""
        over = self.at_least(self.cap_units - units + 1, members)
        return members - over if over else members

    @property
    def slices(self) -> int:
        return len(self._slices)

    def size_in_bytes(self) -> int:
        """What the counters hold in memory (the containers' payloads)."""
        total = 0
        for bitmap in self._slices:
            stats = bitmap.get_statistics()
            total += int(stats["n_bytes_array_containers"])
            total += int(stats["n_bytes_run_containers"])
            total += int(stats["n_bytes_bitset_containers"])
        return total
