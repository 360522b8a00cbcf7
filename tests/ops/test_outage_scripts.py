"""The outage script's bounded form: PostgreSQL cut behind a proxy, Redis killed, each for
about a second, against a real gunicorn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import need_service
from tests.ops import outages
from tests.ops.support import Missing

pytestmark = pytest.mark.ops


def _run(scenario: Callable[..., dict[str, Any]], **options: Any) -> dict[str, Any]:
    try:
        return scenario(**options)
    except Missing as missing:
        need_service(str(missing))
        raise AssertionError("unreachable") from None


def test_a_cut_database_answers_503_and_service_resumes_without_restart() -> None:
    figures = _run(outages.run_database, requests_down=3, down_seconds=0.5)
    assert figures["database_readyz_down"].startswith("unreachable")
    assert figures["database_restarted_processes"] == 0


def test_redis_away_refuses_logins_and_tokens_and_jobs_still_run() -> None:
    figures = _run(outages.run_redis, down_seconds=0.5)
    assert figures["redis_down_token"] == "503 temporarily_unavailable"
    assert "unreachable" in figures["redis_readyz_down"]
    assert figures["redis_job_committed_while_down"].startswith("run by the sweep")
