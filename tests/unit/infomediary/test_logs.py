"""Log lines in both formats: JSON lines are JSON objects with the request id, and a whole flow
logged as JSON carries no personal value, as the text format's scan checks."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask

from infomediary import create_app
from infomediary.instance import Instance
from infomediary.logs import (
    HANDLER_NAME,
    JSON_FIELDS,
    LOGGER_NAME,
    REQUEST_ID,
    RequestIdFilter,
    configure_logging,
    formatter,
)
from tests.conftest import csrf

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def _record(message: str, *args: Any, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "infomediary.test", logging.WARNING, __file__, 1, message, args, None
    )
    record.__dict__.update(extra)
    RequestIdFilter().filter(record)
    return record


def test_a_json_line_has_the_fields_in_order() -> None:
    token = REQUEST_ID.set("0123456789abcdef0123456789abcdef")
    try:
        line = formatter("json").format(_record("job %s failed", "j-1"))
    finally:
        REQUEST_ID.reset(token)
    data = json.loads(line)
    assert tuple(data) == JSON_FIELDS
    assert data["level"] == "WARNING"
    assert data["logger"] == "infomediary.test"
    assert data["request_id"] == "0123456789abcdef0123456789abcdef"
    assert data["message"] == "job j-1 failed"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", data["time"])


def test_extra_values_and_tracebacks_stay_out_of_json_lines() -> None:
    record = _record("failed", email="extra.marker@example.org")
    try:
        raise ValueError("traceback marker")
    except ValueError:
        record.exc_info = sys.exc_info()
    data = json.loads(formatter("json").format(record))
    assert data["error"] == "ValueError"
    assert "extra.marker" not in json.dumps(data)
    assert "traceback marker" not in json.dumps(data)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text or json"):
        formatter("xml")


@pytest.fixture
def app(inst: Instance) -> Iterator[Flask]:
    """This module's app logs JSON; the text format is restored afterwards."""
    flask_app = create_app(replace(inst.settings, log_format="json"), instance=inst)
    flask_app.config["TESTING"] = True
    try:
        yield flask_app
    finally:
        configure_logging(inst.settings.log_level, "text")


@pytest.fixture
def lines(app: Flask) -> Iterator[io.StringIO]:
    """What the application logger's handler writes, captured for the test."""
    [handler] = [h for h in logging.getLogger(LOGGER_NAME).handlers if h.name == HANDLER_NAME]
    assert isinstance(handler, logging.StreamHandler)
    assert handler.level <= logging.DEBUG
    captured = io.StringIO()
    previous = handler.setStream(captured)
    logger = logging.getLogger(LOGGER_NAME)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        logger.setLevel(level)
        handler.setStream(previous)


def test_json_logs_of_a_whole_flow_carry_no_personal_values(client, auth, lines) -> None:
    markers = {
        "email": "json.marker.q7@example.org",
        "password": "Password-Marker-Indigo-4",
        "name": "Ottoline Marker",
        "phone": "+61 411 999 555",
        "postcode": "7001",
    }
    auth.signup(email=markers["email"], password=markers["password"], name=markers["name"])
    client.post(
        "/profile",
        data={
            "csrf_token": csrf(client, "/profile"),
            "phone": markers["phone"],
            "postcode": markers["postcode"],
        },
    )
    client.post("/profile", data={"csrf_token": csrf(client, "/profile"), "postcode": "bad"})
    client.post("/account/export", data={"csrf_token": csrf(client, "/account")})
    auth.logout()
    auth.login(email=markers["email"], password="wrong password!!")
    auth.login(email=markers["email"], password=markers["password"])
    answered = client.get("/profile")
    cookie = client.get_cookie("infomediary_session").value
    output = lines.getvalue()
    records = [json.loads(line) for line in output.splitlines()]  # every line is one object
    assert all(tuple(r)[:5] == JSON_FIELDS for r in records)
    access = [r for r in records if r["logger"] == "infomediary.access"]
    assert any(r["message"].startswith("POST /profile ") for r in access)
    assert all(HEX_ID.match(r["request_id"]) for r in access)  # each line names its request
    assert answered.headers["X-Request-ID"] in {r["request_id"] for r in access}
    for name, marker in {**markers, "cookie": cookie}.items():
        assert marker not in output, f"{name} leaked into the logs"
