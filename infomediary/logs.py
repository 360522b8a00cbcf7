"""Logging that carries a request id and never personal values.

Log lines name routes, statuses, ids and counts only: no form fields, no query strings
(they may carry tokens), no profile values. A test drives a whole flow and scans the logs,
in both formats: text, or with ``INFOMEDIARY_LOG_FORMAT=json`` one JSON object per line
(python-json-logger) with the time, level, logger, request id and message.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

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
#: The name of the one handler :func:`configure_logging` installs on the application logger.
HANDLER_NAME = "infomediary"
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
#: The members of a JSON line, in order.
JSON_FIELDS = ("time", "level", "logger", "request_id", "message")


class JsonLines(JsonFormatter):
    """One JSON object per line with :data:`JSON_FIELDS` only (and ``error``, an exception's
    class, when one is logged). A record's ``extra`` values and tracebacks are left out: they
    are where a value or a query parameter could slip into a line."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        moment = datetime.fromtimestamp(record.created, UTC)
        log_data["time"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["request_id"] = getattr(record, "request_id", None) or REQUEST_ID.get()
        log_data["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            log_data["error"] = record.exc_info[0].__name__


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``fmt`` (``INFOMEDIARY_LOG_FORMAT``): ``text`` or ``json``."""
    if fmt == "json":
        return JsonLines()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format must be text or json, not {fmt!r}")


def configure_logging(level: str, fmt: str = "text") -> None:
    """The application logger at ``level`` (``INFOMEDIARY_LOG_LEVEL``, checked at start),
    its lines in ``fmt`` on stderr. Called again (another app, a command), it sets both anew."""
    chosen = formatter(fmt)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    ours: list[logging.Handler] = [h for h in logger.handlers if h.get_name() == HANDLER_NAME]
    if not ours and not logger.handlers:
        stream = logging.StreamHandler()
        stream.set_name(HANDLER_NAME)
        stream.addFilter(RequestIdFilter())
        logger.addHandler(stream)
        ours = [stream]
    for handler in ours:
        handler.setFormatter(chosen)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
