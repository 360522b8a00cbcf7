"""Settings: defaults, then ``INFOMEDIARY_*`` environment variables, then explicit overrides.

Parsed once, without Flask, into one frozen :class:`Settings` so the CLI, the app factory and
the benchmarks agree on one source, and checked at start: a wrong value stops the start with
one line (:class:`ConfigError`) naming the variable and what is wrong, and an unknown
``INFOMEDIARY_*`` variable (a typo would otherwise be silently ignored) is warned about by name.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from limits import parse_many
from sqlalchemy.exc import ArgumentError

from infomediary.db import normalise_url
from infomediary.text import parse_int
from policies.terms import load_roster

PREFIX = "INFOMEDIARY_"
#: Variables of the test harness and CI, which share the prefix but are not settings.
HARNESS_PREFIXES = (f"{PREFIX}TEST_",)
HARNESS_VARIABLES = frozenset({f"{PREFIX}REQUIRE_SERVICES", f"{PREFIX}SCREENSHOT_DIR"})
#: Database backends the schema, the locks and the tests are written for.
BACKENDS = {"sqlite": "pysqlite", "postgresql": "psycopg"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
KEY_PROVIDERS = ("file", "pkcs11")

log = logging.getLogger("infomediary.config")


class ConfigError(RuntimeError):
    """A setting is missing or invalid; the one-line message names it."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting, typed. Field ``x`` is read from ``INFOMEDIARY_X``; the README's table
    documents each. Build it with :func:`load_config`; tests derive variants with
    :func:`dataclasses.replace` (which does not re-run :func:`validate`)."""

    #: Folder for the keyring and the SQLite database (mode 0700); resolved to an absolute path.
    instance_path: Path = Path("instance")
    #: Keyring file, relative to the instance folder (not an environment variable).
    keyring_path: Path = Path("keyring.json")
    #: SQLAlchemy URL, sqlite or postgresql (psycopg 3); empty: SQLite in the instance folder.
    database_url: str = ""
    #: PostgreSQL URL of the role that owns the schema: ``init`` migrates and seeds as it, then
    #: grants the role of ``database_url`` only what the app needs (the log: append, read).
    admin_database_url: str = ""
    #: Flask secret (CSRF binding); empty: derived from the keyring (development only).
    secret_key: str = ""
    #: OAuth issuer URL (RFC 8414/9207); empty: the request's host (development only).
    issuer: str = ""
    #: Production mode: `__Host-` Secure cookies, HSTS, refuses unsafe settings.
    production: bool = False
    #: Largest accepted request body, bytes.
    max_content_length: int = 1024 * 1024
    #: A dashboard session ends after this long without a request.
    session_idle_minutes: int = 30
    #: A dashboard session ends this long after login, whatever happens.
    session_max_hours: int = 12
    #: Login, sign-up and account-link requests per address; failed logins per device cookie.
    login_rate_limit: str = "5 per minute;30 per hour"
    #: Failed logins per account from browsers without that account's device cookie.
    login_account_rate_limit: str = "5 per minute;30 per hour"
    #: Mail server, `smtp://[user:password@]host[:port]` or `smtps://...`; empty: the outbox.
    smtp_url: str = ""
    #: Sender of account e-mail.
    mail_from: str = "Infomediary <no-reply@infomediary.invalid>"
    #: Account e-mails per recipient and requesting address (past it: none sent).
    mail_rate_limit: str = "5 per hour"
    #: Account e-mails per recipient from all requesting addresses together.
    mail_recipient_rate_limit: str = "30 per hour"
    #: Rate-limit store: `memory://` or `redis://127.0.0.1:6379`.
    ratelimit_storage_uri: str = "memory://"
    #: Redis for background jobs, `redis://[:password@]host[:port][/db]` or `rediss://...`: jobs
    #: then run on `infomediary worker` processes (RQ), not in the app; empty: in the app.
    redis_url: str = ""
    #: argon2id passes.
    argon2_time_cost: int = 3
    #: argon2id memory, KiB.
    argon2_memory_kib: int = 65536
    #: argon2id lanes.
    argon2_parallelism: int = 2
    #: Trusted reverse proxies in front (X-Forwarded-For/Proto/Host handling).
    proxy_hops: int = 0
    #: Addresses (or networks) of the reverse proxies whose X-Forwarded-* headers are trusted,
    #: comma-separated; gunicorn's `forwarded_allow_ips`. Empty: only the local address.
    trusted_proxies: str = ""
    #: Log level of the application logger.
    log_level: str = "INFO"
    #: Log lines as `text` or `json` (one JSON object per line).
    log_format: str = "text"
    #: Bearer token that opens `/metrics` (Prometheus); empty: `/metrics` answers 404.
    metrics_token: str = ""
    #: Where the KEKs live: `file` (the keyring file) or `pkcs11` (a PKCS#11 token, an HSM).
    key_provider: str = "file"
    #: The HSM's PKCS#11 module, a shared library such as /usr/lib/softhsm/libsofthsm2.so.
    pkcs11_module: str = ""
    #: Label of the PKCS#11 token that holds the KEKs.
    pkcs11_token_label: str = ""
    #: User PIN of that token.
    pkcs11_pin: str = ""
    #: Epsilon spent by one audience count (discrete Laplace, OpenDP).
    broker_epsilon: float = 0.1
    #: Epsilon each organisation (all its clients together) may spend per budget period.
    broker_budget: float = 2.0
    #: Epsilon all suppliers together may spend per budget period.
    broker_global_budget: float = 50.0
    #: Length of a budget period, days.
    broker_period_days: int = 30
    #: Smallest noisy count reported; below it the answer is suppressed.
    broker_k: int = 50
    #: Data epoch: identical queries within one are answered from cache.
    broker_epoch_hours: int = 24
    #: Epsilon any one customer may lose, over all releases, within the rolling window.
    broker_customer_budget: float = 10.0
    #: The rolling window of the per-customer budget, days.
    broker_customer_window_days: int = 365
    #: Delta of an offer's delivery decision: it is (epsilon, delta)-differentially private.
    broker_delta: float = 1e-6
    #: Smallest true audience of verified accounts an offer is ever delivered to.
    broker_offer_min_audience: int = 50
    #: Broker API calls per supplier.
    broker_rate_limit: str = "60 per minute"
    #: Lifetime of a process's unrenewed KEK lease, and the grace `keys prune` waits, seconds.
    key_lease_seconds: float = 120.0
    #: State-changing requests (any method but GET, HEAD and OPTIONS) per client address.
    write_rate_limit: str = "120 per minute"
    #: Token, revocation, introspection and registration requests per address.
    oauth_rate_limit: str = "120 per minute"
    #: Authenticated token, revocation and introspection requests per client.
    oauth_client_rate_limit: str = "600 per minute"
    #: Failed client authentications per claimed client_id and address before 429.
    client_auth_failure_limit: str = "10 per minute"
    #: Bearer API calls per supplier, and per address.
    api_rate_limit: str = "600 per minute"
    #: Largest purchase file `infomediary import` reads, bytes (refused by its size first).
    import_max_bytes: int = 200 * 1024 * 1024
    #: A purchase file uploaded on the dashboard above this size is imported by a job, bytes.
    upload_job_bytes: int = 5 * 1024 * 1024
    #: A pushed batch of more lines than this is imported by a job (202), not at once (201).
    push_job_lines: int = 100
    #: Origin of the access log's signed checkpoints (and their key's name); empty: the
    #: issuer's host plus `/log` (`localhost/log` without an issuer).
    log_origin: str = ""
    #: A checkpoint of the access log is signed this often, seconds, when the log grew.
    checkpoint_seconds: int = 60
    #: The notification digest is e-mailed to each customer who asked for it this often, seconds.
    digest_seconds: int = 86400
    #: Expired sessions, codes, tokens, links, released answers and old finished jobs are
    #: deleted this often, seconds (the recurring job `housekeeping`).
    housekeeping_seconds: int = 3600
    #: The MyTerms roster (a JSON file of standard agreements); empty: the shipped default.
    terms_roster: str = ""

    def __post_init__(self) -> None:
        # Derived values only (no checks: see validate): absolute paths, the default database.
        instance = Path(self.instance_path).expanduser().resolve()
        object.__setattr__(self, "instance_path", instance)
        object.__setattr__(self, "keyring_path", instance / Path(self.keyring_path).expanduser())
        if not self.database_url:
            url = f"sqlite:///{instance / 'infomediary.sqlite3'}"
            object.__setattr__(self, "database_url", url)
        object.__setattr__(self, "log_level", str(self.log_level).upper())


#: Fields that are not read from the environment.
NOT_FROM_ENVIRONMENT = frozenset({"keyring_path"})
_TYPES: dict[str, type] = {
    name: hint for name, hint in get_type_hints(Settings).items() if isinstance(hint, type)
}
#: Setting names as they follow the prefix (``LOGIN_RATE_LIMIT``); the README's table lists them.
SETTINGS: tuple[str, ...] = tuple(
    f.name.upper() for f in fields(Settings) if f.name not in NOT_FROM_ENVIRONMENT
)
#: Settings holding rate-limit strings, checked at start: a typo must not disable a limit.
RATE_LIMITS: tuple[str, ...] = tuple(
    f.name for f in fields(Settings) if f.name.endswith(("rate_limit", "failure_limit"))
)
_POSITIVE = (
    "max_content_length",
    "session_idle_minutes",
    "session_max_hours",
    "broker_epsilon",
    "broker_budget",
    "broker_global_budget",
    "broker_period_days",
    "broker_k",
    "broker_epoch_hours",
    "broker_customer_budget",
    "broker_customer_window_days",
    "broker_delta",
    "broker_offer_min_audience",
    "key_lease_seconds",
    "argon2_time_cost",
    "argon2_memory_kib",
    "argon2_parallelism",
    "import_max_bytes",
    "upload_job_bytes",
    "push_job_lines",
    "checkpoint_seconds",
    "digest_seconds",
    "housekeeping_seconds",
)
#: Settings whose values are never repeated in a message (they may hold credentials).
_SECRET = frozenset(
    {
        "secret_key",
        "database_url",
        "admin_database_url",
        "smtp_url",
        "ratelimit_storage_uri",
        "redis_url",
        "metrics_token",
        "pkcs11_pin",
    }
)


def _env(name: str) -> str:
    return f"{PREFIX}{name.upper()}"


def _parse(name: str, raw: str) -> Any:
    """The typed value of one setting given as text (an environment variable)."""
    kind = _TYPES[name]
    shown = "the value given" if name in _SECRET else repr(raw)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{_env(name)} must be true or false, not {shown}")
    if kind is int:
        number = parse_int(raw.strip(), low=-(2**63), high=2**63 - 1)
        if number is None:
            raise ConfigError(f"{_env(name)} must be a whole number, not {shown}")
        return number
    if kind is float:
        try:
            real = float(raw)
        except ValueError:
            real = math.nan
        if not math.isfinite(real):
            raise ConfigError(f"{_env(name)} must be a number, not {shown}")
        return real
    if kind is Path:
        return Path(raw)
    return raw


def _coerce(name: str, value: Any) -> Any:
    """An override's value: text is parsed like the environment's, other values type-checked."""
    kind = _TYPES[name]
    if isinstance(value, str) and kind is not str:
        return _parse(name, value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is Path and isinstance(value, os.PathLike):
        return Path(value)
    if type(value) is not kind:
        raise ConfigError(
            f"{_env(name)} must be of type {kind.__name__}, not {type(value).__name__}"
        )
    return value


def _field_name(key: str) -> str:
    name = key.removeprefix(PREFIX).lower()
    if name not in _TYPES:
        raise ConfigError(f"{key} is not a setting{_suggestion(name.upper())}")
    return name


def _suggestion(name: str) -> str:
    close = difflib.get_close_matches(name, SETTINGS, n=1, cutoff=0.75)
    return f" (did you mean {PREFIX}{close[0]}?)" if close else ""


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning line per ``INFOMEDIARY_*`` variable that is not a setting."""
    known = {_env(name) for name in SETTINGS} | HARNESS_VARIABLES
    return [
        f"{key} is not a setting and is ignored{_suggestion(key.removeprefix(PREFIX))}"
        for key in sorted(environ)
        if key.startswith(PREFIX) and key not in known and not key.startswith(HARNESS_PREFIXES)
    ]


def load_config(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the environment (``os.environ`` unless given), then ``overrides`` (keyed
    by setting name, ``LOGIN_RATE_LIMIT``); checked. Unknown variables of the real environment
    are logged, one warning line each."""
    env = os.environ if environ is None else environ
    if environ is None:
        for line in unknown_variables(env):
            log.warning(line)
    values: dict[str, Any] = {
        name.lower(): _parse(name.lower(), env[_env(name)])
        for name in SETTINGS
        if _env(name) in env
    }
    for key, value in (overrides or {}).items():
        name = _field_name(key)
        if value is not None:  # None: not given (the default, or the environment's value)
            values[name] = _coerce(name, value)
    settings = Settings(**values)
    validate(settings)
    return settings


def _check_database_url(url: str, name: str = "DATABASE_URL") -> None:
    where = f"{PREFIX}{name}"
    try:
        parsed = normalise_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(
            f"{where} must be a database URL such as postgresql://user@host/db or "
            "sqlite:////path/to/file.sqlite3 (the value given is not one)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in BACKENDS:
        raise ConfigError(f"{where} names {backend}; supported: {', '.join(BACKENDS)}")
    driver = parsed.get_driver_name()
    if driver != BACKENDS[backend]:
        raise ConfigError(f"{where}: {backend} is used with {BACKENDS[backend]}, not {driver}")


def _check_admin_database_url(settings: Settings) -> None:
    """Two roles are a PostgreSQL arrangement, and the app's role must be another, named one."""
    where = f"{PREFIX}ADMIN_DATABASE_URL"
    _check_database_url(settings.admin_database_url, "ADMIN_DATABASE_URL")
    admin = normalise_url(settings.admin_database_url)
    app = normalise_url(settings.database_url)
    if admin.get_backend_name() != "postgresql" or app.get_backend_name() != "postgresql":
        raise ConfigError(
            f"{where} is for PostgreSQL: it and {PREFIX}DATABASE_URL must both be postgresql "
            "URLs (SQLite has no roles)"
        )
    if not app.username:
        raise ConfigError(
            f"{PREFIX}DATABASE_URL must name the app's role (postgresql://ROLE@host/db) when "
            f"{where} is set: that role is granted its rights"
        )
    if admin.username == app.username:
        raise ConfigError(
            f"{where} must name another role than {PREFIX}DATABASE_URL: the owner migrates, "
            "the app's role only uses the tables"
        )


def _check_redis_url(url: str) -> None:
    where = f"{PREFIX}REDIS_URL"
    example = "such as redis://127.0.0.1:6379/0 or rediss://:password@host:6380/0"
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"{where} must be a redis:// or rediss:// URL {example}")
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ConfigError(f"{where} has a port that is not a number ({example})") from None
    if not parts.hostname:
        raise ConfigError(f"{where} must name a host ({example})")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ConfigError(f"{where} names database {database!r}; a Redis database is a number")


def trusted_proxy_networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of ``INFOMEDIARY_TRUSTED_PROXIES`` (addresses are one-address networks)."""
    return [
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    ]


def _check_trusted_proxies(value: str) -> None:
    try:
        trusted_proxy_networks(value)
    except ValueError:
        raise ConfigError(
            f"{PREFIX}TRUSTED_PROXIES must list IP addresses or networks separated by commas, "
            f"such as 10.0.0.5,10.1.0.0/16, not {value!r}"
        ) from None


def _check_key_provider(settings: Settings) -> None:
    if settings.key_provider not in KEY_PROVIDERS:
        raise ConfigError(
            f"{PREFIX}KEY_PROVIDER must be one of {', '.join(KEY_PROVIDERS)}, "
            f"not {settings.key_provider!r}"
        )
    if settings.key_provider != "pkcs11":
        return
    for name in ("pkcs11_module", "pkcs11_token_label", "pkcs11_pin"):
        if not getattr(settings, name):
            raise ConfigError(f"{_env(name)} must be set when {PREFIX}KEY_PROVIDER is pkcs11")
    if not Path(settings.pkcs11_module).is_file():
        raise ConfigError(
            f"{PREFIX}PKCS11_MODULE names {settings.pkcs11_module!r}, which is not a file"
        )


def _check_terms_roster(path: str) -> None:
    """A replaced MyTerms roster must load: a broken file stops the start, not a bid."""
    if not path:
        return
    try:
        load_roster(Path(path))
    except ValueError as error:
        raise ConfigError(f"{PREFIX}TERMS_ROSTER: {error}") from None


def validate(settings: Settings) -> None:
    """Raise :class:`ConfigError` naming the first setting that is wrong."""
    for name in _POSITIVE:
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{_env(name)} must be positive, not {getattr(settings, name)!r}")
    if settings.broker_delta >= 0.5:
        raise ConfigError(f"{PREFIX}BROKER_DELTA must be below 0.5, not {settings.broker_delta!r}")
    if settings.proxy_hops < 0:
        raise ConfigError(f"{PREFIX}PROXY_HOPS must be 0 or more, not {settings.proxy_hops}")
    if settings.argon2_memory_kib < 8 * settings.argon2_parallelism:
        raise ConfigError(
            f"{PREFIX}ARGON2_MEMORY_KIB must be at least 8 KiB per lane "
            f"({PREFIX}ARGON2_PARALLELISM), not {settings.argon2_memory_kib}"
        )
    for name in RATE_LIMITS:
        value = getattr(settings, name)
        try:
            parsed = parse_many(value)
        except ValueError:
            parsed = []
        if not parsed:
            raise ConfigError(
                f"{_env(name)} must be a rate limit such as '5 per minute;30 per hour', "
                f"not {value!r}"
            )
    if settings.log_level not in LOG_LEVELS:
        raise ConfigError(
            f"{PREFIX}LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {settings.log_level!r}"
        )
    if settings.log_format not in LOG_FORMATS:
        raise ConfigError(
            f"{PREFIX}LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, "
            f"not {settings.log_format!r}"
        )
    _check_trusted_proxies(settings.trusted_proxies)
    _check_key_provider(settings)
    _check_database_url(settings.database_url)
    if settings.admin_database_url:
        _check_admin_database_url(settings)
    if settings.smtp_url and not settings.smtp_url.startswith(("smtp://", "smtps://")):
        raise ConfigError(f"{PREFIX}SMTP_URL must start with smtp:// or smtps://")
    if settings.redis_url:
        _check_redis_url(settings.redis_url)
    _check_terms_roster(settings.terms_roster)
    if not settings.production:
        return
    if len(settings.secret_key) < 32:
        raise ConfigError(
            f"{PREFIX}SECRET_KEY must be set to at least 32 random characters in production "
            '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )
    issuer = settings.issuer
    if not issuer.startswith("https://") or issuer.endswith("/"):
        raise ConfigError(
            f"{PREFIX}ISSUER must be set in production to the https URL suppliers use, "
            "without a trailing slash (it is compared exactly by OAuth clients)"
        )
    if settings.ratelimit_storage_uri.startswith("memory://"):
        raise ConfigError(
            f"{PREFIX}RATELIMIT_STORAGE_URI must name a shared store (redis://...) in production: "
            "in-memory limits are per process and easy to evade"
        )
    if not settings.smtp_url:
        raise ConfigError(
            f"{PREFIX}SMTP_URL must be set in production: without a mail server, sign-up, "
            "password reset and address-change links only reach the instance's outbox folder"
        )
