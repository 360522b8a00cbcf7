"""MyTerms (IEEE 7012-2025): the roster of standard agreements a customer proffers to suppliers.

IEEE 7012 has the customer, as first party, proffer privacy terms chosen from a roster of
standard agreements kept by a neutral body; the supplier accepts one (or answers with one
alternative from the same roster) and both keep a matching signed record. Here the roster is a
JSON file (``policies/myterms/roster.json`` ships a default of five agreements modelled on the
standard's types; an operator may replace it with the published one). Titles and summaries are
written here in plain words and are not the official text.

Each agreement lists, machine-readably, the policy rules it implies. They are restrictions
only: every rule says ``never`` (an agreement can narrow what a supplier may do, never widen
it). A rule with category ``"*"`` means *every* category, the special ones (GDPR Art. 9)
included: :meth:`Agreement.rules_for` expands it, because a ``"*"`` rule of a customer's own
policy does not reach special categories and an agreement must not leave them open.

Standard library only, like the rest of :mod:`policies`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from policies.model import PURPOSES, WILDCARD, Mode, Policy, Recipient, Rule
from policies.taxonomy import CATEGORIES
from policies.validation import validate_policy

#: Version of the roster file's format.
ROSTER_FORMAT_VERSION = 1
#: What every summary shipped here carries: it is our wording, not the standard's.
NOT_OFFICIAL_NOTE = "Summary written by Infomediary in plain words; not the official text."
#: The agreement a customer proffers until they choose another (when the roster holds it).
DEFAULT_AGREEMENT = "sd-base"
#: An agreement id: lowercase letters, digits and single hyphens, at most 64 characters.
AGREEMENT_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_ID = 64
MAX_TITLE = 120
MAX_SUMMARY = 600
MAX_KIND = 64
MAX_AGREEMENTS = 100

_ROSTER_KEYS = {"version", "agreements"}
_ROSTER_OPTIONAL = {"name", "official", "note", "source"}
_AGREEMENT_KEYS = {"id", "title", "summary", "kind", "rules"}
_AGREEMENT_OPTIONAL = {"official", "url"}
_RULE_KEYS = {"category", "purpose", "mode"}


@dataclass(frozen=True)
class Agreement:
    """One agreement of the roster.

    ``rules`` are the restrictions it implies, with recipient "any supplier" as written in the
    roster; :meth:`rules_for` binds them to the supplier that accepted the agreement.
    ``official`` says whether ``summary`` is the standard's own text (never, for the shipped
    roster); ``url`` points at the official text when the roster names one.
    """

    id: str
    title: str
    summary: str
    kind: str
    rules: tuple[Rule, ...]
    official: bool = False
    url: str | None = None

    @property
    def note(self) -> str:
        """What the customer and supplier are told about the summary's wording."""
        return "" if self.official else NOT_OFFICIAL_NOTE

    def rules_for(self, supplier_id: str) -> tuple[Rule, ...]:
        """The agreement as policy rules for one supplier: every rule ``never``, for that
        supplier only; a ``"*"`` category also covers each special category by name."""
        specials = tuple(key for key, info in CATEGORIES.items() if info.special)
        bound: list[Rule] = []
        for rule in self.rules:
            categories = (
                (rule.category, *specials) if rule.category == WILDCARD else (rule.category,)
            )
            bound.extend(
                Rule(
                    category=category,
                    purpose=rule.purpose,
                    recipient=Recipient.supplier(supplier_id),
                    mode=Mode.NEVER,
                )
                for category in categories
            )
        return tuple(dict.fromkeys(bound))

    def to_dict(self) -> dict[str, object]:
        """The JSON form the API lists (rules as ``{"category", "purpose", "mode"}``)."""
        return {
            "id": self.id,
            "title": self.title,
            "summary": self.summary,
            "kind": self.kind,
            "official": self.official,
            "note": self.note,
            "url": self.url,
            "rules": [
                {"category": r.category, "purpose": r.purpose, "mode": str(r.mode)}
                for r in self.rules
            ],
        }


class Roster:
    """The agreements, in the roster file's order, by id."""

    def __init__(self, agreements: tuple[Agreement, ...], name: str = "", source: str = ""):
        self._by_id = {a.id: a for a in agreements}
        if len(self._by_id) != len(agreements):
            raise ValueError("terms roster: agreement ids must be unique")
        self._order = agreements
        self.name = name
        self.source = source

    def get(self, agreement_id: str) -> Agreement | None:
        return self._by_id.get(agreement_id) if isinstance(agreement_id, str) else None

    def ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self._order)

    def agreements(self) -> tuple[Agreement, ...]:
        return self._order

    def default_id(self) -> str:
        """:data:`DEFAULT_AGREEMENT` when the roster holds it, else its first agreement."""
        return DEFAULT_AGREEMENT if DEFAULT_AGREEMENT in self._by_id else self._order[0].id

    def __contains__(self, agreement_id: object) -> bool:
        return isinstance(agreement_id, str) and agreement_id in self._by_id

    def __iter__(self) -> Iterator[Agreement]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)


def load_roster(path: str | os.PathLike[str] | None = None) -> Roster:
    """The roster in ``path`` (``None``: the shipped file), validated.

    Raises :class:`ValueError` with a one-line message naming the file and the first problem:
    unreadable or not JSON, a missing or unknown field, a duplicate or malformed id, a text over
    its limit, an unknown category or purpose, or a rule that is not ``never``.
    """
    if path is None:
        label = "policies/myterms/roster.json"
        reader = files("policies").joinpath("myterms", "roster.json")
        try:
            text = reader.read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"terms roster {label}: cannot be read ({error.strerror})") from None
    else:
        label = os.fspath(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            why = error.strerror if isinstance(error, OSError) else "not UTF-8"
            raise ValueError(f"terms roster {label}: cannot be read ({why})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(f"terms roster {label}: not JSON ({error})") from None
    try:
        return parse_roster(data, source=label)
    except ValueError as error:
        raise ValueError(f"terms roster {label}: {error}") from None


def parse_roster(data: object, source: str = "") -> Roster:
    """A roster from its JSON form; :class:`ValueError` names the first problem."""
    fields = _mapping(data, "roster", _ROSTER_KEYS, _ROSTER_OPTIONAL)
    if fields["version"] != ROSTER_FORMAT_VERSION:
        raise ValueError(f"version {fields['version']!r} is not supported (expected 1)")
    name = fields.get("name", "")
    if not isinstance(name, str):
        raise ValueError("name: expected a string")
    items = fields["agreements"]
    if not isinstance(items, list) or not items:
        raise ValueError("agreements: expected a non-empty list")
    if len(items) > MAX_AGREEMENTS:
        raise ValueError(f"agreements: at most {MAX_AGREEMENTS}")
    official = fields.get("official", False)
    if not isinstance(official, bool):
        raise ValueError("official: expected true or false")
    agreements = tuple(
        _agreement(item, f"agreements[{index}]", official) for index, item in enumerate(items)
    )
    seen: set[str] = set()
    for agreement in agreements:
        if agreement.id in seen:
            raise ValueError(f"agreement id {agreement.id!r} appears twice")
        seen.add(agreement.id)
    return Roster(agreements, name=name.strip(), source=source)


def _agreement(data: object, at: str, roster_official: bool) -> Agreement:
    fields = _mapping(data, at, _AGREEMENT_KEYS, _AGREEMENT_OPTIONAL)
    agreement_id = _text(fields["id"], f"{at}.id", MAX_ID)
    if not AGREEMENT_ID.fullmatch(agreement_id):
        raise ValueError(f"{at}.id: {agreement_id!r} is not lowercase letters, digits and hyphens")
    at = f"agreement {agreement_id!r}"
    title = _text(fields["title"], f"{at}: title", MAX_TITLE)
    summary = " ".join(_text(fields["summary"], f"{at}: summary", MAX_SUMMARY).split())
    kind = _text(fields["kind"], f"{at}: kind", MAX_KIND)
    official = fields.get("official", roster_official)
    if not isinstance(official, bool):
        raise ValueError(f"{at}: official: expected true or false")
    url = fields.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith("https://")):
        raise ValueError(f"{at}: url: expected an https:// address")
    raw_rules = fields["rules"]
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ValueError(f"{at}: rules: expected a non-empty list")
    rules = tuple(_rule(item, f"{at}: rules[{index}]") for index, item in enumerate(raw_rules))
    if problems := validate_policy(Policy(rules)):
        raise ValueError(f"{at}: {problems[0]}")
    return Agreement(agreement_id, title, summary, kind, tuple(dict.fromkeys(rules)), official, url)


def _rule(data: object, at: str) -> Rule:
    fields = _mapping(data, at, _RULE_KEYS, set())
    category = _text(fields["category"], f"{at}.category", MAX_KIND)
    purpose = _text(fields["purpose"], f"{at}.purpose", MAX_KIND)
    if fields["mode"] != Mode.NEVER.value:
        raise ValueError(f"{at}.mode: an agreement only restricts, so every rule says 'never'")
    if category != WILDCARD and category not in CATEGORIES:
        raise ValueError(f"{at}.category: {category!r} is not a data category")
    if purpose != WILDCARD and purpose not in PURPOSES:
        raise ValueError(f"{at}.purpose: {purpose!r} is not a purpose")
    return Rule(category, purpose, Recipient.anyone(), Mode.NEVER)


def _mapping(data: object, at: str, required: set[str], optional: set[str]) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{at}: expected an object")
    keys = {str(k) for k in data}
    if missing := required - keys:
        raise ValueError(f"{at}: missing {', '.join(sorted(missing))}")
    if unknown := keys - required - optional:
        raise ValueError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}")
    return data


def _text(value: object, at: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{at}: expected a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{at}: longer than {limit} characters")
    if any(ord(c) < 32 and c not in "\t\n" for c in value):
        raise ValueError(f"{at}: holds control characters")
    return value.strip()
