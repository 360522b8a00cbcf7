"""Use cases. Each takes a SQLAlchemy ``Session``, does its work, appends the access-log
entry for it and commits once, so an access and its record never part."""

from dataclasses import dataclass

from infomediary.audit.log import Actor


@dataclass(frozen=True, slots=True)
class Context:
    """Who is acting, and the request id the log entry carries."""

    actor: Actor
    request_id: str = "-"
