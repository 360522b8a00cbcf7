"""The one code-to-status table: every code the services, the schemas and the token check
raise has a row, every row is raised somewhere, and problems are RFC 9457 documents."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from flask import Flask

from infomediary import errors
from infomediary.web import schemas
from infomediary.web.errors import PROBLEM_TYPE, STATUS, problem, status_of

SOURCE = Path(errors.__file__).parent
#: Codes given as literals where an exception is raised: ``QueryRejected("unknown_value", ...``
RAISED = re.compile(r'\b(?:QueryRejected|InvalidRequest|FieldError)\(\s*"([a-z_]+)"', re.S)
#: RFC 6750 §3.1 errors the token check answers (authlib's names for them).
TOKEN_ERRORS = {"invalid_token", "insufficient_scope", "missing_authorization"}


def _exception_codes() -> set[str]:
    return {
        cls.code
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ServiceError) and cls is not errors.ServiceError
        if "code" in vars(cls)
    }


def _literal_codes() -> set[str]:
    found: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        found.update(RAISED.findall(path.read_text(encoding="utf-8")))
    return found


def _schema_codes() -> set[str]:
    found: set[str] = set()
    for _, cls in inspect.getmembers(schemas, inspect.isclass):
        if issubclass(cls, schemas.RequestSchema):
            found.add(cls.default_code)
            found.update(cls.codes.values())
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    literal = _literal_codes()
    assert {"undeclared_purpose", "unknown_attribute", "invalid_json"} <= literal
    assert {"invalid_query", "invalid_offer", "unknown_purpose"} <= _schema_codes()
    assert {"policy_denied", "budget_exhausted", "insufficient_funds"} <= _exception_codes()


def test_every_raised_code_has_a_row_and_every_row_is_raised() -> None:
    raised = _exception_codes() | _literal_codes() | _schema_codes() | TOKEN_ERRORS
    assert raised - set(STATUS) == set(), "codes without a status"
    assert set(STATUS) - raised == set(), "statuses no code is raised with"


def test_statuses_are_client_or_server_errors() -> None:
    assert all(400 <= status < 600 for status in STATUS.values())
    assert STATUS["validation_failed"] == 400
    for code in _literal_codes() | _schema_codes():
        if code not in {"invalid_credentials"}:
            assert STATUS[code] == 400, code  # a refused input is a 400, whatever its rule


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.QueryRejected("unknown_value", "x", "where"), 400),
        (errors.InvalidRequest("invalid_offer", {"title": "x"}), 400),
        (errors.BudgetExhausted("spent", 10), 429),
        (errors.PolicyDenied("no", []), 403),
        (errors.InsufficientFunds("poor"), 402),
        (errors.TokenRefused("insufficient_scope", "scope", "Bearer"), 403),
        (errors.TokenRefused("invalid_token", "bad", "Bearer"), 401),
    ],
)
def test_status_of_reads_the_table(exc: errors.ServiceError, status: int) -> None:
    assert status_of(exc) == status


def test_a_problem_is_an_rfc_9457_document() -> None:
    app = Flask(__name__)
    with app.app_context():
        response = problem(400, "unknown_value", "region: unknown value(s) ['X'].", {"where": "w"})
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json() == {
        "type": PROBLEM_TYPE + "unknown_value",
        "title": "Unknown value",
        "status": 400,
        "detail": "region: unknown value(s) ['X'].",
        "code": "unknown_value",
        "errors": {"where": "w"},
    }
