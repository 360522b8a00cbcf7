"""The unit of work: one transaction per use case, with one commit point.

A use case enters a unit of work over the request's (or command's) session, does its reads,
writes and log entries through that session, and ends with exactly one of:

- :meth:`UnitOfWork.commit`: everything it wrote becomes durable together;
- :meth:`UnitOfWork.refuse`: everything it wrote is dropped, and only its denial entry is
  appended and committed (an access that was refused is still an access, and is logged);
- leaving the block (an exception, or a return without either): everything is rolled back.

The edge (views, CLI commands, authlib callbacks) never commits or rolls back; a test greps it.
This is the shape of cosmicpython's ``service_layer/unit_of_work.py`` without repositories: the
SQLAlchemy ``Session`` already is one.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session

from infomediary.audit.log import LogEvent, append, as_denied


class UnitOfWork:
    def __init__(self, session: Session):
        self.session = session
        self.done = False

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.done:
            self.session.rollback()
            self.done = True

    def _finish(self) -> None:
        if self.done:
            raise RuntimeError("a unit of work commits once")
        self.done = True

    def commit(self) -> None:
        """The use case's one commit point (a commit that fails is rolled back)."""
        self._finish()
        try:
            self.session.commit()
        except BaseException:
            self.session.rollback()
            raise

    def refuse(self, event: LogEvent) -> None:
        """Drop the use case's work and commit only ``event``, as a denied access."""
        self._finish()
        self.session.rollback()
        append(self.session, as_denied(event))
        self.session.commit()


def unit_of_work(session: Session) -> UnitOfWork:
    return UnitOfWork(session)
