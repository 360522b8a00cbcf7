"""Settings: parsed once into a typed, frozen object; every wrong value is refused at start in
one line naming the variable; unknown ``INFOMEDIARY_*`` variables are warned about by name."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import pytest

from infomediary.config import (
    PREFIX,
    RATE_LIMITS,
    SETTINGS,
    ConfigError,
    Settings,
    load_config,
    unknown_variables,
)

ROOT = Path(__file__).resolve().parents[3]
#: Tests whose variable names are wrong on purpose.
WRONG_ON_PURPOSE = {
    Path(__file__).resolve(),
    ROOT / "tests" / "functional" / "test_cli_settings.py",
}


def refusal(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ)
    return str(caught.value)


def test_defaults_are_typed_and_paths_derived(tmp_path: Path) -> None:
    settings = load_config({"INSTANCE_PATH": str(tmp_path)}, environ={})
    assert settings.instance_path == tmp_path.resolve()
    assert settings.keyring_path == tmp_path.resolve() / "keyring.json"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'infomediary.sqlite3'}"
    assert settings.production is False
    assert settings.broker_k == 50
    assert settings.broker_epsilon == 0.1
    assert settings.login_rate_limit == "5 per minute;30 per hour"
    assert settings.key_lease_seconds == 120.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.broker_k = 1  # type: ignore[misc]


def test_environment_values_are_parsed_by_type_and_overrides_win(tmp_path: Path) -> None:
    environ = {
        "INFOMEDIARY_INSTANCE_PATH": str(tmp_path),
        "INFOMEDIARY_PRODUCTION": "no",
        "INFOMEDIARY_BROKER_K": "7",
        "INFOMEDIARY_BROKER_BUDGET": "2.5",
        "INFOMEDIARY_LOG_LEVEL": "debug",
        "INFOMEDIARY_MAIL_FROM": "Ops <ops@example.org>",
    }
    settings = load_config({"BROKER_K": 9}, environ=environ)
    assert settings.instance_path == tmp_path.resolve()
    assert settings.production is False
    assert settings.broker_k == 9  # the override beats the environment
    assert settings.broker_budget == 2.5
    assert settings.log_level == "DEBUG"
    assert settings.mail_from == "Ops <ops@example.org>"


def test_settings_names_every_field_but_the_derived_keyring_path() -> None:
    names = {f.name.upper() for f in dataclasses.fields(Settings)}
    assert set(SETTINGS) == names - {"KEYRING_PATH"}
    assert "LOGIN_RATE_LIMIT" in SETTINGS


@pytest.mark.parametrize("name", [name.upper() for name in RATE_LIMITS])
def test_every_mistyped_rate_limit_is_refused_by_name(name: str) -> None:
    message = refusal({f"{PREFIX}{name}": "5 per minut"})
    assert message.startswith(f"{PREFIX}{name} must be a rate limit")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "notaurl", "must be a database URL"),
        ("DATABASE_URL", "mysql://u@h/d", "names mysql; supported: sqlite, postgresql"),
        ("DATABASE_URL", "postgresql+asyncpg://u@h/d", "is used with psycopg, not asyncpg"),
        ("LOG_LEVEL", "verbose", "must be one of DEBUG, INFO"),
        ("BROKER_K", "1e3", "must be a whole number"),
        ("BROKER_K", "0", "must be positive"),
        ("SESSION_IDLE_MINUTES", "-5", "must be positive"),
        ("PROXY_HOPS", "-1", "must be 0 or more"),
        ("BROKER_EPSILON", "nan", "must be a number"),
        ("BROKER_EPSILON", "a little", "must be a number"),
        ("KEY_LEASE_SECONDS", "inf", "must be a number"),
        ("PRODUCTION", "maybe", "must be true or false"),
        ("ARGON2_PARALLELISM", "٣", "must be a whole number"),  # not ASCII digits
        ("SMTP_URL", "http://mail", "must start with smtp:// or smtps://"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_variable(
    name: str, value: str, expected: str
) -> None:
    message = refusal({f"{PREFIX}{name}": value})
    assert message.startswith(f"{PREFIX}{name}")
    assert expected in message
    assert "\n" not in message


def test_a_refused_database_url_is_not_repeated() -> None:
    """The URL may hold a password: the message names the problem, never the value."""
    message = refusal({f"{PREFIX}DATABASE_URL": "mysql://app:hunter2@db/x"})
    assert "hunter2" not in message
    message = refusal({f"{PREFIX}DATABASE_URL": "not a url, hunter2"})
    assert "hunter2" not in message


def test_an_unknown_override_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"did you mean INFOMEDIARY_LOGIN_RATE_LIMIT\?"):
        load_config({"LOGIN_RATE_LIMT": "1 per minute"}, environ={})
    with pytest.raises(ConfigError, match="INFOMEDIARY_BROKER_K must be a whole number"):
        load_config({"BROKER_K": "many"}, environ={})
    with pytest.raises(ConfigError, match="INFOMEDIARY_BROKER_K must be of type int, not float"):
        load_config({"BROKER_K": 2.5}, environ={})


def test_unknown_variables_are_named_with_a_suggestion_where_close() -> None:
    lines = unknown_variables(
        {
            "INFOMEDIARY_LOGIN_RATE_LIMT": "5 per minute",
            "INFOMEDIARY_FROBNICATE": "1",
            "INFOMEDIARY_BROKER_K": "50",  # a setting
            "INFOMEDIARY_TEST_DATABASE_URL": "postgresql://x/y",  # the test harness's
            "INFOMEDIARY_REQUIRE_SERVICES": "1",
            "INFOMEDIARY_SCREENSHOT_DIR": "screenshots",
            "OTHER_LOGIN_RATE_LIMT": "x",  # not ours
        }
    )
    assert lines == [
        "INFOMEDIARY_FROBNICATE is not a setting and is ignored",
        "INFOMEDIARY_LOGIN_RATE_LIMT is not a setting and is ignored "
        "(did you mean INFOMEDIARY_LOGIN_RATE_LIMIT?)",
    ]


def test_load_config_warns_once_per_unknown_variable_of_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("INFOMEDIARY_SESSION_IDLE_MINUTS", "5")
    with caplog.at_level(logging.WARNING, logger="infomediary.config"):
        settings = load_config()
    assert settings.session_idle_minutes == 30  # the typo changed nothing ...
    warned = [r.getMessage() for r in caplog.records if r.name == "infomediary.config"]
    assert warned == [  # ... but it is named
        "INFOMEDIARY_SESSION_IDLE_MINUTS is not a setting and is ignored "
        "(did you mean INFOMEDIARY_SESSION_IDLE_MINUTES?)"
    ]


def test_every_variable_the_harness_uses_is_a_setting_or_exempt() -> None:
    """Grep the tests and CI: nothing they set may be warned about as unknown."""
    names: set[str] = set()
    for folder in (ROOT / "tests", ROOT / ".ci"):
        for path in folder.rglob("*"):
            if path in WRONG_ON_PURPOSE:
                continue
            if path.is_file() and path.suffix in ("", ".py", ".sh", ".yml", ".yaml"):
                names |= set(re.findall(r"\bINFOMEDIARY_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert "INFOMEDIARY_TEST_DATABASE_URL" in names
    assert unknown_variables(dict.fromkeys(names, "x")) == []


def test_replace_keeps_the_derived_paths(tmp_path: Path) -> None:
    settings = load_config({"INSTANCE_PATH": str(tmp_path)}, environ={})
    other = dataclasses.replace(settings, broker_k=3)
    assert other.broker_k == 3
    assert other.keyring_path == settings.keyring_path
    assert other.database_url == settings.database_url
    moved = dataclasses.replace(settings, keyring_path=tmp_path / "other.json")
    assert moved.keyring_path == tmp_path.resolve() / "other.json"
