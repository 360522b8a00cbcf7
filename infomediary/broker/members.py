"""A customer's match entry: blinded tokens for coarsened values and for eligibility.

Tokens are ``HMAC-SHA256(index key, text)[:16]`` of texts such as ``v|region|NSW`` (a value)
or ``e|interests|marketing|aggregate`` (the policy releases interests for marketing in
aggregate form). Only values of categories the policy releases in *some* aggregate or
pseudonymous form are stored; eligibility is then checked per query (category x purpose x
mode). A category that refines another (``district``, the postal district, refines
``demographics``) is eligible for a purpose and mode only where the policy releases both, so
whoever is counted by district is also counted by state: the broker asks the policy engine for
the two together. The postal district is an explicit category (no template and no ``"*"``
rule releases it), so the entry of a customer who has not said yes to it holds neither its
eligibility token nor the ``v|area|..`` value token. A ``never`` rule naming a sector or a
supplier becomes an exclusion token (``x|sector|finance``, ``x|supplier|<id>``), and so does a
MyTerms agreement in force with a supplier (``x|agreement|<id>``: its rules are ``never`` rules
for that supplier; kept apart so the intents' listing, which an agreement does not close, can
leave it out). The entry
is recomputed in the same transaction as every profile or policy change and the index version
is bumped, so every worker refreshes before its next answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infomediary.broker.attributes import (
    ATTRIBUTES,
    BROKER_CURRENCY,
    CATEGORY_JOIN,
    area_of,
    categories_of,
    household_bucket,
    spend_band,
    spend_value,
    value_category,
)
from infomediary.models import BrokerState, MatchEntry
from policies.codec import policy_to_dict
from policies.engine import evaluate
from policies.model import PURPOSES, AccessRequest, Mode, Policy, RecipientKind
from policies.taxonomy import CATEGORIES, age_band, region_for_postcode

TOKEN_BYTES = 16
BROKER_MODES = (Mode.AGGREGATE, Mode.PSEUDONYMOUS)
BROKER_CATEGORIES = (
    "demographics",
    "district",
    "interests",
    "purchases",
    "health",
    "religion",
    "politics",
    "sexuality",
    "ethnicity",
)
#: Eligibility keys of purchase attributes (``bought``, ``spend``): purchases and the category
#: of the interest tag, both released.
COMPOUND_KEYS = tuple(
    f"purchases{CATEGORY_JOIN}{category}"
    for category in BROKER_CATEGORIES
    if category == "interests" or CATEGORIES[category].special
)
STATE_ID = 1
#: The requester the broker evaluates eligibility for: any supplier, no sector.
BROKER_REQUESTER = "broker"


def token(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()[:TOKEN_BYTES]


def value_text(attribute: str, value: str) -> str:
    return f"v|{attribute}|{value}"


def eligibility_text(category: str, purpose: str, mode: Mode) -> str:
    return f"e|{category}|{purpose}|{mode.value}"


def exclusion_text(kind: str, value: str) -> str:
    return f"x|{kind}|{value}"


def coarsen(profile: dict[str, Any], current_year: int) -> dict[str, list[str]]:
    """Profile values -> queryable attribute values (never the raw ones). ``profile["bought"]``
    maps each interest the purchases of the last 12 months suggest to the spend on it per
    currency (minor units)."""
    values: dict[str, list[str]] = {}
    if profile.get("birth_year"):
        band = age_band(int(profile["birth_year"]), current_year)
        if band:
            values["age_band"] = [band]
    if profile.get("postcode"):
        postcode = str(profile["postcode"])
        region, area = region_for_postcode(postcode), area_of(postcode)
        if region:
            values["region"] = [region]
        if area:
            values["area"] = [area]
    if profile.get("household_size"):
        values["household"] = [household_bucket(int(profile["household_size"]))]
    if profile.get("interests"):
        values["interests"] = sorted(
            t for t in profile["interests"] if t in ATTRIBUTES["interests"].values
        )
    bought: dict[str, dict[str, int]] = profile.get("bought") or {}
    if bought:
        values["bought"] = sorted(t for t in bought if t in ATTRIBUTES["bought"].values)
        values["spend"] = sorted(
            spend_value(t, band)
            for t, spend in bought.items()
            if t in ATTRIBUTES["bought"].values
            and (band := spend_band(spend.get(BROKER_CURRENCY, 0))) is not None
        )
    return values


def _policy_key(policy: Policy) -> str:
    return json.dumps(policy_to_dict(policy), sort_keys=True)


def _eligibility(policy_json: str, now_iso: str) -> tuple[tuple[str, str, Mode], ...]:
    return _eligibility_cached(policy_json, now_iso[:13])  # cached per policy and hour


@lru_cache(maxsize=256)
def _eligibility_cached(policy_json: str, hour: str) -> tuple[tuple[str, str, Mode], ...]:
    from policies.codec import policy_from_dict

    policy = policy_from_dict(json.loads(policy_json))
    now = datetime.fromisoformat(hour + ":00:00+00:00")
    allowed = []
    for category in (*BROKER_CATEGORIES, *COMPOUND_KEYS):
        parts = categories_of(category)
        asked = parts | {
            coarser for part in parts if (coarser := CATEGORIES[part].refines) is not None
        }
        for purpose in PURPOSES:
            for mode in BROKER_MODES:
                verdict = evaluate(
                    policy,
                    AccessRequest(
                        supplier=BROKER_REQUESTER,
                        sector=None,
                        purpose=purpose,
                        categories=asked,
                        mode=mode,
                    ),
                    now,
                )
                if verdict.allowed:
                    allowed.append((category, purpose, mode))
    return tuple(allowed)


def eligibility(policy: Policy, now: datetime) -> tuple[tuple[str, str, Mode], ...]:
    """(category, purpose, mode) the policy releases to any supplier; cached per distinct policy.

    Allow rules with an expiry are left out: nothing re-syncs an entry at the moment a rule
    lapses, so counting such a customer could outlive their consent. (``never`` rules are kept
    whatever their expiry: when they lapse the customer merely stays out until the next
    sync.) Policies are few (most customers keep a template), so 1,000,000 customers cost a
    handful of evaluations.
    """
    lasting = Policy(
        rules=tuple(r for r in policy.rules if r.expires is None or r.mode == Mode.NEVER),
        template=policy.template,
    )
    return _eligibility(_policy_key(lasting), now.isoformat())


def exclusions(
    policy: Policy, blocked_suppliers: Iterable[str] = (), agreed_suppliers: Iterable[str] = ()
) -> list[str]:
    texts = {exclusion_text("supplier", s) for s in blocked_suppliers}
    texts |= {exclusion_text("agreement", s) for s in agreed_suppliers}
    for rule in policy.rules:
        if (
            rule.mode == Mode.NEVER
            and rule.recipient.kind != RecipientKind.ANY
            and rule.recipient.value
        ):
            texts.add(exclusion_text(rule.recipient.kind.value, rule.recipient.value))
    return sorted(texts)


def member_texts(
    profile: dict[str, Any],
    policy: Policy,
    now: datetime,
    blocked_suppliers: Iterable[str] = (),
    agreed_suppliers: Iterable[str] = (),
) -> list[str]:
    allowed = eligibility(policy, now)
    released = {category for category, _, _ in allowed}
    texts = [eligibility_text(c, p, m) for c, p, m in allowed]
    for attribute, values in coarsen(profile, now.year).items():
        texts += [
            value_text(attribute, v) for v in values if value_category(attribute, v) in released
        ]
    return texts + exclusions(policy, blocked_suppliers, agreed_suppliers)


def member_tokens(key: bytes, texts: Iterable[str]) -> bytes:
    return b"".join(token(key, text) for text in texts)


def ensure_broker_state(session: Session) -> None:
    if session.get(BrokerState, STATE_ID) is None:
        session.add(BrokerState(id=STATE_ID, version=0))
        session.flush()


def bump_version(session: Session) -> int:
    """Take the next index version (row lock on PostgreSQL; SQLite holds its write lock)."""
    state = session.execute(
        select(BrokerState).where(BrokerState.id == STATE_ID).with_for_update()
    ).scalar_one()
    state.version += 1
    return state.version


def store_entry(session: Session, customer_id: str, tokens: bytes) -> None:
    """Insert or replace the customer's entry under a new index version (caller commits)."""
    version = bump_version(session)
    entry = session.execute(
        select(MatchEntry).where(MatchEntry.customer_id == customer_id)
    ).scalar_one_or_none()
    if entry is None:
        session.add(MatchEntry(customer_id=customer_id, tokens=tokens, version=version))
    else:
        entry.tokens = tokens
        entry.version = version
    session.flush()


def clear_entry(session: Session, customer_id: str) -> None:
    """On erasure: no tokens, no customer, a new version so every worker drops the ordinal."""
    version = bump_version(session)
    session.execute(
        update(MatchEntry)
        .where(MatchEntry.customer_id == customer_id)
        .values(tokens=b"", version=version, customer_id=None)
    )
