"""The site settings use cases on both backends: what is offered and validated, what is stored
(the zone sealed to its customer), what is logged, and what a browser may and may not change."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from infomediary.audit.log import Actor
from infomediary.crypto.vault import DecryptionError
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, CustomerSettings
from infomediary.services import Context, site_settings
from infomediary.services.site_settings import SettingsInput, SiteSettings
from tests.factories import make_customer
from tests.log_reasons import code_of, params_of


def ctx(customer_id: str) -> Context:
    return Context(Actor.customer(customer_id))


def last_codes(inst: Instance, customer_id: str, n: int) -> list[str | None]:
    with inst.sessions() as session:
        rows = session.scalars(
            select(AccessLogEntry)
            .where(AccessLogEntry.customer_id == customer_id)
            .order_by(AccessLogEntry.seq.desc())
            .limit(n)
        )
        return [code_of(row) for row in reversed(list(rows))]


def test_the_zones_offered_are_utc_and_the_regional_iana_zones() -> None:
    zones = site_settings.time_zones()
    assert zones[0] == "UTC"
    assert {"Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"} <= set(zones)
    assert not {"US/Eastern", "Etc/GMT+5", "posixrules", "localtime"} & set(zones)
    assert list(zones[1:]) == sorted(zones[1:])
    groups = dict(site_settings.zone_groups())
    assert "Europe/Berlin" in groups["Europe"]
    assert sum(len(z) for z in groups.values()) == len(zones) - 1


@pytest.mark.parametrize(
    ("language", "zone", "fields"),
    [
        ("fr", "Europe/Paris", {"site_language"}),
        ("de", "Europe/Atlantis", {"time_zone"}),
        ("", "", {"site_language", "time_zone"}),
        ("de", "Etc/GMT-9", {"time_zone"}),
        ("en", "Europe/" + "x" * 80, {"time_zone"}),
    ],
)
def test_every_bad_field_is_named_at_once(language: str, zone: str, fields: set[str]) -> None:
    assert set(site_settings.validate(SettingsInput(language, zone))) == fields


def test_a_change_is_sealed_logged_and_read_back(inst: Instance) -> None:
    customer_id = make_customer(inst)
    assert site_settings.display_settings(inst, customer_id) == SiteSettings()
    with inst.sessions() as session:
        changed = site_settings.change_settings(
            session, inst, customer_id, SettingsInput("de", "America/New_York"), ctx(customer_id)
        )
    assert changed == ["site_language", "time_zone"]
    entry_codes = last_codes(inst, customer_id, 1)
    assert entry_codes == ["settings.changed"]
    assert site_settings.display_settings(inst, customer_id) == SiteSettings(
        "de", "America/New_York"
    )
    with inst.sessions() as session:
        read = site_settings.read_settings(session, inst, customer_id, ctx(customer_id))
        only_zone = site_settings.change_settings(
            session, inst, customer_id, SettingsInput("de", "Europe/Berlin"), ctx(customer_id)
        )
        nothing = site_settings.change_settings(
            session, inst, customer_id, SettingsInput("de", "Europe/Berlin"), ctx(customer_id)
        )
    assert read == SiteSettings("de", "America/New_York")
    assert only_zone == ["time_zone"]
    assert nothing == []
    assert last_codes(inst, customer_id, 2) == ["settings.viewed", "settings.changed"]
    with inst.sessions() as session:
        entry = session.scalars(
            select(AccessLogEntry).order_by(AccessLogEntry.seq.desc()).limit(1)
        ).one()
        assert params_of(entry) == {"fields": ["time_zone"]}


def test_the_sealed_zone_opens_only_for_its_own_customer(inst: Instance) -> None:
    owner, other = make_customer(inst), make_customer(inst)
    with inst.sessions() as session:
        for customer_id, zone in ((owner, "Asia/Tokyo"), (other, "Europe/Berlin")):
            site_settings.change_settings(
                session, inst, customer_id, SettingsInput("en", zone), ctx(customer_id)
            )
    with inst.sessions() as session, session.begin():
        rows = {r.customer_id: r for r in session.scalars(select(CustomerSettings))}
        assert b"Tokyo" not in (rows[owner].time_zone or b"")
        rows[other].time_zone = rows[owner].time_zone  # a ciphertext moved to another row
    with pytest.raises(DecryptionError):
        site_settings.display_settings(inst, other)
    assert site_settings.display_settings(inst, owner).time_zone == "Asia/Tokyo"


def test_the_browser_zone_is_taken_only_once_and_only_if_valid(inst: Instance) -> None:
    customer_id = make_customer(inst)
    with inst.sessions() as session:
        with pytest.raises(ValidationFailed) as refused:
            site_settings.time_zone_from_browser(
                session, inst, customer_id, "Mars/Olympus", ctx(customer_id)
            )
        assert set(refused.value.errors) == {"time_zone"}
        assert site_settings.time_zone_from_browser(
            session, inst, customer_id, "Asia/Tokyo", ctx(customer_id)
        )
        assert not site_settings.time_zone_from_browser(
            session, inst, customer_id, "Europe/Berlin", ctx(customer_id)
        )
    assert site_settings.display_settings(inst, customer_id) == SiteSettings(None, "Asia/Tokyo")
    assert last_codes(inst, customer_id, 1) == ["settings.time_zone_from_browser"]


def test_an_unknown_customer_has_no_settings_to_read_or_change(inst: Instance) -> None:
    nobody = "00000000-0000-0000-0000-000000000000"
    assert site_settings.display_settings(inst, nobody) == SiteSettings()
    with inst.sessions() as session:
        with pytest.raises(NotFound):
            site_settings.read_settings(session, inst, nobody, ctx(nobody))
        with pytest.raises(NotFound):
            site_settings.change_settings(
                session, inst, nobody, SettingsInput("en", "UTC"), ctx(nobody)
            )
        with pytest.raises(NotFound):
            site_settings.time_zone_from_browser(session, inst, nobody, "UTC", ctx(nobody))
