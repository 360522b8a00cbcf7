"""An instance: its folder, keyring, database and the objects every use case needs.

``initialise`` (behind ``infomediary init``) is idempotent: it creates what is missing and
migrates the schema. ``open_instance`` (behind the app factory and every other command)
refuses to start on a missing, foreign or incomplete keyring, so a wrong key shows up as a
clear error at start instead of as undecryptable data later. An open instance holds a lease
on the KEK versions it may wrap with (:mod:`infomediary.leases`) until it is closed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from infomediary.audit.log import LOG_KEYS, LogKeys, ensure_head
from infomediary.broker.members import ensure_broker_state
from infomediary.config import Settings
from infomediary.crypto.keyring import FileKeyring, Keyring, KeyringError
from infomediary.crypto.vault import Vault
from infomediary.db import make_engine, make_sessionmaker
from infomediary.db_roles import grant_app_role, permission_denied
from infomediary.leases import (
    LeaseKeeper,
    ensure_keyring_state,
    install_wrap_guard,
)
from infomediary.models import DataKey, KeyFingerprint

if TYPE_CHECKING:
    from infomediary.broker.index import MatchIndex
    from infomediary.broker.ledger import Ledger
    from infomediary.broker.noise import NoiseSource
    from infomediary.crypto.receipts import ReceiptSigner

T = TypeVar("T")
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class NotInitialised(RuntimeError):
    """The database or keyring has not been set up; ``infomediary init`` does it."""


def alembic_config(engine: Engine | None = None, url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def schema_revision(engine: Engine) -> tuple[str | None, str | None]:
    """(revision in the database, newest revision in migrations/)."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return current, head


def password_hasher(settings: Settings) -> PasswordHasher:
    """argon2id with the configured cost (RFC 9106 low-memory profile's shape)."""
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        hash_len=RFC_9106_LOW_MEMORY.hash_len,
        salt_len=RFC_9106_LOW_MEMORY.salt_len,
    )


class Lazy(Generic[T]):
    """A value made on first use, once, even when threads ask together; or one given."""

    def __init__(self, make: Callable[[], T], given: T | None = None) -> None:
        self._make = make
        self._value = given
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._make()
                value = self._value
        return value


class Instance:
    """What every use case needs: settings, database, keys, and the few costly objects made
    once per process (each on first use; tests pass their own to the constructor or to
    :func:`open_instance`)."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        sessions: sessionmaker[Session],
        keyring: Keyring,
        vault: Vault,
        hasher: PasswordHasher,
        leases: LeaseKeeper,
        receipt_signer: ReceiptSigner | None = None,
        noise: NoiseSource | None = None,
        match_index: MatchIndex | None = None,
        privacy_ledger: Ledger | None = None,
        dummy_hash: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.keyring = keyring
        self.vault = vault
        self.hasher = hasher
        self.leases = leases
        self._receipt_signer = Lazy(self._make_receipt_signer, receipt_signer)
        self._noise = Lazy(self._make_noise, noise)
        self._match_index = Lazy(self._make_match_index, match_index)
        self._privacy_ledger = Lazy(self._make_privacy_ledger, privacy_ledger)
        self._dummy_hash = Lazy(self._make_dummy_hash, dummy_hash)

    @property
    def receipt_signer(self) -> ReceiptSigner:
        """Signs consent receipts with the keyring's ``receipt_signing`` seed (Ed25519)."""
        return self._receipt_signer.get()

    @property
    def noise(self) -> NoiseSource:
        """The broker's OpenDP noise at ``broker_epsilon``."""
        return self._noise.get()

    @property
    def match_index(self) -> MatchIndex:
        """This process's in-memory broker index (filled on its first refresh)."""
        return self._match_index.get()

    @property
    def dummy_hash(self) -> str:
        """A password hash to verify against for unknown addresses, so timing reveals none."""
        return self._dummy_hash.get()

    def _make_receipt_signer(self) -> ReceiptSigner:
        from infomediary.crypto.receipts import ReceiptSigner

        return ReceiptSigner(self.keyring.secret("receipt_signing"))

    def _make_noise(self) -> NoiseSource:
        from infomediary.broker.noise import NoiseSource

        return NoiseSource(self.settings.broker_epsilon)

    def _make_match_index(self) -> MatchIndex:
        from infomediary.broker.index import MatchIndex

        return MatchIndex(self.keyring.secret("blind_index"))

    @property
    def privacy_ledger(self) -> Ledger:
        """The per-customer privacy ledger in memory (folded from ``releases`` rows)."""
        return self._privacy_ledger.get()

    def _make_privacy_ledger(self) -> Ledger:
        from infomediary.broker.ledger import Ledger

        return Ledger(
            quantum_micro=round(self.noise.privacy_loss() * 1_000_000),
            cap_micro=round(self.settings.broker_customer_budget * 1_000_000),
        )

    def _make_dummy_hash(self) -> str:
        return self.hasher.hash("not a password of anyone's")

    def close(self) -> None:
        """Give up the lease and the connections (idempotent)."""
        self.leases.close()
        self.keyring.close()
        self.engine.dispose()


@dataclass(frozen=True)
class InitReport:
    created_folder: bool
    created_keyring: bool
    migrated_from: str | None
    migrated_to: str | None
    #: The app's role granted its rights (``INFOMEDIARY_ADMIN_DATABASE_URL`` set), else None.
    granted_role: str | None = None


def _has_encrypted_data(engine: Engine) -> bool:
    if "data_keys" not in inspect(engine).get_table_names():
        return False
    with Session(engine) as session:
        return session.execute(select(DataKey.customer_id).limit(1)).first() is not None


def initialise(settings: Settings) -> InitReport:
    """Create the instance folder, keyring and schema where missing; migrate to head. With
    ``admin_database_url`` it migrates and seeds as that role, then grants the app's role
    (:mod:`infomediary.db_roles`)."""
    folder = settings.instance_path
    created_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    keyring_path = settings.keyring_path
    engine = make_engine(settings.admin_database_url or settings.database_url)
    try:
        created_keyring = False
        if keyring_path.exists():
            keyring = configured_keyring(settings)
            keyring.ensure_named_keys()
        else:
            if _has_encrypted_data(engine):
                raise KeyringError(
                    f"the database holds encrypted data but there is no keyring at {keyring_path}; "
                    "restore it (a new keyring would make every profile unreadable)"
                )
            keyring = configured_keyring(settings, create=True)
            created_keyring = True
        before, _ = schema_revision(engine)
        command.upgrade(alembic_config(engine), "head")
        after, _ = schema_revision(engine)
        with make_sessionmaker(engine)() as session, session.begin():
            check_keyring(session, keyring)
            record_fingerprints(session, keyring)
            ensure_keyring_state(session, keyring, create=True)
            ensure_head(session)
            ensure_broker_state(session)
        keyring.close()
        granted = None
        if settings.admin_database_url:
            granted = grant_app_role(engine, settings.database_url, after)
        if engine.url.get_backend_name() == "sqlite" and engine.url.database:
            ensure_private(Path(engine.url.database))
        return InitReport(created_folder, created_keyring, before, after, granted)
    finally:
        engine.dispose()


def log_keys_of(keyring: Keyring) -> LogKeys:
    """The log's commitment key, from the keyring (``init`` adds it to an older keyring)."""
    try:
        return LogKeys(keyring.secret("log_commitment"))
    except KeyringError:
        raise KeyringError(
            "the keyring has no log commitment key: run `infomediary init` to add it"
        ) from None


def record_fingerprints(session: Session, keyring: Keyring) -> None:
    known = {row.name for row in session.execute(select(KeyFingerprint)).scalars()}
    for name, print_ in keyring.fingerprints().items():
        if name not in known:
            session.add(KeyFingerprint(name=name, fingerprint=print_))
    session.flush()


def check_keyring(session: Session, keyring: Keyring) -> None:
    """Refuse a keyring whose keys differ from those this database was written with."""
    ours = keyring.fingerprints()
    for row in session.execute(select(KeyFingerprint)).scalars():
        if row.name in ours and ours[row.name] != row.fingerprint:
            raise KeyringError(
                f"keyring key {row.name} does not match the one this database was written with: "
                "this keyring belongs to another instance"
            )
        if row.name.startswith("secret:") and row.name not in ours:
            raise KeyringError(f"keyring lacks {row.name}, which this database uses")
    used = session.execute(select(DataKey.kek_version).distinct()).scalars().all()
    missing = sorted(set(used) - set(keyring.kek_versions()))
    if missing:
        raise KeyringError(
            f"keyring lacks KEK version(s) {missing} that wrap customer data keys; "
            "restore them before starting"
        )


def open_instance(
    settings: Settings,
    *,
    receipt_signer: ReceiptSigner | None = None,
    noise: NoiseSource | None = None,
    match_index: MatchIndex | None = None,
) -> Instance:
    """Open an initialised instance, checking schema and keyring before anything runs.

    ``receipt_signer``, ``noise`` and ``match_index`` replace the ones the instance would make
    (tests script the noise; the benchmark brings a prebuilt index)."""
    if not settings.instance_path.is_dir():
        raise NotInitialised(
            f"instance folder {settings.instance_path} does not exist: run `infomediary init`"
        )
    engine = make_engine(settings.database_url)
    keyring: Keyring | None = None
    try:
        try:
            current, head = schema_revision(engine)
        except OperationalError as exc:
            where = engine.url.render_as_string(hide_password=True)
            raise NotInitialised(
                f"cannot reach the database at {where}: {type(exc.orig).__name__}"
            ) from None
        except ProgrammingError as exc:
            denied = permission_denied(exc)
            if denied is None:
                raise
            raise NotInitialised(
                f"{denied}: run `infomediary init` with INFOMEDIARY_ADMIN_DATABASE_URL set to "
                f"grant the role {engine.url.username} what the app needs"
            ) from None
        if current is None:
            raise NotInitialised("the database has no schema: run `infomediary init`")
        if current != head:
            raise NotInitialised(
                f"the database schema is at {current} but this version needs {head}: "
                "run `infomediary init` to migrate"
            )
        keyring = configured_keyring(settings)
        sessions = make_sessionmaker(engine)
        vault = Vault(keyring)
        install_wrap_guard(sessions, vault)
        sessions.configure(info={LOG_KEYS: log_keys_of(keyring)})
        leases = LeaseKeeper(engine, sessions, keyring, settings.key_lease_seconds)
        with sessions() as session, session.begin():
            check_keyring(session, keyring)
            ensure_keyring_state(session, keyring, create=False)
            leases.register(session)
        leases.start()
        return Instance(
            settings=settings,
            engine=engine,
            sessions=sessions,
            keyring=keyring,
            vault=vault,
            hasher=password_hasher(settings),
            leases=leases,
            receipt_signer=receipt_signer,
            noise=noise,
            match_index=match_index,
        )
    except Exception:
        if keyring is not None:
            keyring.close()
        engine.dispose()
        raise


def secret_key(settings: Settings, keyring: Keyring) -> str:
    """The configured secret, or in development one derived from the keyring (never a constant)."""
    return settings.secret_key or keyring.secret("session").hex()


def configured_keyring(settings: Settings, *, create: bool = False) -> Keyring:
    """The keyring file, or with ``key_provider=pkcs11`` the token beside it; ``create``
    makes a new one (``infomediary init``)."""
    path = settings.keyring_path
    if settings.key_provider == "pkcs11":
        from infomediary.crypto.pkcs11_keyring import Pkcs11Keyring

        return Pkcs11Keyring.open(
            path,
            settings.pkcs11_module,
            settings.pkcs11_token_label,
            settings.pkcs11_pin,
            create=create,
        )
    return FileKeyring.create(path) if create else FileKeyring.load(path)


def ensure_private(path: Path) -> None:
    if path.exists():
        os.chmod(path, 0o600)
