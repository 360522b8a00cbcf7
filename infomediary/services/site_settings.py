"""The customer's site settings: the language the site speaks to them and their time zone.

Apart from the profile's contact language (``profile_fields.LANGUAGES``, what suppliers may
write to them in): these settings only change how our own pages read. The time zone is
sealed under the customer's data key (a zone such as ``America/Argentina/San_Luis`` says
roughly where someone lives); the site language is one of the few the site is complete in.
Reading the settings page and every change are logged; opening the zone to format the
customer's own pages in their own session (:func:`display_settings`) is not, as a page
shown to its owner is no access by anyone else (as the login session's row is read on
every request without an entry).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from functools import cache

from sqlalchemy.orm import Session

from infomediary.audit.reasons import Reason
from infomediary.db import begin_snapshot
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Customer, CustomerSettings, utcnow
from infomediary.services import Context
from infomediary.services.customer_keys import customer_key
from infomediary.services.uow import unit_of_work

#: The languages the site is complete in (every message translated), by their own names.
SITE_LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch"}
DEFAULT_LANGUAGE = "en"
DEFAULT_TIME_ZONE = "UTC"
#: The regions of the IANA database whose zones are offered (not the legacy aliases such as
#: ``US/Eastern`` or ``Etc/GMT+5``, whose sign confuses everyone); ``UTC`` besides.
_REGIONS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)
_ZONE_LENGTH = 64


@cache
def time_zones() -> tuple[str, ...]:
    """Every zone offered, sorted: ``UTC`` and the regional IANA zones of this system."""
    regional = {z for z in zoneinfo.available_timezones() if z.split("/", 1)[0] in _REGIONS}
    return (DEFAULT_TIME_ZONE, *sorted(regional))


def zone_groups() -> list[tuple[str, list[str]]]:
    """The offered zones grouped by region (for ``<optgroup>``), regions in order."""
    groups: dict[str, list[str]] = {}
    for zone in time_zones()[1:]:
        groups.setdefault(zone.split("/", 1)[0], []).append(zone)
    return sorted(groups.items())


def is_time_zone(value: str) -> bool:
    return len(value) <= _ZONE_LENGTH and value in frozenset(time_zones())


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """What the customer chose; None where they chose nothing yet (the defaults apply)."""

    site_language: str | None = None
    time_zone: str | None = None


@dataclass(frozen=True, slots=True)
class SettingsInput:
    site_language: str
    time_zone: str


def _open(session: Session, inst: Instance, customer_id: str) -> SiteSettings:
    row = session.get(CustomerSettings, customer_id)
    if row is None:
        return SiteSettings()
    zone = None
    if row.time_zone is not None:
        key = customer_key(session, inst, customer_id)
        zone = inst.vault.open(key, "customer_settings", customer_id, "time_zone", row.time_zone)
    return SiteSettings(row.site_language, zone)


def display_settings(inst: Instance, customer_id: str) -> SiteSettings:
    """The settings for formatting the customer's own pages (not logged, see above).

    Read in a short session of its own, as a read-only snapshot (no write lock on SQLite), so
    it neither joins nor waits for whatever transaction the request's session has open."""
    with inst.sessions() as session:
        begin_snapshot(session)
        if session.get(Customer, customer_id) is None:
            return SiteSettings()
        return _open(session, inst, customer_id)


def read_settings(session: Session, inst: Instance, customer_id: str, ctx: Context) -> SiteSettings:
    """The settings page's read, logged."""
    with unit_of_work(session) as uow:
        if session.get(Customer, customer_id) is None:
            raise NotFound("No such customer.")
        found = _open(session, inst, customer_id)
        ctx.log(session, "read", customer_id=customer_id, reason=Reason("settings.viewed"))
        uow.commit()
        return found


def validate(raw: SettingsInput) -> dict[str, str]:
    """Every field's error at once (empty when all is well)."""
    errors: dict[str, str] = {}
    if raw.site_language not in SITE_LANGUAGES:
        errors["site_language"] = "Choose one of the site's languages."
    if not is_time_zone(raw.time_zone):
        errors["time_zone"] = "Choose a time zone from the list."
    return errors


def _store(
    session: Session, inst: Instance, customer_id: str, language: str | None, zone: str | None
) -> tuple[CustomerSettings, SiteSettings]:
    if session.get(Customer, customer_id) is None:
        raise NotFound("No such customer.")
    old = _open(session, inst, customer_id)
    row = session.get(CustomerSettings, customer_id)
    if row is None:
        row = CustomerSettings(customer_id=customer_id)
        session.add(row)
    row.site_language = language
    key = customer_key(session, inst, customer_id)
    row.time_zone = (
        None
        if zone is None
        else inst.vault.seal(key, "customer_settings", customer_id, "time_zone", zone)
    )
    row.updated_at = utcnow()
    return row, old


def change_settings(
    session: Session, inst: Instance, customer_id: str, raw: SettingsInput, ctx: Context
) -> list[str]:
    """Validate and save both settings; returns the names of those that changed (none: no
    write and no entry). The entry names the fields, never the zone."""
    with unit_of_work(session) as uow:
        errors = validate(raw)
        if errors:
            raise ValidationFailed(errors)
        _row, old = _store(session, inst, customer_id, raw.site_language, raw.time_zone)
        changed = [
            name
            for name, before, after in (
                ("site_language", old.site_language, raw.site_language),
                ("time_zone", old.time_zone, raw.time_zone),
            )
            if before != after
        ]
        if not changed:
            return []  # leaving the block rolls the untouched row back
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("settings.changed", {"fields": changed}),
        )
        uow.commit()
        return changed


def time_zone_from_browser(
    session: Session, inst: Instance, customer_id: str, zone: str, ctx: Context
) -> bool:
    """Take the browser's zone as the customer's, only while they have none; True if taken.
    A zone the customer chose is never overwritten by what a browser says."""
    with unit_of_work(session) as uow:
        if not is_time_zone(zone):
            raise ValidationFailed({"time_zone": "Choose a time zone from the list."})
        current = _open(session, inst, customer_id) if session.get(Customer, customer_id) else None
        if current is None:
            raise NotFound("No such customer.")
        if current.time_zone is not None:
            return False
        _store(session, inst, customer_id, current.site_language, zone)
        ctx.log(
            session,
            "update",
            customer_id=customer_id,
            reason=Reason("settings.time_zone_from_browser"),
        )
        uow.commit()
        return True
