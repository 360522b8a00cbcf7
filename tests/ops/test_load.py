"""The load script's bounded form: wrk for two seconds against gunicorn on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import need_service
from tests.ops import load
from tests.ops.support import Missing

pytestmark = pytest.mark.ops


def test_saturated_reads_answer_2xx_and_each_is_logged() -> None:
    try:
        figures = load.run(customers=4, workers=2, threads=2, connections=16, duration=2)
    except Missing as missing:
        need_service(str(missing))
        raise AssertionError("unreachable") from None
    assert figures["answered_2xx"] == figures["requests"] > 0
    assert 0 <= figures["log_entries_minus_2xx"] <= 16
    assert figures["log_chain"].startswith("verified")
