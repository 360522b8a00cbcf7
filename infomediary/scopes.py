"""OAuth scopes: each names a data category (or a broker capability) and an action.

Suppliers code against these names; they are part of the public contract
(see docs/suppliers.md). Customer-data scopes are granted by a customer through the
authorization-code flow; broker scopes only through client credentials, and only to a client
the operator approved (:data:`OPERATOR_GATED`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    category: str | None  # data category, None for broker capabilities
    action: str
    description: str  # plain words for the consent screen


CUSTOMER_SCOPES: dict[str, Scope] = {
    s.name: s
    for s in (
        Scope(
            "profile.identity:read",
            "identity",
            "read",
            "your name, email, phone and postal address",
        ),
        Scope(
            "profile.demographics:read",
            "demographics",
            "read",
            "your age band, state and household size",
        ),
        Scope(
            "profile.interests:read",
            "interests",
            "read",
            "the interests you listed (sensitive ones only if you allow them separately)",
        ),
        Scope(
            "profile.preferences:read",
            "preferences",
            "read",
            "how and how often you like to be contacted",
        ),
        Scope("purchases:read", "purchases", "read", "your purchase history"),
        Scope("purchases:write", "purchases", "write", "adding purchases to your history"),
        Scope(
            "intents:write",
            "interests",
            "write",
            "posting what you want to buy for suppliers to bid on, reading the bids and "
            "accepting one (your own agent)",
        ),
    )
}

BROKER_SCOPES: dict[str, Scope] = {
    s.name: s
    for s in (
        Scope("audience:count", None, "count", "anonymous, noisy audience counts"),
        Scope("offers:send", None, "send", "offers delivered to matching customers' inboxes"),
        Scope("intents:read", None, "read", "open intents of the client's sector, pseudonymous"),
        Scope("intents:bid", None, "bid", "bids on open intents of the client's sector"),
    )
}

#: The broker scopes an approval grants when the operator names none: counts and offers.
#: The intents' scopes are granted by naming them (``--scope intents:read --scope
#: intents:bid``), so approving a supplier for counts never lets it read customers' intents.
DEFAULT_BROKER_SCOPES: tuple[str, ...] = ("audience:count", "offers:send")

ALL_SCOPES: dict[str, Scope] = {**CUSTOMER_SCOPES, **BROKER_SCOPES}

#: Scopes only the operator grants (``infomediary suppliers approve-broker``): a client never
#: obtains one by registering (RFC 7591) or by asking, a token carries one only if the
#: client's row holds it, and every request re-checks that it still does.
OPERATOR_GATED: frozenset[str] = frozenset(BROKER_SCOPES)


def parse_scopes(text: str | None) -> list[str]:
    return sorted({part for part in (text or "").split() if part})


def gated_scopes(names: list[str]) -> list[str]:
    """The operator-gated scopes among ``names``, sorted."""
    return sorted({name for name in names if name in OPERATOR_GATED})


def unknown_scopes(names: list[str]) -> list[str]:
    return [name for name in names if name not in ALL_SCOPES]


def categories_for(names: list[str]) -> frozenset[str]:
    return frozenset(
        scope.category for name in names if (scope := CUSTOMER_SCOPES.get(name)) and scope.category
    )
