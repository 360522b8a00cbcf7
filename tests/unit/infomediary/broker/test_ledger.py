"""The bit-sliced ledger against the obvious model: a dict of counts per ordinal."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from infomediary.broker.ledger import Ledger

QUANTUM = 100_000  # epsilon 0.1
CAP = 1_000_000  # epsilon 1.0: ten units

member_sets = st.lists(
    st.frozensets(st.integers(min_value=0, max_value=300), max_size=60), min_size=1, max_size=25
)


def model_counts(charges: list[tuple[frozenset[int], int]]) -> Counter[int]:
    counts: Counter[int] = Counter()
    for members, units in charges:
        for ordinal in members:
            counts[ordinal] += units
    return counts


@settings(max_examples=150, deadline=None)
@given(sets=member_sets, weights=st.lists(st.integers(1, 5), min_size=25, max_size=25))
def test_adding_matches_the_model(sets: list[frozenset[int]], weights: list[int]) -> None:
    ledger = Ledger(QUANTUM, CAP)
    charges = list(zip(sets, weights, strict=False))
    for members, units in charges:
        ledger.add(BitMap(members), units)
    expected = model_counts(charges)
    for ordinal in range(301):
        assert ledger.spent_units(ordinal) == expected[ordinal]
        assert ledger.spent_micro(ordinal) == expected[ordinal] * QUANTUM


@settings(max_examples=150, deadline=None)
@given(sets=member_sets, data=st.data())
def test_subtracting_a_suffix_of_charges_matches_the_model(
    sets: list[frozenset[int]], data: st.DataObject
) -> None:
    ledger = Ledger(QUANTUM, CAP)
    for members in sets:
        ledger.add(BitMap(members))
    kept = data.draw(st.integers(0, len(sets)))
    for members in sets[:kept]:  # the oldest leave the window first
        ledger.subtract(BitMap(members))
    expected = model_counts([(m, 1) for m in sets[kept:]])
    for ordinal in range(301):
        assert ledger.spent_units(ordinal) == expected[ordinal]


@settings(max_examples=150, deadline=None)
@given(sets=member_sets, threshold=st.integers(0, 40), among=st.frozensets(st.integers(0, 300)))
def test_at_least_is_the_comparison(
    sets: list[frozenset[int]], threshold: int, among: frozenset[int]
) -> None:
    ledger = Ledger(QUANTUM, CAP)
    for members in sets:
        ledger.add(BitMap(members))
    counts = model_counts([(m, 1) for m in sets])
    found = ledger.at_least(threshold, BitMap(among))
    assert set(found) == {o for o in among if counts[o] >= threshold}


@settings(max_examples=100, deadline=None)
@given(sets=member_sets, units=st.integers(1, 4))
def test_admit_never_lets_anyone_pass_the_cap(sets: list[frozenset[int]], units: int) -> None:
    """Filter, then charge whoever was admitted: nobody's count ever exceeds the cap."""
    ledger = Ledger(QUANTUM, CAP)
    for members in sets:
        admitted = ledger.admit(BitMap(members), units)
        for ordinal in members:
            before = ledger.spent_units(ordinal)
            assert (ordinal in admitted) == (before + units <= ledger.cap_units)
        ledger.add(admitted, units)
    assert all(ledger.spent_units(o) <= ledger.cap_units for o in range(301))


def test_a_customer_at_the_cap_is_left_out_and_back_when_a_charge_expires() -> None:
    ledger = Ledger(QUANTUM, CAP)
    everyone = BitMap(range(10))
    for _ in range(10):
        ledger.add(ledger.admit(everyone, 1))
    assert ledger.spent_micro(3) == CAP
    assert not ledger.admit(everyone, 1)
    ledger.subtract(everyone)
    assert ledger.admit(everyone, 1) == everyone


def test_charges_round_up_to_whole_units() -> None:
    ledger = Ledger(QUANTUM, CAP)
    assert ledger.units(QUANTUM) == 1
    assert ledger.units(QUANTUM + 1) == 2
    assert ledger.units(1) == 1


def test_one_million_customers_cost_under_16_bytes_each() -> None:
    """Ten releases over a million customers, each a different random half of them: the
    worst shape for compression (bitset containers), still a few bits a customer."""
    import random

    rng = random.Random(7)
    ledger = Ledger(QUANTUM, 10_000_000)
    everyone = 1_000_000
    for _ in range(10):
        ledger.add(BitMap(rng.sample(range(everyone), everyone // 2)))
    assert ledger.size_in_bytes() / everyone < 16
    assert ledger.slices <= 4


def test_a_zero_quantum_is_refused() -> None:
    with pytest.raises(ValueError, match="quantum"):
        Ledger(0, CAP)
