"""An instance: its folder, keyring, database and the objects every use case needs.

``initialise`` (behind ``infomediary init``) is idempotent: it creates what is missing and
migrates the schema. ``open_instance`` (behind the app factory and every other command)
refuses to start on a missing, foreign or incomplete keyring, so a wrong key shows up as a
clear error at start instead of as undecryptable data later. An open instance holds a lease
on the KEK versions it may wrap with (:mod:`infomediary.leases`) until it is closed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from infomediary.audit.log import ensure_head
from infomediary.broker.members import ensure_broker_state
from infomediary.crypto.keyring import FileKeyring, KeyringError
from infomediary.crypto.vault import Vault
from infomediary.db import make_engine, make_sessionmaker
from infomediary.leases import (
    DEFAULT_LEASE_SECONDS,
    LeaseKeeper,
    ensure_keyring_state,
    install_wrap_guard,
)
from infomediary.models import DataKey, KeyFingerprint

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


def password_hasher(config: dict[str, Any]) -> PasswordHasher:
    """argon2id with the configured cost (RFC 9106 low-memory profile's shape)."""
    return PasswordHasher(
        time_cost=int(config["ARGON2_TIME_COST"]),
        memory_cost=int(config["ARGON2_MEMORY_KIB"]),
        parallelism=int(config["ARGON2_PARALLELISM"]),
        hash_len=RFC_9106_LOW_MEMORY.hash_len,
        salt_len=RFC_9106_LOW_MEMORY.salt_len,
    )


@dataclass
class Instance:
    config: dict[str, Any]
    engine: Engine
    sessions: sessionmaker[Session]
    keyring: FileKeyring
    vault: Vault
    hasher: PasswordHasher
    leases: LeaseKeeper
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Give up the lease and the connections (idempotent)."""
        self.leases.close()
        self.engine.dispose()


@dataclass(frozen=True)
class InitReport:
    created_folder: bool
    created_keyring: bool
    migrated_from: str | None
    migrated_to: str | None


def _has_encrypted_data(engine: Engine) -> bool:
    if "data_keys" not in inspect(engine).get_table_names():
        return False
    with Session(engine) as session:
        return session.execute(select(DataKey.customer_id).limit(1)).first() is not None


def initialise(config: dict[str, Any]) -> InitReport:
    """Create the instance folder, keyring and schema where missing; migrate to head."""
    folder = Path(config["INSTANCE_PATH"])
    created_folder = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    keyring_path = Path(config["KEYRING_PATH"])
    engine = make_engine(config["DATABASE_URL"])
    try:
        created_keyring = False
        if keyring_path.exists():
            keyring = FileKeyring.load(keyring_path)
            keyring.ensure_named_keys()
        else:
            if _has_encrypted_data(engine):
                raise KeyringError(
                    f"the database holds encrypted data but there is no keyring at {keyring_path}; "
                    "restore it (a new keyring would make every profile unreadable)"
                )
            keyring = FileKeyring.create(keyring_path)
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
        if engine.url.get_backend_name() == "sqlite" and engine.url.database:
            ensure_private(Path(engine.url.database))
        return InitReport(created_folder, created_keyring, before, after)
    finally:
        engine.dispose()


def record_fingerprints(session: Session, keyring: FileKeyring) -> None:
    known = {row.name for row in session.execute(select(KeyFingerprint)).scalars()}
    for name, print_ in keyring.fingerprints().items():
        if name not in known:
            session.add(KeyFingerprint(name=name, fingerprint=print_))
    session.flush()


def check_keyring(session: Session, keyring: FileKeyring) -> None:
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


def open_instance(config: dict[str, Any]) -> Instance:
    """Open an initialised instance, checking schema and keyring before anything runs."""
    if not Path(config["INSTANCE_PATH"]).is_dir():
        raise NotInitialised(
            f"instance folder {config['INSTANCE_PATH']} does not exist: run `infomediary init`"
        )
    engine = make_engine(config["DATABASE_URL"])
    try:
        try:
            current, head = schema_revision(engine)
        except OperationalError as exc:
            where = engine.url.render_as_string(hide_password=True)
            raise NotInitialised(
                f"cannot reach the database at {where}: {type(exc.orig).__name__}"
            ) from None
        if current is None:
            raise NotInitialised("the database has no schema: run `infomediary init`")
        if current != head:
            raise NotInitialised(
                f"the database schema is at {current} but this version needs {head}: "
                "run `infomediary init` to migrate"
            )
        keyring = FileKeyring.load(Path(config["KEYRING_PATH"]))
        sessions = make_sessionmaker(engine)
        vault = Vault(keyring)
        install_wrap_guard(sessions, vault)
        seconds = float(config.get("KEY_LEASE_SECONDS") or DEFAULT_LEASE_SECONDS)
        leases = LeaseKeeper(engine, sessions, keyring, seconds)
        with sessions() as session, session.begin():
            check_keyring(session, keyring)
            ensure_keyring_state(session, keyring, create=False)
            leases.register(session)
        leases.start()
        return Instance(
            config=config,
            engine=engine,
            sessions=sessions,
            keyring=keyring,
            vault=vault,
            hasher=password_hasher(config),
            leases=leases,
        )
    except Exception:
        engine.dispose()
        raise


def secret_key(config: dict[str, Any], keyring: FileKeyring) -> str:
    """The configured secret, or in development one derived from the keyring (never a constant)."""
    if config.get("SECRET_KEY"):
        return str(config["SECRET_KEY"])
    return keyring.secret("session").hex()


def ensure_private(path: Path) -> None:
    if path.exists():
        os.chmod(path, 0o600)
