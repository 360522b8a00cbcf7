"""Reading the instance's outbox in tests: the newest message to an address, and its link."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from infomediary.config import Settings
from infomediary.mail import read_outbox

TOKEN_FIELD_RE = re.compile(r'name="token" value="([^"]+)"')


def messages_to(settings: Settings, address: str) -> list[dict[str, str]]:
    """Every outbox message to ``address``, oldest first."""
    return [m.as_dict() for m in read_outbox(settings) if m.as_dict()["to"] == address]


def link_in(body: str, path: str) -> str | None:
    """The path and query of the first link to ``path`` in a message body."""
    match = re.search(r"https?://\S+?" + re.escape(path) + r"\?token=[A-Za-z0-9_-]+", body)
    if match is None:
        return None
    parts = urlsplit(match.group(0))
    return f"{parts.path}?{parts.query}"


def newest_link(settings: Settings, address: str, path: str) -> str | None:
    """The link to ``path`` in the newest message to ``address``, if that message has one."""
    messages = messages_to(settings, address)
    return link_in(messages[-1]["body"], path) if messages else None
