"""How a test reads an access-log entry's reason: as a person is shown it, or by its code.

A format-2 entry commits to a structured reason (``reason_data``) and leaves its ``reason`` column
empty, so tests read what is rendered from the structure, or the structure itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from infomediary.audit.reasons import render
from infomediary.models import AccessLogEntry


def shown(entry: AccessLogEntry, name_of: Callable[[str], str] | None = None) -> str:
    """The entry's reason rendered (suppliers by ``name_of``, else by id), whole."""
    return render(entry.reason_data, entry.reason, name_of)


def code_of(entry: AccessLogEntry) -> str | None:
    """The entry's reason code, None for a format-1 entry."""
    return str(json.loads(entry.reason_data)["code"]) if entry.reason_data else None


def params_of(entry: AccessLogEntry) -> dict[str, Any]:
    """The entry's reason parameters (empty for a format-1 entry or a code without any)."""
    if not entry.reason_data:
        return {}
    params: dict[str, Any] = json.loads(entry.reason_data).get("params") or {}
    return params
