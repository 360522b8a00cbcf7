"""Use cases. Each takes a SQLAlchemy ``Session``, does its work inside a unit of work
(:mod:`infomediary.services.uow`), appends the access-log entry for it and commits once, so an
access and its record never part."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infomediary.audit.log import REASON_LENGTH, Actor, ActorType, LogEvent, append, as_denied
from infomediary.audit.reasons import Reason

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from infomediary.models import AccessLogEntry

__all__ = ["REASON_LENGTH", "Context"]


@dataclass(frozen=True, slots=True)
class Context:
    """Who is acting, and the request id the log entry carries.

    The one way a use case writes its log entry: ``ctx.log(session, "read", customer_id=...,
    reason=...)`` is the entry of this actor, in this request, in the use case's transaction.
    """

    actor: Actor
    request_id: str = "-"

    @classmethod
    def supplier(cls, supplier_id: str, request_id: str = "-") -> Context:
        return cls(Actor(ActorType.SUPPLIER, supplier_id), request_id)

    def event(
        self,
        action: str,
        *,
        customer_id: str | None = None,
        reason: str | Reason = "",
        **fields: Any,
    ) -> LogEvent:
        """This actor's entry for ``action``, not yet appended (``fields`` are LogEvent's)."""
        return LogEvent(
            actor=self.actor,
            action=action,
            customer_id=customer_id,
            reason=reason,
            request_id=self.request_id,
            **fields,
        )

    def log(
        self,
        session: Session,
        action: str,
        *,
        customer_id: str | None = None,
        reason: str | Reason = "",
        **fields: Any,
    ) -> AccessLogEntry:
        """Append this actor's entry for ``action`` in the session's transaction; the entry
        (its ``seq`` and ``leaf_hash`` are known at once) is returned."""
        return append(session, self.event(action, customer_id=customer_id, reason=reason, **fields))

    def denied(self, event: LogEvent) -> LogEvent:
        """``event`` as a refused access, its reason cut to the column."""
        return as_denied(event)
