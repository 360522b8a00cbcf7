"""The policy vocabulary: modes, recipients, rules, policies, requests and verdicts.

Plain frozen dataclasses with no behaviour beyond ordering modes and summarising verdicts;
the evaluator lives in :mod:`policies.engine`. Construction never validates (so that
:func:`policies.engine.validate_policy` can report every problem in a customer's policy at
once); evaluation fails closed on anything it cannot understand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

#: Matches every non-special category (in ``Rule.category``) or every purpose (``Rule.purpose``).
WILDCARD = "*"


class Mode(StrEnum):
    """How identifying an access is, from least to most.

    Members compare by that order (``Mode.AGGREGATE < Mode.DIRECT``), not alphabetically as
    plain strings would, so ``min`` of a set of modes is the least identifying one.
    """

    NEVER = "never"
    AGGREGATE = "aggregate"
    PSEUDONYMOUS = "pseudonymous"
    DIRECT = "direct"

    @property
    def rank(self) -> int:
        """Position in the order: 0 for ``NEVER`` up to 3 for ``DIRECT``."""
        return tuple(Mode).index(self)

    @property
    def label(self) -> str:
        """What the mode means to a customer, as the end of a rule's description."""
        return _MODE_LABELS[self]

    def __lt__(self, other: object) -> bool:
        rank = _rank_of(other)
        return NotImplemented if rank is None else self.rank < rank

    def __le__(self, other: object) -> bool:
        rank = _rank_of(other)
        return NotImplemented if rank is None else self.rank <= rank

    def __gt__(self, other: object) -> bool:
        rank = _rank_of(other)
        return NotImplemented if rank is None else self.rank > rank

    def __ge__(self, other: object) -> bool:
        rank = _rank_of(other)
        return NotImplemented if rank is None else self.rank >= rank


_MODE_LABELS: dict[Mode, str] = {
    Mode.NEVER: "never",
    Mode.AGGREGATE: "only in anonymous counts",
    Mode.PSEUDONYMOUS: "only under a pseudonym, never with your name",
    Mode.DIRECT: "with your name",
}


def _rank_of(other: object) -> int | None:
    """The rank of a mode or mode name; a string that names no mode cannot be compared."""
    if isinstance(other, Mode):
        return other.rank
    if isinstance(other, str):
        try:
            return Mode(other).rank
        except ValueError:
            raise TypeError(f"{other!r} is not a mode; cannot compare it with one") from None
    return None


class RecipientKind(StrEnum):
    """Who a rule is about: anyone, every supplier of a sector, or one supplier."""

    ANY = "any"
    SECTOR = "sector"
    SUPPLIER = "supplier"


@dataclass(frozen=True, slots=True)
class Recipient:
    """A rule's recipient; ``value`` is the sector name or the supplier id (``None`` for ANY)."""

    kind: RecipientKind
    value: str | None = None

    @classmethod
    def anyone(cls) -> Recipient:
        return cls(RecipientKind.ANY)

    @classmethod
    def sector(cls, name: str) -> Recipient:
        return cls(RecipientKind.SECTOR, name)

    @classmethod
    def supplier(cls, supplier_id: str) -> Recipient:
        return cls(RecipientKind.SUPPLIER, supplier_id)


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of a customer's policy: category x purpose x recipient -> the most it permits.

    ``category`` is a key of :data:`policies.taxonomy.CATEGORIES` or ``"*"`` (every
    non-special category); ``purpose`` a key of :data:`PURPOSES` or ``"*"``. ``mode`` is the
    most identifying access the rule permits; ``Mode.NEVER`` denies and overrides every other
    rule. ``expires`` must be timezone-aware; from that instant on the rule is void.
    """

    category: str
    purpose: str
    recipient: Recipient
    mode: Mode
    expires: datetime | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """A customer's rules, and the template they started from (if any)."""

    rules: tuple[Rule, ...]
    template: str | None = None


#: Purposes a supplier may give for an access, with the words a customer sees after "for".
#: Keys follow W3C DPV purpose names in short form (``service`` is dpv:ServiceProvision,
#: ``research`` dpv:ResearchAndDevelopment). ``ai_training`` (training, testing or improving AI
#: models) exists so that an agreement (:mod:`policies.terms`) can forbid it.
PURPOSES: dict[str, str] = {
    "service": "providing the service you asked for",
    "marketing": "marketing",
    "personalisation": "personalising what you see",
    "analytics": "analytics",
    "research": "research",
    "rewards": "rewards and loyalty schemes",
    "ai_training": "training artificial intelligence models",
}

#: The W3C Data Privacy Vocabulary (https://w3id.org/dpv) purpose each key stands for, as the
#: consent screen names it beside the plain words and a receipt could cite it.
PURPOSE_DPV: dict[str, str] = {
    "service": "dpv:ServiceProvision",
    "marketing": "dpv:Marketing",
    "personalisation": "dpv:Personalisation",
    "analytics": "dpv:ServiceOptimisation",
    "research": "dpv:ResearchAndDevelopment",
    "rewards": "dpv:CustomerRelationshipManagement",
    # the nearest core DPV purpose; MyTerms' "no AI training" agreement forbids it
    "ai_training": "dpv:ResearchAndDevelopment",
}


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """What a supplier asks for: which categories, why, and how identifying an access.

    ``supplier_name`` is how the verdict's sentences name the supplier to the customer (for
    example "Acme Books (verified)"); empty, they name it by ``supplier``, its id. ``blocked``
    says the customer blocked this supplier: every category is then denied, whatever the
    rules (grants included) allow.
    """

    supplier: str
    sector: str | None
    purpose: str
    categories: frozenset[str]
    mode: Mode
    supplier_name: str = ""
    blocked: bool = False

    @property
    def who(self) -> str:
        """The supplier as the verdict's sentences name it."""
        return self.supplier_name or self.supplier


class Decision(StrEnum):
    """The outcome; ``NOT_APPLICABLE`` (no rule says anything) denies too."""

    ALLOW = "allow"
    DENY = "deny"
    NOT_APPLICABLE = "not_applicable"


@dataclass(frozen=True, slots=True)
class CategoryVerdict:
    """The decision for one requested category, the rules that decided it, and why."""

    category: str
    decision: Decision
    permitted_mode: Mode
    rules: tuple[Rule, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision for a whole request: ``ALLOW`` only if every category is allowed.

    ``blocked`` is true when it was denied because the customer blocked the supplier."""

    decision: Decision
    categories: tuple[CategoryVerdict, ...]
    reason: str
    blocked: bool = False

    @property
    def allowed(self) -> bool:
        """True only for ``Decision.ALLOW``: both other decisions deny."""
        return self.decision is Decision.ALLOW

    def allowed_categories(self) -> frozenset[str]:
        """The requested categories that may be released (even when the whole request is not)."""
        return frozenset(v.category for v in self.categories if v.decision is Decision.ALLOW)

    def deciding_rules(self) -> tuple[Rule, ...]:
        """Every rule that decided some category, once each, in category order."""
        seen: list[Rule] = []
        for verdict in self.categories:
            for rule in verdict.rules:
                if rule not in seen:
                    seen.append(rule)
        return tuple(seen)
