"""Structured reasons of access-log entries: what the entry commits to, and its rendering.

An entry of format 2 commits to a :class:`Reason` (a code and parameters such as rule and
supplier ids, numbers and category names), not to a sentence: names and translations are
rendered when shown, so renaming a supplier or reading the log in another language changes
no hash, and nothing is cut to fit a column. Entries of format 1 keep their sentence.

The catalogue maps each code to an English template; a parameter named ``supplier`` (or
ending in ``_supplier``) is a supplier id, rendered through the ``name_of`` the caller gives
(the supplier's display name, verified mark included, or the id when it is unknown).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: code -> English template (``str.format`` fields are the parameters' names).
CATALOGUE: dict[str, str] = {
    "text": "{text}",
    # auditors
    "auditor_created": "auditor account created",
    "auditor_disabled": "auditor account disabled",
    "auditor_login": "auditor logged in with password and one-time code",
    "auditor_login_refused": "auditor login refused: {why}",
    "auditor_viewed": "an auditor viewed {entries} of your log entries (entries {first} to "
    "{last}, {view})",
    "auditor_viewed_statistics": "an auditor viewed the statistics of {supplier}",
    "auditor_verified": "an auditor verified the access log: {result}",
}

Param = str | int | float | bool | None | list[str] | list[int]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an entry was written: a catalogue code and its parameters."""

    code: str
    params: Mapping[str, Param] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise ValueError(f"unknown reason code {self.code!r}")

    def to_json(self) -> str:
        """The canonical JSON an entry commits to: sorted keys, no spaces, ASCII only."""
        body: dict[str, Any] = {"code": self.code}
        if self.params:
            body["params"] = dict(self.params)
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str) -> Reason:
        body = json.loads(text)
        return cls(str(body["code"]), dict(body.get("params") or {}))


def reason_of(value: str | Reason) -> Reason:
    """A reason given as a plain sentence becomes the ``text`` reason."""
    return value if isinstance(value, Reason) else Reason("text", {"text": value})


def _supplier_param(name: str) -> bool:
    return name == "supplier" or name.endswith("_supplier")


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
        reason = Reason.from_json(reason_data)
    except (ValueError, KeyError, TypeError):
        return text
    values: dict[str, Any] = {}
    for key, value in reason.params.items():
        if _supplier_param(key) and isinstance(value, str) and name_of is not None:
            values[key] = name_of(value)
        elif isinstance(value, list):
            values[key] = ", ".join(str(v) for v in value)
        else:
            values[key] = value
    try:
        return CATALOGUE[reason.code].format(**values)
    except (KeyError, IndexError, ValueError):
        return text or reason.code
