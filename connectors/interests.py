"""Interests suggested by purchases: a declarative mapping (TOML) and the evidence it finds.

The mapping (``interests.toml`` in this package, by default) is a list of ``[[rule]]``
tables, each naming one interest tag and the retailer categories and product-name keywords
that are evidence of it::

    [[rule]]
    interest = "books"
    categories = ["Books", "Kindle Store"]
    keywords = ["novel", "paperback"]

A category matches the line's category as a whole, or any one level of a path such as
``"Home & Garden > Kitchen & Dining"``; a keyword is a single word and matches a whole word of
the product name ("novel" matches "A Novel", never "Novelty Mug"). Both are compared after
Unicode normalisation (NFKC) and case folding, with runs of white space as one space.

:func:`derive` is pure: the same rules and the same lines, in any order, give the same
evidence. It counts a line at most once per interest (by its retailer and line key) and
ignores lines that were cancelled, refunded or returned. Which interests are special (health,
religion, ...) is the taxonomy's business; nothing here knows or needs it.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources

from connectors.lines import LineStatus, PurchaseLine

#: Lines that are no evidence of anything: the customer did not keep the product.
EXCLUDED_STATUSES: frozenset[LineStatus] = frozenset(
    {LineStatus.CANCELLED, LineStatus.REFUNDED, LineStatus.RETURNED}
)

#: The keys a rule may have.
RULE_KEYS: tuple[str, ...] = ("interest", "categories", "keywords")

_WORD = re.compile(r"\w+")
_INTEREST_KEY = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_PATH_SEPARATOR = ">"


def fold(text: str) -> str:
    """``text`` as compared: NFKC-normalised, case-folded, white space collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def words(text: str) -> frozenset[str]:
    """The whole words of ``text``, folded."""
    return frozenset(_WORD.findall(fold(text)))


def category_forms(category: str) -> frozenset[str]:
    """The forms of a retailer's category a rule's category is compared with: the whole
    category and, for a path ("A > B"), each of its levels."""
    whole = fold(category)
    levels = (fold(part) for part in whole.split(_PATH_SEPARATOR))
    return frozenset({whole, *(level for level in levels if level)}) - {""}


@dataclass(frozen=True, slots=True)
class Rule:
    """One interest and what is evidence of it (both folded)."""

    interest: str
    categories: frozenset[str]
    keywords: frozenset[str]


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the lines say about one interest: how many lines, and the latest one's time."""

    lines: int
    latest: datetime


@dataclass(frozen=True, slots=True)
class Rules:
    """A mapping's rules, indexed by folded category and by folded keyword."""

    rules: tuple[Rule, ...]
    _by_category: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    _by_keyword: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_category", _index(self.rules, lambda r: r.categories))
        object.__setattr__(self, "_by_keyword", _index(self.rules, lambda r: r.keywords))

    @property
    def interests(self) -> frozenset[str]:
        """Every interest some rule names."""
        return frozenset(rule.interest for rule in self.rules)

    def match(self, line: PurchaseLine) -> frozenset[str]:
        """The interests ``line`` is evidence of, whatever its status."""
        found: set[str] = set()
        if line.category:
            for form in category_forms(line.category):
                found |= self._by_category.get(form, frozenset())
        for word in words(line.product_name):
            found |= self._by_keyword.get(word, frozenset())
        return frozenset(found)


def _index(
    rules: tuple[Rule, ...], terms: Callable[[Rule], frozenset[str]]
) -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = {}
    for rule in rules:
        for term in terms(rule):
            index.setdefault(term, set()).add(rule.interest)
    return {term: frozenset(interests) for term, interests in index.items()}


def load_rules(text: str | None = None) -> Rules:
    """The rules of the mapping ``text`` (TOML), or of the packaged ``interests.toml``;
    :class:`ValueError` naming the rule at fault."""
    if text is None:
        text = resources.files("connectors").joinpath("interests.toml").read_text("utf-8")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"the interest mapping is not TOML: {exc}") from None
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise ValueError(
            f"unknown key {unknown[0]!r} in the interest mapping: it holds [[rule]] tables only"
        )
    raw_rules = document.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ValueError("the interest mapping has no [[rule]] tables")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(raw_rules, start=1):
        rule = _rule(number, raw)
        if rule.interest in seen:
            raise ValueError(
                f"rule {number} ({rule.interest}): the interest already has rule "
                f"{seen[rule.interest]}; give one rule per interest"
            )
        seen[rule.interest] = number
        rules.append(rule)
    return Rules(tuple(rules))


def _rule(number: int, raw: object) -> Rule:
    if not isinstance(raw, dict):
        raise ValueError(f"rule {number}: a table ([[rule]]), not {type(raw).__name__}")
    interest = raw.get("interest")
    name = f"rule {number} ({interest})" if isinstance(interest, str) else f"rule {number}"
    unknown = sorted(set(raw) - set(RULE_KEYS))
    if unknown:
        raise ValueError(
            f"{name}: unknown key {unknown[0]!r}: the keys known are {', '.join(RULE_KEYS)}"
        )
    if not isinstance(interest, str) or not _INTEREST_KEY.fullmatch(interest):
        raise ValueError(
            f"{name}: interest: an interest tag's key (lower case, digits and hyphens), "
            f"not {interest!r}"
        )
    categories = _strings(name, "categories", raw.get("categories", []))
    keywords = _strings(name, "keywords", raw.get("keywords", []))
    if not categories and not keywords:
        raise ValueError(f"{name}: empty: give categories, keywords or both")
    folded_categories: set[str] = set()
    for category in categories:
        folded = fold(category)
        if not folded:
            raise ValueError(f"{name}: categories: a category is blank")
        folded_categories.add(folded)
    folded_keywords: set[str] = set()
    for keyword in keywords:
        folded = fold(keyword)
        if not _WORD.fullmatch(folded):
            raise ValueError(
                f"{name}: keywords: {keyword!r} is not a single word (letters and digits only)"
            )
        folded_keywords.add(folded)
    return Rule(interest, frozenset(folded_categories), frozenset(folded_keywords))


def _strings(name: str, key: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{name}: {key}: a list of strings, not {value!r}")
    return [item for item in value if isinstance(item, str)]


def derive(rules: Rules, lines: Iterable[PurchaseLine]) -> dict[str, Evidence]:
    """For each interest some kept line is evidence of: how many lines (each counted once,
    by retailer and line key) and the latest ``ordered_at``; sorted by interest."""
    keys: dict[str, set[tuple[str, str]]] = {}
    latest: dict[str, datetime] = {}
    for line in lines:
        if line.status in EXCLUDED_STATUSES:
            continue
        for interest in rules.match(line):
            keys.setdefault(interest, set()).add((line.retailer, line.line_key))
            previous = latest.get(interest)
            if previous is None or line.ordered_at > previous:
                latest[interest] = line.ordered_at
    return {
        interest: Evidence(lines=len(keys[interest]), latest=latest[interest])
        for interest in sorted(keys)
    }
