"""The profile's fields, their data categories and their validation.

Pure functions over plain values: the web form, the CLI and the JSON API all feed
``clean_profile`` and show its per-field messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infomediary.text import CONTROL_MESSAGE, has_control_characters, parse_int
from policies.taxonomy import INTEREST_TAGS, categories_of_interests

CONTACT_CHANNELS = ("email", "sms", "post", "none")
OFFER_FREQUENCIES = ("never", "monthly", "weekly")
LANGUAGES = {
    "en": "English",
    "zh": "Chinese",
    "ar": "Arabic",
    "vi": "Vietnamese",
    "it": "Italian",
    "el": "Greek",
    "es": "Spanish",
    "hi": "Hindi",
}
DEFAULT_PREFERENCES = {"contact_channel": "email", "offer_frequency": "monthly", "language": "en"}


@dataclass(frozen=True, slots=True)
class ProfileField:
    name: str
    category: str
    label: str
    hint: str = ""


FIELDS: tuple[ProfileField, ...] = (
    ProfileField("name", "identity", "Full name"),
    ProfileField("phone", "identity", "Phone", "Australian or international, e.g. +61 400 000 000"),
    ProfileField("street_address", "identity", "Street address"),
    ProfileField("locality", "identity", "Suburb or town"),
    ProfileField(
        "postcode", "identity", "Postcode", "Four digits; suppliers may only ever see your state"
    ),
    ProfileField(
        "birth_year", "demographics", "Birth year", "Suppliers may only ever see an age band"
    ),
    ProfileField("household_size", "demographics", "People in your household"),
    ProfileField("interests", "interests", "Interests"),
    ProfileField("preferences", "preferences", "Contact preferences"),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
FIELD_BY_NAME = {f.name: f for f in FIELDS}

_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f<>{}]{1,100}$")
_PHONE_RE = re.compile(r"^\+?[0-9 ()-]{6,20}$")
_TEXT_RE = re.compile(r"^[^\x00-\x1f\x7f<>{}]{1,160}$")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def categories_of(values: Mapping[str, Any]) -> frozenset[str]:
    """Data categories a set of field values reveals, special categories of interests included."""
    cats = {FIELD_BY_NAME[name].category for name, value in values.items() if value is not None}
    interests = values.get("interests")
    if interests:
        cats |= categories_of_interests(list(interests))
    return frozenset(cats)


def categories_touched(fields: list[str], values: Mapping[str, Any]) -> frozenset[str]:
    """Categories of fields that were written, cleared ones included."""
    cats = {FIELD_BY_NAME[name].category for name in fields}
    if "interests" in fields and values.get("interests"):
        cats |= categories_of_interests(list(values["interests"]))
    return frozenset(cats)


def validate_email(email: Any) -> str | None:
    """Return an error message, or None when ``email`` is acceptable."""
    if not isinstance(email, str) or not email.strip():
        return "Enter your email address."
    if len(email) > 254 or not _EMAIL_RE.match(email.strip()):
        return "Enter an email address like name@example.com."
    return None


def validate_password(password: Any, email: str | None = None) -> str | None:
    if not isinstance(password, str) or len(password) < 12:
        return "Use at least 12 characters."
    if len(password) > 256:
        return "Use at most 256 characters."
    if email and password.strip().lower() == email.strip().lower():
        return "Your password must not be your email address."
    return None


def _text(value: Any, pattern: re.Pattern[str], message: str) -> tuple[Any, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if not isinstance(value, str):
        return None, message
    if has_control_characters(value):
        return None, CONTROL_MESSAGE
    if not pattern.match(value.strip()):
        return None, message
    return value.strip(), None


def _int(value: Any, low: int, high: int, message: str) -> tuple[Any, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, bool):
        return None, message
    if isinstance(value, int):
        number: int | None = value if low <= value <= high else None
    elif isinstance(value, str):
        number = parse_int(value.strip(), low=low, high=high)
    else:
        number = None
    return (None, message) if number is None else (number, None)


def clean_profile(
    raw: Mapping[str, Any], *, current_year: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate the fields present in ``raw``; returns (clean values, field -> message).

    A field absent from ``raw`` is left out of the result (unchanged); an empty one becomes
    ``None`` (cleared). Unknown fields are errors, so a typo never silently drops data.
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in raw:
        if key not in FIELD_BY_NAME:
            errors[key] = "This is not a profile field."
    checks: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
        "name": lambda v: _text(
            v, _NAME_RE, "Use up to 100 characters; angle brackets and braces are not allowed."
        ),
        "phone": lambda v: _text(
            v, _PHONE_RE, "Use digits, spaces, brackets and an optional leading +."
        ),
        "street_address": lambda v: _text(
            v, _TEXT_RE, "Use up to 160 characters; angle brackets and braces are not allowed."
        ),
        "locality": lambda v: _text(
            v, _TEXT_RE, "Use up to 160 characters; angle brackets and braces are not allowed."
        ),
        "postcode": lambda v: _text(
            v, re.compile(r"^[0-9]{4}$"), "An Australian postcode has four digits."
        ),
        "birth_year": lambda v: _int(
            v,
            current_year - 120,
            current_year - 13,
            f"Enter a year between {current_year - 120} and {current_year - 13}.",
        ),
        "household_size": lambda v: _int(v, 1, 20, "Enter a number from 1 to 20."),
    }
    for name, check in checks.items():
        if name in raw:
            value, error = check(raw[name])
            if error:
                errors[name] = error
            else:
                values[name] = value
    if "interests" in raw:
        tags = raw["interests"]
        if tags is None or tags == "":
            values["interests"] = None
        elif not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
            errors["interests"] = "Choose interests from the list."
        else:
            unknown = sorted(set(tags) - set(INTEREST_TAGS))
            if unknown:
                errors["interests"] = f"Unknown interest: {', '.join(unknown[:3])}."
            else:
                values["interests"] = sorted(set(tags)) or None
    if "preferences" in raw:
        prefs = raw["preferences"]
        if prefs is None:
            values["preferences"] = None
        elif not isinstance(prefs, Mapping):
            errors["preferences"] = "Preferences must be a set of choices."
        else:
            clean, message = _preferences(prefs)
            if message:
                errors["preferences"] = message
            else:
                values["preferences"] = clean
    return values, errors


def _preferences(prefs: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
    allowed = {
        "contact_channel": CONTACT_CHANNELS,
        "offer_frequency": OFFER_FREQUENCIES,
        "language": tuple(LANGUAGES),
    }
    clean = dict(DEFAULT_PREFERENCES)
    for key, value in prefs.items():
        if key not in allowed:
            return {}, f"Unknown preference {key!r}."
        if value not in allowed[key]:
            return {}, f"Choose one of the offered options for {key.replace('_', ' ')}."
        clean[key] = value
    return clean, None
