"""Logging that carries a request id and never personal values.

Log lines name routes, statuses, ids and counts only: no form fields, no query strings
(they may carry tokens), no profile values. A test drives a whole flow and scans the logs.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

LOGGER_NAME = "infomediary"

#: The id of the request being served: set by the web edge as each request starts, "-" for
#: commands and workers. A context variable, so this module needs no web framework.
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


#: Libraries whose DEBUG lines carry secrets (authlib logs issued token dicts): never below INFO.
QUIET_LIBRARIES = ("authlib", "oauthlib", "requests_oauthlib", "urllib3")


def configure_logging(level: str) -> None:
    """The application logger at ``level`` (``INFOMEDIARY_LOG_LEVEL``, checked at start)."""
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
        )
        logger.addHandler(handler)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
