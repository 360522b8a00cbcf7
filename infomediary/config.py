"""Settings: defaults, then ``INFOMEDIARY_*`` environment variables, then explicit overrides.

Read without Flask so the CLI, the app factory and the benchmarks agree on one source.
Unsafe production settings stop the start with a message naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from limits import parse_many

PREFIX = "INFOMEDIARY_"


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


#: name -> (default, description). The README's configuration table mirrors this.
SETTINGS: dict[str, tuple[Any, str]] = {
    "INSTANCE_PATH": ("instance", "Folder for the keyring and the SQLite database (mode 0700)."),
    "DATABASE_URL": (
        None,
        "SQLAlchemy URL; default SQLite in the instance folder. "
        "`postgresql://user@host/db` uses psycopg 3.",
    ),
    "SECRET_KEY": (None, "Flask secret (CSRF binding). Required in production, >= 32 characters."),
    "ISSUER": (
        None,
        "OAuth issuer URL (RFC 8414/9207), e.g. https://infomediary.example. Required in "
        "production; in development it is taken from the request's host.",
    ),
    "PRODUCTION": (
        False,
        "Production mode: `__Host-` Secure cookies, HSTS, refuses unsafe settings.",
    ),
    "MAX_CONTENT_LENGTH": (1024 * 1024, "Largest accepted request body, bytes."),
    "SESSION_IDLE_MINUTES": (30, "A dashboard session ends after this long without a request."),
    "SESSION_MAX_HOURS": (12, "A dashboard session ends this long after login, whatever happens."),
    "LOGIN_RATE_LIMIT": (
        "5 per minute;30 per hour",
        "Login, sign-up and account-link requests per client address; failed logins per "
        "device cookie.",
    ),
    "LOGIN_ACCOUNT_RATE_LIMIT": (
        "5 per minute;30 per hour",
        "Failed logins per account from browsers without that account's device cookie "
        "(its owner's known browsers are not held back by them).",
    ),
    "SMTP_URL": (
        None,
        "Mail server for account e-mail: `smtp://[user:password@]host[:port]` (STARTTLS when "
        "offered) or `smtps://...`. Unset: messages go to the instance's `outbox/` folder.",
    ),
    "MAIL_FROM": ("Infomediary <no-reply@infomediary.invalid>", "Sender of account e-mail."),
    "MAIL_RATE_LIMIT": (
        "5 per hour",
        "Account e-mails per recipient and requesting address; past it the pages answer as "
        "usual but send none.",
    ),
    "MAIL_RECIPIENT_RATE_LIMIT": (
        "30 per hour",
        "Account e-mails per recipient from all requesting addresses together.",
    ),
    "RATELIMIT_STORAGE_URI": (
        "memory://",
        "Rate-limit store: `memory://` or `redis://127.0.0.1:6379`.",
    ),
    "ARGON2_TIME_COST": (3, "argon2id passes."),
    "ARGON2_MEMORY_KIB": (65536, "argon2id memory, KiB."),
    "ARGON2_PARALLELISM": (2, "argon2id lanes."),
    "PROXY_HOPS": (0, "Trusted reverse proxies in front (sets X-Forwarded-For handling)."),
    "LOG_LEVEL": ("INFO", "Python log level of the application logger."),
    "BROKER_EPSILON": (0.1, "Epsilon spent by one audience count (discrete Laplace, OpenDP)."),
    "BROKER_BUDGET": (2.0, "Epsilon each supplier may spend per budget period."),
    "BROKER_GLOBAL_BUDGET": (50.0, "Epsilon all suppliers together may spend per budget period."),
    "BROKER_PERIOD_DAYS": (30, "Length of a budget period, days."),
    "BROKER_K": (50, "Smallest noisy count reported; below it the answer is suppressed."),
    "BROKER_EPOCH_HOURS": (24, "Data epoch: identical queries within one are answered from cache."),
    "BROKER_RATE_LIMIT": ("60 per minute", "Broker API calls per supplier."),
    "KEY_LEASE_SECONDS": (
        120.0,
        "How long a process's lease on the KEK versions it may wrap with lasts unrenewed, and the "
        "grace period `keys prune` waits, seconds.",
    ),
    "WRITE_RATE_LIMIT": (
        "120 per minute",
        "State-changing requests (any method but GET, HEAD and OPTIONS) per client address.",
    ),
    "OAUTH_RATE_LIMIT": (
        "120 per minute",
        "Requests to the token, revocation, introspection and registration endpoints per address.",
    ),
    "OAUTH_CLIENT_RATE_LIMIT": (
        "600 per minute",
        "Authenticated requests to the token, revocation and introspection endpoints per client.",
    ),
    "CLIENT_AUTH_FAILURE_LIMIT": (
        "10 per minute",
        "Failed client authentications per claimed client_id and address before 429; "
        "a correct secret is never refused by it.",
    ),
    "API_RATE_LIMIT": (
        "600 per minute",
        "Bearer API calls per supplier, and per address.",
    ),
}


#: Settings that hold Flask-Limiter rate-limit strings, checked at start: a typo must not
#: silently disable a limit.
RATE_LIMITS = tuple(name for name in SETTINGS if name.endswith(("RATE_LIMIT", "FAILURE_LIMIT")))


def _parse(name: str, default: Any, raw: str) -> Any:
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{PREFIX}{name} must be true or false, not {raw!r}")
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be a number, not {raw!r}") from None
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name} must be a whole number, not {raw!r}") from None
    return raw


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Merge defaults, environment and overrides; derive paths; validate."""
    env = os.environ if environ is None else environ
    config: dict[str, Any] = {name: default for name, (default, _) in SETTINGS.items()}
    for name, (default, _) in SETTINGS.items():
        if f"{PREFIX}{name}" in env:
            config[name] = _parse(name, default, env[f"{PREFIX}{name}"])
    if overrides:
        config.update(overrides)
    instance = Path(config["INSTANCE_PATH"]).expanduser().resolve()
    config["INSTANCE_PATH"] = str(instance)
    config["KEYRING_PATH"] = str(instance / "keyring.json")
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = f"sqlite:///{instance / 'infomediary.sqlite3'}"
    validate(config)
    return config


def validate(config: Mapping[str, Any]) -> None:
    for name in (
        "MAX_CONTENT_LENGTH",
        "SESSION_IDLE_MINUTES",
        "SESSION_MAX_HOURS",
        "BROKER_EPSILON",
        "BROKER_BUDGET",
        "BROKER_GLOBAL_BUDGET",
        "BROKER_PERIOD_DAYS",
        "BROKER_K",
        "BROKER_EPOCH_HOURS",
        "KEY_LEASE_SECONDS",
    ):
        if float(config[name]) <= 0:
            raise ConfigError(f"{PREFIX}{name} must be positive")
    for name in RATE_LIMITS:
        try:
            parsed = parse_many(str(config[name]))
        except ValueError:
            parsed = []
        if not parsed:
            raise ConfigError(
                f"{PREFIX}{name} must be a rate limit such as '5 per minute;30 per hour', "
                f"not {config[name]!r}"
            )
    smtp_url = str(config.get("SMTP_URL") or "")
    if smtp_url and not smtp_url.startswith(("smtp://", "smtps://")):
        raise ConfigError(f"{PREFIX}SMTP_URL must start with smtp:// or smtps://")
    if not config["PRODUCTION"]:
        return
    secret = config.get("SECRET_KEY") or ""
    if len(secret) < 32:
        raise ConfigError(
            f"{PREFIX}SECRET_KEY must be set to at least 32 random characters in production "
            '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )
    issuer = str(config.get("ISSUER") or "")
    if not issuer.startswith("https://") or issuer.endswith("/"):
        raise ConfigError(
            f"{PREFIX}ISSUER must be set in production to the https URL suppliers use, "
            "without a trailing slash (it is compared exactly by OAuth clients)"
        )
    if str(config["RATELIMIT_STORAGE_URI"]).startswith("memory://"):
        raise ConfigError(
            f"{PREFIX}RATELIMIT_STORAGE_URI must name a shared store (redis://...) in production: "
            "in-memory limits are per process and easy to evade"
        )
    if not smtp_url:
        raise ConfigError(
            f"{PREFIX}SMTP_URL must be set in production: without a mail server, sign-up, "
            "password reset and address-change links only reach the instance's outbox folder"
        )
