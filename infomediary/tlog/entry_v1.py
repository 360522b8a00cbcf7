"""Access-log entries of format 1: the JSON form a leaf commits to, from the entry's fields.

Entries written before format 2 (:mod:`infomediary.tlog.entry`) commit to sorted-key JSON of
their stored fields, ``{"v": 1, "seq", "time", "actor": [type, id], "customer", "action",
"categories", "purpose", "outcome", "reason", "request", "detail", "prev"}`` and, for an
aggregate entry, ``"members_sha256"``; bytes are base64 (``detail``, ``prev``), the time is
``YYYY-MM-DDTHH:MM:SS.ffffffZ``, the separators are ``,`` and ``:`` and non-ASCII is escaped.

This is the same form :func:`infomediary.audit.log.canonical_v1` writes from a stored row,
taken from plain values so that an offline verifier needs no database (a test proves the two
agree). Such entries name raw identifiers (the customer's id, a supplier's) and commit to the
detail's ciphertext, not to its plaintext.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

VERSION = 1
#: Every member of a format-1 body; ``members_sha256`` is present only for aggregate entries.
REQUIRED = frozenset(
    {
        "v",
        "seq",
        "time",
        "actor",
        "customer",
        "action",
        "categories",
        "purpose",
        "outcome",
        "reason",
        "request",
        "detail",
        "prev",
    }
)
OPTIONAL = frozenset({"members_sha256"})
_TEXT = ("time", "action", "categories", "purpose", "outcome", "reason", "request", "prev")


class EntryV1Error(ValueError):
    """Fields that no format-1 entry could have had (a member missing, a value of the wrong
    type); the message names it."""


def canonical_v1(fields: Mapping[str, Any]) -> bytes:
    """The bytes a format-1 leaf commits to, from its fields as the JSON body holds them."""
    names = set(fields)
    if missing := REQUIRED - names:
        raise EntryV1Error(f"a format-1 entry needs {', '.join(sorted(missing))}")
    if names - REQUIRED - OPTIONAL:
        raise EntryV1Error(
            f"no format-1 entry has {', '.join(sorted(names - REQUIRED - OPTIONAL))}"
        )
    if fields["v"] != VERSION or isinstance(fields["v"], bool):
        raise EntryV1Error("a format-1 entry has v = 1")
    seq = fields["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise EntryV1Error("seq is a whole number")
    actor = fields["actor"]
    if not (
        isinstance(actor, list | tuple)
        and len(actor) == 2
        and all(isinstance(a, str) for a in actor)
    ):
        raise EntryV1Error("actor is a [type, id] pair of texts")
    for name in _TEXT:
        if not isinstance(fields[name], str):
            raise EntryV1Error(f"{name} is a text")
    for name in ("customer", "detail"):
        if fields[name] is not None and not isinstance(fields[name], str):
            raise EntryV1Error(f"{name} is a text or null")
    if "members_sha256" in names and not isinstance(fields["members_sha256"], str):
        raise EntryV1Error("members_sha256 is a text")
    body = {**fields, "actor": list(actor)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
