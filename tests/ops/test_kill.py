"""The kill script's bounded form: an import, an offer's delivery and a key rotation each
SIGKILLed mid-write on PostgreSQL, then rerun."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import need_service
from tests.ops import kill
from tests.ops.support import Missing

pytestmark = pytest.mark.ops


def _run(scenario: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    try:
        return scenario(*args)
    except Missing as missing:
        need_service(str(missing))
        raise AssertionError("unreachable") from None


def test_a_killed_import_leaves_nothing_visible_and_the_rerun_imports_every_line() -> None:
    figures = _run(kill.run_import, 5000)
    assert figures["import_staged_lines_at_kill"] > 0
    assert figures["import_after_rerun"].startswith("5000 lines published")


def test_a_killed_rotation_leaves_every_key_whole_and_the_rerun_finishes_it() -> None:
    figures = _run(kill.run_rotation, 1000)
    assert 0 < figures["rotation_rewrapped_at_kill"] < 1000
    assert figures["rotation_profiles_decrypted"] == 1000


def test_a_killed_delivery_leaves_nothing_and_its_rerun_delivers_each_recipient_once() -> None:
    figures = _run(kill.run_offer, 100)
    assert figures["offer_deliveries_after_kill"] == 0
    assert figures["offer_rerun"] == "attempt 2: 100 recipients, each once"
    assert figures["offer_escrow_cents"] == 1000
