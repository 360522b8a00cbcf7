"""Structured reasons of access-log entries: what the entry commits to, and its rendering.

An entry of format 2 commits to a :class:`Reason` (a code and parameters such as rule and
supplier ids, numbers and category names), not to a sentence: names and translations are
rendered when shown, so renaming a supplier or reading the log in another language changes
no hash, and nothing is cut to fit a column. Entries of format 1 keep their sentence.

The catalogue maps each code to an English template; a parameter named ``supplier`` (or
ending in ``_supplier``) is a supplier id, rendered through the ``name_of`` the caller gives
(the supplier's display name, verified mark included, or the id when it is unknown).
Three parameters render richer values: ``verdict`` (a policy verdict, :func:`verdict_param`:
the deciding rules, modes, categories, purpose and supplier, rendered into the policy
engine's sentence), ``rules`` (a list of rules, :func:`rule_param`, quoted in words) and
``cause`` (a nested reason, :meth:`Reason.param`). ``scopes`` are joined by spaces (RFC 6749
§3.3), any other list by ", ".
Parameters are never personal data: ids, numbers, category and purpose names, rules.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from string import Formatter
from typing import Any, TypeAlias

from policies.model import (
    PURPOSES,
    Decision,
    Mode,
    Recipient,
    RecipientKind,
    Rule,
    Verdict,
)
from policies.taxonomy import CATEGORIES
from policies.validation import describe_rule

#: code -> English template (``str.format`` fields are the parameters' names).
CATALOGUE: dict[str, str] = {
    "text": "{text}",
    # the customer's account
    "account.created": "account created",
    "account.login": "password accepted",
    "account.login_refused": "wrong password",
    "security.totp_started": "authenticator app set-up started",
    "security.totp_enabled": (
        "authenticator app confirmed as a second factor; {recovery_codes} new recovery codes"
    ),
    "security.totp_removed": "authenticator app removed (recovery codes too, if no passkey left)",
    "security.passkey_added": "passkey added as a second factor",
    "security.passkey_removed": "passkey removed",
    "security.removal_refused": "second factor removal refused: wrong password",
    "security.change_refused": "second factor change refused: wrong password",
    "security.recovery_codes_new": "{count} new recovery codes; the earlier ones no longer work",
    "security.second_step": "second login step passed ({method})",
    "security.second_step_refused": "second login step refused ({method}: {why})",
    "security.session_ended": "one session logged out",
    "security.sessions_ended": "{count} sessions logged out",
    "account.password_changed": "password changed; all sessions ended",
    "account.password_change_refused": "password change refused: wrong password",
    "account.signup_refused": "sign-up refused: this address already has an account",
    "account.address_confirmed": "e-mail address verified; every other session ended; logged in",
    "account.address_confirmation_refused": "address confirmation refused: wrong password",
    "account.confirmation_not_sent": (
        "confirmation link asked for; none sent (no account waiting for one at that address)"
    ),
    "account.reset_not_sent": (
        "password reset asked for; none sent (no account waiting for one at that address)"
    ),
    "account.confirmation_resent": "confirmation link sent again",
    "account.reset_sent": "password reset link sent",
    "account.password_reset": "password reset by e-mail link; all sessions ended",
    "account.email_change_requested": (
        "e-mail address change requested; confirmation sent to the new address"
    ),
    "account.email_changed": (
        "e-mail address changed (confirmed from the new address); every session ended"
    ),
    "account.email_change_refused": "e-mail change refused: wrong password",
    "account.erased": "account erased; data key destroyed",
    "account.erasure_refused": "erasure refused: wrong password",
    "account.exported": "full export downloaded",
    "account.exported_csv": "full export downloaded as CSV files",
    "account.log_downloaded": "log downloaded with proofs",
    # profile and policy
    "profile.viewed": "profile viewed",
    "profile.edited": "profile edited",
    "settings.viewed": "language and time zone settings viewed",
    "settings.changed": "language and time zone settings changed: {fields}",
    "settings.time_zone_from_browser": "time zone set from the browser",
    "policy.template": "policy set to template {template}",
    "policy.rule": "policy rule changed: {category} for {purpose}: {mode}",
    "policy.district_on": "counting by postal district turned on",
    "policy.district_off": "counting by postal district turned off",
    "policy.grid": "policy grid saved: {changed} choices changed",
    "policy.supplier_rule": (
        "policy rule for {supplier} changed: {category} for {purpose}: {mode}"
    ),
    "policy.supplier_rule_removed": "policy rule for {supplier} removed: {category} for {purpose}",
    "policy.rule_removed": "policy rule removed: {category} for {purpose}, {recipient}",
    # consents and tokens
    "consent.refused_unconfirmed": "consent for {supplier} refused: address not yet confirmed",
    "consent.granted": "consent granted for {supplier}",
    "consent.changed": "consent changed for {supplier}",
    "consent.revoked": "consent revoked for {supplier}; tokens revoked",
    "consent.revoke_refused": "consent revocation refused: no such consent of yours",
    "consent.grant_revoked": "consent {grant} revoked",
    # MyTerms agreements (IEEE 7012)
    "terms.agreed": "agreement {terms} made with {supplier}, signed as record {agreement}",
    "terms.default_set": "terms you proffer by default set to {terms}",
    "terms.supplier_accepts": "supplier {supplier} publishes the terms it accepts: {terms}",
    "terms.agreement_read": "{supplier} read its copy of agreement {agreement}",
    "terms.no_agreement": "agreement read refused: no such agreement of this supplier's",
    "tokens.revoked": "{cause}; {count} tokens revoked",
    "tokens.by_supplier": "token revoked by {supplier} (RFC 7009)",
    "tokens.code_reused": "authorization code reused by {supplier}",
    "tokens.refresh_reused": "refresh token reused by {supplier}",
    "token.revoked": "access token revoked",
    "token.expired": "access token expired",
    "token.supplier_inactive": "supplier {status}",
    "token.consent_revoked": "consent revoked",
    "token.consent_expired": "consent expired",
    "token.scope_not_granted": "scope {scopes} not granted to this token",
    "token.refused": "token refused",
    "token.scope_taken_back": "scope {scopes} no longer granted to this supplier",
    "token.not_approved": "refused: supplier not approved for the broker",
    "oauth.client_refused": "client refused at {path}: supplier {status}",
    "oauth.code_consent_revoked": "authorization code refused: consent revoked",
    "oauth.refresh_consent_revoked": "refresh token refused: consent revoked",
    # policy decisions on a supplier's access
    "resource.read": "{verdict}",
    "resource.read_refused": "{verdict}",
    "resource.purchases_released": "purchases: {lines} line(s) released; {verdict}",
    "resource.purchases_refused": "{verdict}",
    "push.refused": "{verdict}",
    "push.replayed": "purchases push answered again (same Idempotency-Key): nothing written",
    "push.queued": "purchases pushed: {lines} line(s) queued for import",
    # purchases
    "purchases.imported": (
        "purchases imported ({format}): {imported} new, {duplicates} duplicate(s), "
        "{rejected} rejected"
    ),
    "purchases.import_refused": (
        "purchase import refused ({format}): {rejected} line(s) cannot be read"
    ),
    "purchases.viewed": "purchases viewed",
    "purchases.imports_viewed": "imports viewed",
    "purchases.line_deleted": "purchase deleted: {lines} line(s) deleted",
    "purchases.retailer_deleted": "a retailer's purchases deleted: {lines} line(s) deleted",
    "purchases.import_deleted": "purchase import deleted: {lines} line(s) deleted",
    "purchases.duplicates_viewed": "possible duplicate purchases viewed",
    "purchases.duplicates_merged": "possible duplicate purchases merged: {lines} line(s) deleted",
    "purchases.duplicates_kept_apart": "possible duplicate purchases kept apart: {pairs} pair(s)",
    "interests.viewed": "interests from purchases viewed",
    "interests.removed": "interest from purchases removed",
    "interests.restored": "interest from purchases restored",
    # intentcasts
    "intents.posted": "intent {intent} posted, proffering the terms {terms}",
    "intents.listed_own": "your {count} intent(s) listed",
    "intents.bids_compared": "{count} bid(s) on intent {intent} compared",
    "intents.accepted": (
        "bid {bid} of {winner_supplier} on intent {intent} accepted under the terms {terms}; "
        "{not_chosen} other bid(s) not chosen"
    ),
    "intents.fulfilment_shared": (
        "identity shared with {winner_supplier} for delivering intent {intent} (grant {grant})"
    ),
    "intents.cancelled": "intent {intent} cancelled; {not_chosen} open bid(s) not chosen",
    "intents.listed": "intent {intent} shown under its pseudonym in a list of open intents",
    "intents.viewed": "intent {intent} read under its pseudonym",
    "intents.no_intent": "intent read refused: no such intent",
    "intents.outside_sector": "intent {intent} refused: not of this supplier's sector or not open",
    "intents.bid": (
        "bid {bid} on intent {intent}: {price_minor} {currency} (minor units), accepting the "
        "terms {terms}"
    ),
    "intents.bid_refused": "bid on intent {intent} refused: {error}",
    "intents.fulfilment_token": (
        "access token for delivering intent {intent} issued under grant {grant}"
    ),
    "intents.auto_accepted": (
        "your rule accepted bid {bid} of {winner_supplier} on intent {intent} at its deadline: "
        "the lowest within your budget from a verified supplier accepting your terms"
    ),
    "intents.auto_accept_none": (
        "your rule found none of the {count} bid(s) on intent {intent} within your budget from a "
        "verified supplier accepting your terms; the intent stays open for you to choose"
    ),
    "intents.fulfilment_not_shared": (
        "access token for delivering intent {intent} refused: no grant for fulfilment to this "
        "supplier"
    ),
    "intents.fulfilment_token_replaced": (
        "the earlier access token for delivering intent {intent} replaced"
    ),
    # the broker and offers
    "broker.count": "audience count, epsilon {epsilon:g}",
    "broker.match": "offer match, epsilon {epsilon:g}",
    "broker.count_replayed": "audience count replayed from an earlier release, epsilon 0",
    "broker.count_refused": "count refused: {error}",
    "broker.count_refused_budget": "count refused: privacy budget exhausted",
    "offers.refused": "offer refused: {error}",
    "offers.refused_budget": "offer refused: privacy budget exhausted",
    "offers.refused_funds": "offer refused: insufficient funds for the escrow",
    "offers.not_delivered": "offer not delivered: the supplier may no longer send offers",
    "offers.totals_not_refreshed": "offer totals not refreshed: privacy budget exhausted",
    "offers.view_refused": "offer view refused: no such offer of this supplier",
    "offers.viewed": "offer viewed: {accepted} accepters' offer pseudonyms, epsilon 0",
    "offers.accepted": "offer accepted: this offer's pseudonym shared with {supplier}",
    "offers.declined": "offer declined",
    "offers.blocked": "{supplier} blocked: no more offers or counts",
    "offers.unblocked": "{supplier} unblocked: offers and counts allowed again",
    # erasure requests to suppliers
    "erasure.requested": "asked {supplier} to delete your data (request {request})",
    "erasure.requested_again": (
        "asked {supplier} again to delete your data (request {request}, not delivered before)"
    ),
    "erasure.delivered": "erasure request {request} delivered to {supplier} (attempt {attempt})",
    "erasure.attempt_failed": (
        "erasure request {request} not delivered to {supplier} (attempt {attempt}: {error}); "
        "will retry"
    ),
    "erasure.failed": (
        "erasure request {request} could not be delivered to {supplier} after {attempt} attempts"
    ),
    "erasure.confirmed": "{supplier} confirmed deleting your data (request {request})",
    "erasure.confirm_refused": "erasure confirmation refused: no such request of this supplier",
    # the rewards wallet
    "wallet.viewed": "rewards wallet viewed",
    "wallet.payout_requested": "payout of {cents} cents requested (payout {payout})",
    "wallet.payout_cancelled": "payout {payout} of {cents} cents cancelled; the amount is back",
    "wallet.cancel_refused": "payout cancellation refused: no such payout of yours",
    "wallet.payout_settled": (
        "payout {payout} of {cents} cents exported to the operator with its destination, and "
        "settled"
    ),
    "contacts.no_offer": "contact details refused: no such offer of this supplier",
    "contacts.no_accepter": "contact details refused: no accepter of this offer has that pseudonym",
    "contacts.not_shared": "contact details refused: not shared for this offer",
    # suppliers and the operator
    "supplier.registered": "supplier {supplier} registered",
    "supplier.verified": "supplier {supplier} verified",
    "supplier.suspended": "supplier {supplier} suspended",
    "supplier.broker_approved": (
        "supplier {supplier} approved for the broker: scope {scopes}, sector {sector}, "
        "organisation {organisation}"
    ),
    "supplier.broker_revoked": (
        "supplier {supplier} no longer approved for the broker; {count} tokens revoked"
    ),
    "supplier.scopes_taken_back": "supplier {supplier}: scope {scopes} taken back",
    "supplier.broker_tokens_revoked": "supplier {supplier}: broker approval revoked",
    "supplier.initial_token": "initial access token {token} issued, valid {days} days",
    "supplier.webhook_set": "supplier {supplier}: erasure webhook set",
    # notifications
    "notifications.read": "notifications marked read",
    "notifications.preferences": (
        "notification choices changed: in the app {in_app}; e-mail digest {digest}"
    ),
    "notifications.digest_sent": "notification digest e-mailed: {items} notification(s)",
    "keys.rewrapped": "{rewrapped} data keys re-wrapped under KEK version {kek}",
    "keys.removed": "KEK version(s) {versions} removed from the keyring",
    "demo.seeded": "seeded synthetic customers {first}..{last}",
    # auditors
    "auditor.created": "auditor account created",
    "auditor.disabled": "auditor account disabled",
    "auditor.login": "auditor logged in with password and one-time code",
    "auditor.login_refused": "auditor login refused: {why}",
    "auditor.viewed": (
        "an auditor viewed {entries} of your log entries (entries {first} to {last}, {view})"
    ),
    "auditor.read": (
        "auditor read {entries} log entries of {customers} customers (entries {first} to "
        "{last}, {view})"
    ),
    "auditor.viewed_statistics": "auditor viewed the statistics of {supplier}",
    "auditor.verified": "auditor verified the access log: {result}",
}

#: A parameter's value: JSON, so the entry can commit to it.
Param: TypeAlias = "str | int | float | bool | Sequence[Param] | Mapping[str, Param] | None"
NameOf = Callable[[str], str]


def fields_of(template: str) -> frozenset[str]:
    """The parameter names a template uses."""
    return frozenset(
        name.split(".")[0].split("[")[0]
        for _, name, _, _ in Formatter().parse(template)
        if name is not None and name != ""
    )


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an entry was written: a catalogue code and its parameters.

    An unknown code, or a parameter its template needs and the reason lacks, is refused
    here, where the reason is made, rather than when someone reads the log."""

    code: str
    params: Mapping[str, Param] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise ValueError(f"unknown reason code {self.code!r}")
        missing = fields_of(CATALOGUE[self.code]) - set(self.params)
        if missing:
            raise ValueError(f"reason {self.code!r} needs {', '.join(sorted(missing))}")

    def to_json(self) -> str:
        """The canonical JSON an entry commits to: sorted keys, no spaces, ASCII only."""
        return json.dumps(self.param(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def param(self) -> dict[str, Param]:
        """This reason as the value of another's ``cause`` parameter (and its JSON body)."""
        body: dict[str, Param] = {"code": self.code}
        if self.params:
            body["params"] = dict(self.params)
        return body

    @classmethod
    def from_json(cls, text: str) -> Reason:
        body = json.loads(text)
        return cls(str(body["code"]), dict(body.get("params") or {}))


def reason_of(value: str | Reason) -> Reason:
    """A reason given as a plain sentence becomes the ``text`` reason."""
    return value if isinstance(value, Reason) else Reason("text", {"text": value})


def _supplier_param(name: str) -> bool:
    return name == "supplier" or name.endswith("_supplier")


# -- policy verdicts as parameters ------------------------------------------------------------


def rule_param(rule: Rule) -> dict[str, Param]:
    """A rule as a reason parameter: category, purpose, mode, recipient (a supplier by id)."""
    body: dict[str, Param] = {
        "category": rule.category,
        "purpose": rule.purpose,
        "mode": str(rule.mode),
        "recipient": str(rule.recipient.kind),
    }
    if rule.recipient.value is not None:
        key = "supplier" if rule.recipient.kind == RecipientKind.SUPPLIER else "sector"
        body[key] = rule.recipient.value
    if rule.expires is not None:
        body["expires"] = rule.expires.isoformat()
    return body


def verdict_param(
    verdict: Verdict, *, supplier: str, purpose: str, mode: Mode = Mode.DIRECT
) -> dict[str, Param]:
    """A verdict of the request (``supplier`` asking for ``mode`` access for ``purpose``) as a
    reason parameter: per category, its decision, the mode permitted and the deciding rules."""
    body: dict[str, Param] = {
        "supplier": supplier,
        "purpose": purpose,
        "mode": str(mode),
        "decision": str(verdict.decision),
        "categories": [
            {
                "category": v.category,
                "decision": str(v.decision),
                "permitted": str(v.permitted_mode),
                "rules": [rule_param(r) for r in v.rules],
            }
            for v in verdict.categories
        ],
    }
    if verdict.blocked:  # the customer blocked the supplier: no rule decided
        body["blocked"] = True
    return body


def _rule_of(data: Mapping[str, Any]) -> Rule:
    kind = RecipientKind(data.get("recipient", RecipientKind.ANY))
    value = data.get("supplier") if kind == RecipientKind.SUPPLIER else data.get("sector")
    mode: Any = data["mode"]
    with suppress(ValueError):  # else described as the engine describes a mode it does not know
        mode = Mode(mode)
    expires = data.get("expires")
    return Rule(
        str(data["category"]),
        str(data["purpose"]),
        Recipient(kind, None if value is None else str(value)),
        mode,
        datetime.fromisoformat(expires) if isinstance(expires, str) else None,
    )


def _describe(rule: Rule, name_of: NameOf | None) -> str:
    """``describe_rule``'s words, a supplier named by ``name_of`` ("by Demo Books")."""
    recipient = rule.recipient
    if name_of is None or recipient.kind != RecipientKind.SUPPLIER or recipient.value is None:
        return describe_rule(rule)
    return describe_rule(rule, {recipient.value: name_of(recipient.value)})


def describe_rules(rules: Sequence[Mapping[str, Any]], name_of: NameOf | None = None) -> str:
    """Rules (as :func:`rule_param` gives them) quoted and listed: "'A', 'B' and 'C'"."""
    quoted = [f"'{_describe(_rule_of(r), name_of)}'" for r in rules]
    if len(quoted) <= 1:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _your_rules(rules: Sequence[Mapping[str, Any]], name_of: NameOf | None, lower: bool) -> str:
    text = f"Your rule{'s' if len(rules) > 1 else ''} {describe_rules(rules, name_of)}"
    return text[0].lower() + text[1:] if lower else text


def _action(mode: Mode, label: str) -> str:
    if mode == Mode.AGGREGATE:
        return f"count your {label} in anonymous totals"
    if mode == Mode.PSEUDONYMOUS:
        return f"use your {label} for offers without learning who you are"
    return f"see your {label}, knowing it is you"


def _category_text(
    item: Mapping[str, Any],
    who: str,
    purpose: str,
    mode: Mode,
    name_of: NameOf | None,
    blocked: bool = False,
) -> str:
    """One category's sentence, in the words of :func:`policies.engine.evaluate`."""
    category = str(item["category"])
    info = CATEGORIES.get(category)
    if info is None:
        return f"{category!r} is not a data category we know, so it is not shared."
    label = info.label.lower()
    if purpose not in PURPOSES:
        return f"{purpose!r} is not a purpose we know, so your {label} is not shared."
    if mode == Mode.NEVER:
        return "A request must ask for some kind of access, not 'never'."
    words = PURPOSES[purpose]
    if blocked:
        return (
            f"You blocked {who}, so {who} may not use your {label} for {words}, whatever "
            "your rules and consents allow."
        )
    decision, permitted = Decision(item["decision"]), Mode(item["permitted"])
    rules: list[Mapping[str, Any]] = list(item.get("rules") or [])
    one = len(rules) == 1
    if decision is Decision.NOT_APPLICABLE:
        return f"None of your rules lets {who} use your {label} for {words}, so it is not shared."
    if decision is Decision.DENY and permitted == Mode.NEVER:
        return (
            f"{_your_rules(rules, name_of, False)} {'says' if one else 'say'} never, so {who} "
            f"may not use your {label} for {words}, whatever your other rules allow."
        )
    action = _action(mode, label)
    if decision is Decision.ALLOW:
        allows = "allows" if one else "allow"
        return f"{_your_rules(rules, name_of, False)} {allows} {who} to {action}."
    if any(_rule_of(r).mode != permitted for r in rules):  # a special category, capped
        return (
            f"{info.label} is a special category and none of your rules names {who} for it, "
            f"so {who} may not {action}: {_your_rules(rules, name_of, True)} "
            f"{'allows' if one else 'allow'} use {permitted.label}."
        )
    return (
        f"{_your_rules(rules, name_of, False)} {'does' if one else 'do'} not allow {who} to "
        f"{action}: {'it allows' if one else 'they allow'} use {permitted.label}."
    )


def describe_verdict(data: Mapping[str, Any], name_of: NameOf | None = None) -> str:
    """A verdict (as :func:`verdict_param` gives it) in the policy engine's words, its
    supplier named by ``name_of``; without one, exactly the engine's ``Verdict.reason``."""
    supplier = str(data["supplier"])
    who = name_of(supplier) if name_of is not None else supplier
    categories: list[Mapping[str, Any]] = list(data.get("categories") or [])
    if not categories:
        return "The request names no data, so nothing is shared."
    purpose, mode = str(data["purpose"]), Mode(data["mode"])
    allowed = Decision(data["decision"]) is Decision.ALLOW
    blocked = data.get("blocked") is True
    sentences = (
        _category_text(item, who, purpose, mode, name_of, blocked)
        for item in categories
        if allowed or Decision(item["decision"]) is not Decision.ALLOW
    )
    return " ".join(dict.fromkeys(sentences))


# -- rendering ----------------------------------------------------------------------------------


def supplier_ids(reason_data: str | None) -> set[str]:
    """Every supplier id a stored reason names (in its parameters, verdicts, rules and causes),
    so a page can look their names up in one query."""
    if not reason_data:
        return set()
    try:
        body = json.loads(reason_data)
    except ValueError:
        return set()
    return set(_walk_suppliers(body.get("params") if isinstance(body, dict) else None))


def _walk_suppliers(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if _supplier_param(str(key)) and isinstance(inner, str):
                yield inner
            else:
                yield from _walk_suppliers(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _walk_suppliers(inner)


def _value(key: str, value: Any, name_of: NameOf | None) -> Any:
    if _supplier_param(key) and isinstance(value, str):
        return name_of(value) if name_of is not None else value
    if key == "verdict" and isinstance(value, dict):
        return describe_verdict(value, name_of)
    if key == "rules" and isinstance(value, list):
        return describe_rules(value, name_of)
    if isinstance(value, dict) and "code" in value:
        return _render(Reason(str(value["code"]), dict(value.get("params") or {})), name_of)
    if key == "scopes" and isinstance(value, list):
        return " ".join(str(v) for v in value)  # OAuth scopes, as RFC 6749 §3.3 writes them
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return value


def _render(reason: Reason, name_of: NameOf | None) -> str:
    values = {key: _value(key, value, name_of) for key, value in reason.params.items()}
    return CATALOGUE[reason.code].format(**values)


def render(
    reason_data: str | None,
    text: str = "",
    name_of: Callable[[str], str] | None = None,
) -> str:
    """The sentence shown for an entry: its structured reason rendered (``name_of`` turns a
    supplier id into its name), or, for a format-1 entry, its stored ``text``."""
    if not reason_data:
        return text
    try:
        return _render(Reason.from_json(reason_data), name_of)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return text or _code_of(reason_data)


def _code_of(reason_data: str) -> str:
    try:
        body = json.loads(reason_data)
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""
