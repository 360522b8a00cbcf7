"""Logging that carries a request id and never personal values.

Log lines name routes, statuses, ids and counts only: no form fields, no query strings
(they may carry tokens), no profile values. A test drives a whole flow and scans the logs.
"""

from __future__ import annotations

import logging

from flask import Flask, g, has_request_context

LOGGER_NAME = "infomediary"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


#: Libraries whose DEBUG lines carry secrets (authlib logs issued token dicts): never below INFO.
QUIET_LIBRARIES = ("authlib", "oauthlib", "requests_oauthlib", "urllib3")


def configure_logging(app: Flask) -> None:
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.INFO)
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
        )
        logger.addHandler(handler)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
