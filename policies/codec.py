"""The dictionary form of a policy: how it is stored (as JSON) and how templates (TOML) read.

:func:`policy_to_dict` writes it, :func:`policy_from_dict` reads it back and raises
:class:`ValueError` naming the field for anything structurally wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from policies.model import Mode, Policy, Recipient, RecipientKind, Rule
from policies.validation import _is_aware, _listing

#: Version of the dictionary form written by :func:`policy_to_dict`.
FORMAT_VERSION = 1

_E = TypeVar("_E", Mode, RecipientKind)


# -- dictionary form ----------------------------------------------------------------------


def policy_to_dict(policy: Policy) -> dict[str, Any]:
    """A JSON-safe form of ``policy`` (datetimes as ISO 8601); inverse of policy_from_dict."""
    return {
        "version": FORMAT_VERSION,
        "template": policy.template,
        "rules": [
            {
                "category": rule.category,
                "purpose": rule.purpose,
                "recipient": {
                    "kind": str(rule.recipient.kind),
                    "value": rule.recipient.value,
                },
                "mode": str(rule.mode),
                "expires": None if rule.expires is None else rule.expires.isoformat(),
            }
            for rule in policy.rules
        ],
    }


def policy_from_dict(data: object) -> Policy:
    """Parse the form written by :func:`policy_to_dict` (or a template's TOML).

    Raises :class:`ValueError` naming the offending field. Only the structure is checked
    here; :func:`validate_policy` reports unknown categories and purposes, so a stored policy
    still loads after the taxonomy changes.
    """
    fields = _mapping(data, "policy", required={"rules"}, optional={"version", "template"})
    version = fields.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(f"policy.version: {version!r} is not supported (expected 1)")
    template = fields.get("template")
    if template is not None and not isinstance(template, str):
        raise ValueError(f"policy.template: expected a string or null, not {_kind(template)}")
    rules = fields["rules"]
    if not isinstance(rules, list | tuple):
        raise ValueError(f"policy.rules: expected a list of rules, not {_kind(rules)}")
    return Policy(
        tuple(_rule_from_dict(item, f"rules[{index}]") for index, item in enumerate(rules)),
        template,
    )


def _rule_from_dict(data: object, at: str) -> Rule:
    fields = _mapping(
        data, at, required={"category", "purpose", "recipient", "mode"}, optional={"expires"}
    )
    recipient = _mapping(
        fields["recipient"], f"{at}.recipient", required={"kind"}, optional={"value"}
    )
    value = recipient.get("value")
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{at}.recipient.value: expected a string or null, not {_kind(value)}")
    return Rule(
        category=_string(fields["category"], f"{at}.category"),
        purpose=_string(fields["purpose"], f"{at}.purpose"),
        recipient=Recipient(_enum(RecipientKind, recipient["kind"], f"{at}.recipient.kind"), value),
        mode=_enum(Mode, fields["mode"], f"{at}.mode"),
        expires=_datetime(fields.get("expires"), f"{at}.expires"),
    )


def _mapping(
    data: object, at: str, *, required: set[str], optional: set[str]
) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{at}: expected a mapping, not {_kind(data)}")
    keys = set(data)
    if missing := required - keys:
        raise ValueError(f"{at}: missing {', '.join(sorted(missing))}")
    if unknown := keys - required - optional:
        raise ValueError(f"{at}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    return data


def _string(value: object, at: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{at}: expected a string, not {_kind(value)}")
    return value


def _enum(kind: type[_E], value: object, at: str) -> _E:
    text = _string(value, at)
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{at}: {text!r} is not one of {_listing(kind)}") from None


def _datetime(value: object, at: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value  # TOML has native datetimes
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{at}: {value!r} is not an ISO 8601 date and time") from None
    else:
        raise ValueError(f"{at}: expected an ISO 8601 string or null, not {_kind(value)}")
    if not _is_aware(parsed):
        raise ValueError(f"{at}: {value!s} has no time zone offset (add one, e.g. +00:00)")
    return parsed


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
