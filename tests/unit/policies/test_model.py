"""The policy vocabulary: how modes order, how recipients are built, what verdicts report.

Everything is built inside the tests (not at import) so that mutation testing sees it run.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable

import pytest

from policies.model import (
    CategoryVerdict,
    Decision,
    Mode,
    Recipient,
    RecipientKind,
    Rule,
    Verdict,
)

#: Least to most identifying: the order the whole engine relies on. Alphabetically the same
#: names sort aggregate, direct, never, pseudonymous, so any comparison that falls back to
#: plain strings shows up in the table below.
ORDER = (Mode.NEVER, Mode.AGGREGATE, Mode.PSEUDONYMOUS, Mode.DIRECT)

PAIRS = list(itertools.product(range(len(ORDER)), repeat=2))


@pytest.mark.parametrize(("i", "j"), PAIRS)
def test_modes_compare_by_how_identifying_they_are(i: int, j: int) -> None:
    a, b = ORDER[i], ORDER[j]
    assert (a < b) is (i < j)
    assert (a <= b) is (i <= j)
    assert (a > b) is (i > j)
    assert (a >= b) is (i >= j)
    assert (a == b) is (i == j)


@pytest.mark.parametrize(("i", "j"), PAIRS)
def test_modes_compare_with_mode_names_by_rank_not_alphabetically(i: int, j: int) -> None:
    a, name = ORDER[i], ORDER[j].value
    assert type(name) is str
    # The mode on the left ...
    assert (a < name) is (i < j)
    assert (a <= name) is (i <= j)
    assert (a > name) is (i > j)
    assert (a >= name) is (i >= j)
    # ... and on the right (Python asks the mode first, as it subclasses str).
    assert (name < a) is (j < i)
    assert (name <= a) is (j <= i)
    assert (name > a) is (j > i)
    assert (name >= a) is (j >= i)


def test_rank_counts_up_from_never() -> None:
    assert [m.rank for m in ORDER] == [0, 1, 2, 3]
    assert list(Mode) == list(ORDER)
    assert sorted(Mode, reverse=True) == list(ORDER[::-1])
    assert min(Mode.DIRECT, "aggregate", Mode.PSEUDONYMOUS) == Mode.AGGREGATE
    assert max(Mode.NEVER, Mode.AGGREGATE) is Mode.AGGREGATE


COMPARISONS = [operator.lt, operator.le, operator.gt, operator.ge]


@pytest.mark.parametrize("compare", COMPARISONS)
@pytest.mark.parametrize("mode", ORDER)
def test_a_string_that_names_no_mode_cannot_be_compared(
    mode: Mode, compare: Callable[[object, object], bool]
) -> None:
    with pytest.raises(TypeError, match="'sometimes' is not a mode; cannot compare it with one"):
        compare(mode, "sometimes")


class _AboveEverything:
    """A foreign type that knows how to compare itself with modes (from either side)."""

    def __gt__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True

    def __lt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return False


@pytest.mark.parametrize("mode", ORDER)
def test_modes_leave_other_types_to_the_other_operand(mode: Mode) -> None:
    """Mode returns NotImplemented for types it does not know, so Python asks the other side."""
    top = _AboveEverything()
    assert mode < top
    assert mode <= top
    assert not mode > top
    assert not mode >= top
    # With nobody to ask, the comparison is a TypeError, as for any unorderable pair.
    for compare in COMPARISONS:
        with pytest.raises(TypeError, match="not supported"):
            compare(mode, 3)


LABELS = {
    Mode.NEVER: "never",
    Mode.AGGREGATE: "only in anonymous counts",
    Mode.PSEUDONYMOUS: "only under a pseudonym, never with your name",
    Mode.DIRECT: "with your name",
}


@pytest.mark.parametrize("mode", ORDER)
def test_every_mode_says_what_it_means(mode: Mode) -> None:
    assert mode.label == LABELS[mode]


def test_recipient_constructors() -> None:
    assert Recipient.anyone() == Recipient(RecipientKind.ANY, None)
    assert Recipient.anyone().kind is RecipientKind.ANY
    assert Recipient.sector("travel") == Recipient(RecipientKind.SECTOR, "travel")
    assert Recipient.supplier("acme") == Recipient(RecipientKind.SUPPLIER, "acme")


def _verdict(category: str, decision: Decision, *rules: Rule) -> CategoryVerdict:
    return CategoryVerdict(category, decision, Mode.AGGREGATE, rules, f"{category}: {decision}")


def test_verdict_helpers() -> None:
    a = Rule("interests", "marketing", Recipient.anyone(), Mode.AGGREGATE)
    b = Rule("*", "marketing", Recipient.anyone(), Mode.AGGREGATE)
    verdict = Verdict(
        Decision.DENY,
        (
            _verdict("demographics", Decision.ALLOW, b),
            _verdict("identity", Decision.NOT_APPLICABLE),
            _verdict("interests", Decision.ALLOW, a, b),
            _verdict("purchases", Decision.DENY, b),
        ),
        "reason",
    )
    assert not verdict.allowed
    assert verdict.allowed_categories() == {"demographics", "interests"}
    # Once each, in the order the categories name them.
    assert verdict.deciding_rules() == (b, a)
    assert Verdict(Decision.ALLOW, (), "").allowed
    assert not Verdict(Decision.NOT_APPLICABLE, (), "").allowed
