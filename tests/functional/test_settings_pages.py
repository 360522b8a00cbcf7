"""Pages that quote a setting show the app's typed settings, not a blank."""

from __future__ import annotations

from dataclasses import replace

from infomediary import create_app
from infomediary.instance import Instance


def test_privacy_and_counting_pages_quote_the_configured_values(inst: Instance) -> None:
    settings = replace(
        inst.settings,
        session_idle_minutes=45,
        session_max_hours=7,
        broker_k=33,
        broker_budget=1.5,
        broker_period_days=14,
        broker_epsilon=0.25,
    )
    client = create_app(settings, instance=inst).test_client()
    privacy = client.get("/privacy").get_data(as_text=True)
    assert "end after 45 minutes of" in privacy
    assert "at most 7 hours after login" in privacy
    counting = client.get("/counting").get_data(as_text=True)
    assert 'learns "fewer than 33"' in counting
    assert "spend only 1.5 units" in counting
    assert "every 14 days; each count costs 0.25." in counting
