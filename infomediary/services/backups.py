"""Backups of the database, kept apart from the keys, and their restore and verification.

A backup is a folder: one consistent copy of the database (SQLite: the online backup API,
consistent while servers write; PostgreSQL: ``pg_dump --format=custom`` of an exported
snapshot, read as the schema's owner) and ``manifest.json``, written last, which says what
the copy holds: the schema revision, the access log's size and Merkle root, the public
fingerprints of the keys it was written with, and a SHA-256 of each file. The keyring is
never in it: every personal value in the copy is sealed under data keys that only the
keyring's KEKs unwrap, so a data backup that leaks without its keys reveals nothing personal.
The keys go to another medium (:func:`copy_keyring`, which refuses a backup folder).

A restore checks before it writes: the files against the manifest, the keyring against the
manifest's fingerprints (another instance's keyring is refused before the database is
touched), and a database that already holds data is left alone unless forced. Afterwards
the restored revision, keys and log head are read back and compared with the manifest.

:func:`verify` is what proves a restore usable: every customer's data key unwraps, every
profile opens, and the log verifies against checkpoints kept outside (the same pass as
``audit verify``). It decrypts in memory, returns counts and customer ids only, and writes
nothing (no log entry either: no value leaves the process, and a verification that appended
to the log it checks would change what it reports).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, inspect, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from infomediary.audit.log import current_root
from infomediary.config import Settings
from infomediary.crypto.keyring import FileKeyring, Keyring, KeyringError
from infomediary.crypto.vault import DecryptionError
from infomediary.db import begin_snapshot, make_engine, normalise_url
from infomediary.db_roles import RoleError, grant_app_role
from infomediary.errors import NotFound
from infomediary.instance import (
    Instance,
    check_keyring,
    configured_keyring,
    ensure_private,
    schema_revision,
)
from infomediary.models import Customer, DataKey, Profile
from infomediary.services import checkpoints
from infomediary.services.customer_keys import customer_key
from infomediary.services.profiles import decrypt_profile
from infomediary.services.uow import unit_of_work

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
#: How long pg_dump or pg_restore may run before the command gives up.
TOOL_TIMEOUT = 6 * 3600
#: Customers opened per query while verifying.
BATCH = 500
#: Customer ids named in a verification's failures (the count is always complete).
NAMED_FAILURES = 20
CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup, restore or verification that cannot go on; the message is one line."""


@dataclass(frozen=True, slots=True)
class Manifest:
    created_at: str
    backend: str
    revision: str | None
    fingerprints: dict[str, str]
    kek_versions: list[int]
    log_size: int
    log_root: str
    customers: int
    files: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created_at": self.created_at,
            "backend": self.backend,
            "revision": self.revision,
            "fingerprints": self.fingerprints,
            "kek_versions": self.kek_versions,
            "log": {"size": self.log_size, "root": self.log_root},
            "customers": self.customers,
            "files": self.files,
        }


@dataclass(frozen=True, slots=True)
class _State:
    """What the manifest says of the database, read from one consistent state of it."""

    revision: str | None
    kek_versions: list[int]
    log_size: int
    log_root: bytes
    customers: int


# -- where things are -------------------------------------------------------------------------


def backend_of(url: str) -> str:
    return normalise_url(url).get_backend_name()


def owner_url(settings: Settings) -> str:
    """The schema owner's URL: a dump or restore needs every table, and to drop and create them."""
    return settings.admin_database_url or settings.database_url


def _sqlite_path(url: str) -> Path:
    database = normalise_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment that carries it (never argv)."""
    parsed: URL = normalise_url(url).set(drivername="postgresql")
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
        parsed = parsed.set(password=None)
    return parsed.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is needed for a PostgreSQL backup and is not on PATH "
            "(install the PostgreSQL client of the server's major version)"
        )
    return found


def _run(argv: list[str], env: dict[str, str]) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - argv is ours, no shell
            argv, env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{Path(argv[0]).name} did not finish in {TOOL_TIMEOUT} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise BackupError(f"{Path(argv[0]).name} failed: {last}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# -- creating ---------------------------------------------------------------------------------


def _read_state(session: Session) -> _State:
    revision = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    size, root = current_root(session)
    keks = sorted(int(v) for v in session.execute(select(DataKey.kek_version).distinct()).scalars())
    customers = session.execute(select(func.count()).select_from(Customer)).scalar_one()
    return _State(revision, keks, size, root, int(customers))


def _prepare(dest: Path, settings: Settings) -> Path:
    dest = dest.expanduser().resolve()
    if _inside(dest, settings.instance_path) or _inside(settings.instance_path, dest):
        raise BackupError(
            f"{dest} overlaps the instance folder, which holds the keyring: "
            "keep data backups apart from the keys"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists and is not an empty folder: back up to a new one")
    try:
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BackupError(f"cannot create {dest}: {exc.strerror or type(exc).__name__}") from None
    return dest


def _copy_sqlite(settings: Settings, target: Path) -> _State:
    source = _sqlite_path(settings.database_url)
    # the online backup API copies a consistent state even while others write (a write during
    # the copy restarts it); the copy then leaves WAL mode, so it is one self-contained file
    with (
        closing(sqlite3.connect(source, timeout=30)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    ensure_private(target)
    engine = create_engine(f"sqlite:///{target}")
    try:
        with Session(engine) as session, session.begin():
            return _read_state(session)
    finally:
        engine.dispose()


def _dump_postgres(settings: Settings, target: Path) -> _State:
    pg_dump = _tool("pg_dump")
    url = owner_url(settings)
    uri, env = _libpq(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.execute(text("SET TRANSACTION READ ONLY"))
                # pg_dump reads the very snapshot the manifest is read from, so the head, the
                # revision and the keys it names are those of the dump
                snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                with Session(bind=conn) as session:
                    state = _read_state(session)
                _run(
                    [
                        pg_dump,
                        "--format=custom",
                        f"--snapshot={snapshot}",
                        "--file",
                        str(target),
                        "--dbname",
                        uri,
                    ],
                    env,
                )
    finally:
        engine.dispose()
    ensure_private(target)
    return state


def create(inst: Instance, dest: Path) -> Manifest:
    """Write a consistent copy of the instance's database and its manifest to ``dest`` (a new
    or empty folder outside the instance folder); the keyring stays out of it."""
    settings = inst.settings
    backend = backend_of(settings.database_url)
    dest = _prepare(dest, settings)
    name = SQLITE_FILE if backend == "sqlite" else PG_FILE
    target = dest / name
    if backend == "sqlite":
        state = _copy_sqlite(settings, target)
    elif backend == "postgresql":
        state = _dump_postgres(settings, target)
    else:
        raise BackupError(f"no backup for a {backend} database")
    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        backend=backend,
        revision=state.revision,
        fingerprints=inst.keyring.fingerprints(),
        kek_versions=state.kek_versions,
        log_size=state.log_size,
        log_root=state.log_root.hex(),
        customers=state.customers,
        files={name: {"sha256": _sha256(target), "bytes": target.stat().st_size}},
    )
    partial = dest / f".{MANIFEST}.tmp"
    partial.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n", "utf-8")
    os.chmod(partial, 0o600)
    partial.replace(dest / MANIFEST)  # last: a folder without a manifest is no backup
    return manifest


def copy_keyring(settings: Settings, dest: Path) -> Path:
    """Copy the keyring file to ``dest``, a folder on another medium than the data backups:
    never a backup folder, nor the instance folder. Written whole (0600) or not at all."""
    dest = dest.expanduser().resolve()
    if any((folder / MANIFEST).exists() for folder in (dest, *dest.parents)):
        raise BackupError(
            f"{dest} holds a data backup: keep the keys on another medium than the data"
        )
    if _inside(dest, settings.instance_path):
        raise BackupError(f"{dest} is in the instance folder: copy the keys to another medium")
    source = settings.keyring_path
    # a keyring that does not load is not worth keeping; beside a PKCS#11 token the file
    # holds the named secrets only, and the token's KEKs are backed up by the token's means
    FileKeyring.load(source, holds_keks=settings.key_provider != "pkcs11")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = dest / f"keyring-{stamp}.json"
    try:
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists():
            raise BackupError(f"{target} exists already")
        partial = dest / f".{target.name}.tmp"
        partial.write_bytes(source.read_bytes())
        os.chmod(partial, 0o600)
        partial.replace(target)
    except OSError as exc:
        raise BackupError(f"cannot write to {dest}: {exc.strerror or type(exc).__name__}") from None
    return target


# -- reading a backup -------------------------------------------------------------------------


def read_manifest(src: Path) -> Manifest:
    """The manifest of the backup in ``src``, checked for shape; one line if it is none."""
    path = src / MANIFEST
    if not src.is_dir():
        raise BackupError(f"{src} is not a folder")
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{src} is not a backup: it has no {MANIFEST}") from None
    except (OSError, UnicodeDecodeError, ValueError):
        raise BackupError(f"{src} is not a backup: its {MANIFEST} is not JSON") from None
    try:
        if doc["format"] != FORMAT:
            raise BackupError(
                f"{src}: backup format {doc['format']!r} is not one this version reads"
            )
        manifest = Manifest(
            created_at=str(doc["created_at"]),
            backend=str(doc["backend"]),
            revision=doc["revision"],
            fingerprints={str(k): str(v) for k, v in doc["fingerprints"].items()},
            kek_versions=[int(v) for v in doc["kek_versions"]],
            log_size=int(doc["log"]["size"]),
            log_root=str(doc["log"]["root"]),
            customers=int(doc["customers"]),
            files={str(k): dict(v) for k, v in doc["files"].items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise BackupError(
            f"{src} is not a backup: its {MANIFEST} lacks what a manifest holds"
        ) from None
    if manifest.backend not in ("sqlite", "postgresql") or len(manifest.files) != 1:
        raise BackupError(f"{src} is not a backup: its {MANIFEST} names no database file")
    return manifest


def check_files(src: Path, manifest: Manifest) -> Path:
    """The backup's database file, after its checksum agrees with the manifest's."""
    ((name, meta),) = manifest.files.items()
    path = src / name
    if Path(name).name != name or not path.is_file():
        raise BackupError(f"{src}: the database file {name} is missing")
    if _sha256(path) != meta.get("sha256"):
        raise BackupError(f"{src}: {name} does not match its checksum in the manifest (damaged)")
    return path


def check_keys(keyring: Keyring, manifest: Manifest) -> None:
    """Refuse a keyring that is not the one the backup was written with (before any write)."""
    ours = keyring.fingerprints()
    for name, print_ in sorted(manifest.fingerprints.items()):
        if name in ours and ours[name] != print_:
            raise BackupError(
                f"the {keyring.where} is not this backup's: key {name} differs "
                "(another instance's keyring?); restore the keyring kept with this backup's keys"
            )
        if name.startswith("secret:") and name not in ours:
            raise BackupError(f"the {keyring.where} lacks {name}, which this backup uses")
    missing = sorted(set(manifest.kek_versions) - set(keyring.kek_versions()))
    if missing:
        raise BackupError(
            f"the {keyring.where} lacks KEK version(s) {missing}, which wrap this "
            "backup's data keys: restore the keyring as it was when the backup was made"
        )


# -- restoring --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreReport:
    backend: str
    revision: str | None
    head: str | None
    log_size: int
    customers: int
    granted_role: str | None = None


def _has_data(engine: Engine) -> bool:
    tables = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        for table in ("customers", "access_log"):
            if table in tables and conn.execute(text(f"SELECT 1 FROM {table} LIMIT 1")).first():  # noqa: S608
                return True
    return False


def _restore_sqlite(path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # through SQLite itself, not a file copy: a WAL the target still has is handled, and a
    # reader sees the old database or the new one, never half of each
    with closing(sqlite3.connect(path)) as src, closing(sqlite3.connect(target, timeout=30)) as dst:
        src.backup(dst)
    ensure_private(target)


def _restore_postgres(settings: Settings, path: Path) -> None:
    pg_restore = _tool("pg_restore")
    uri, env = _libpq(owner_url(settings))
    # one transaction: a restore that fails leaves the database as it was. Owners and grants
    # are this server's: the connecting owner owns what it creates, and the app's role is
    # granted again as `init` grants it
    _run(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--dbname",
            uri,
            str(path),
        ],
        env,
    )


def restore(settings: Settings, src: Path, *, force: bool = False) -> RestoreReport:
    """Restore the backup in ``src`` into the configured database, after checking its files,
    the keyring (which must be restored first, from where the keys are kept) and that the
    database holds no data (unless ``force``); then read back what the manifest promised."""
    src = src.expanduser().resolve()
    manifest = read_manifest(src)
    path = check_files(src, manifest)
    backend = backend_of(settings.database_url)
    if backend != manifest.backend:
        raise BackupError(
            f"{src} is a {manifest.backend} backup and the configured database is {backend}"
        )
    try:
        keyring = configured_keyring(settings)
    except KeyringError as exc:
        raise BackupError(str(exc)) from None
    try:
        check_keys(keyring, manifest)
        return _restore(settings, manifest, path, keyring, force=force)
    finally:
        keyring.close()


def _restore(
    settings: Settings, manifest: Manifest, path: Path, keyring: Keyring, *, force: bool
) -> RestoreReport:
    backend = manifest.backend
    target = _sqlite_path(settings.database_url) if backend == "sqlite" else None
    if target is not None and not target.exists():
        # the log of a deleted database would be replayed onto the new one
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
    engine = make_engine(owner_url(settings))
    try:
        try:
            holds_data = _has_data(engine)
        except OperationalError as exc:
            where = engine.url.render_as_string(hide_password=True)
            raise BackupError(
                f"cannot reach the database at {where}: {type(exc.orig).__name__}"
            ) from None
        if not force and holds_data:
            where = engine.url.render_as_string(hide_password=True)
            raise BackupError(
                f"the database at {where} holds data: restore into an empty one, "
                "or pass --force to replace it"
            )
        if target is not None:
            engine.dispose()
            _restore_sqlite(path, target)
        else:
            _restore_postgres(settings, path)
        engine.dispose()
        revision, head = schema_revision(engine)
        if revision != manifest.revision:
            raise BackupError(
                f"the restored schema is at {revision}, the manifest says {manifest.revision}"
            )
        with Session(engine) as session, session.begin():
            try:
                check_keyring(session, keyring)
            except KeyringError as exc:
                raise BackupError(str(exc)) from None
            state = _read_state(session)
        if (state.log_size, state.log_root.hex()) != (manifest.log_size, manifest.log_root):
            raise BackupError(
                f"the restored access log holds {state.log_size} entries with another root "
                f"than the {manifest.log_size} the manifest names"
            )
        granted = None
        if settings.admin_database_url and revision == head:
            try:
                granted = grant_app_role(engine, settings.database_url, revision)
            except RoleError as exc:
                raise BackupError(f"restored, but the app's role is not granted: {exc}") from None
        return RestoreReport(backend, revision, head, state.log_size, state.customers, granted)
    finally:
        engine.dispose()


# -- verifying --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    customers: int
    #: Customers whose data key did not unwrap or whose profile did not open.
    failed: int
    #: The first :data:`NAMED_FAILURES` of them, by id (never a value of theirs).
    failed_ids: list[str]
    log: checkpoints.LogReport

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.log.result.ok


def _opens(session: Session, inst: Instance, customer: Customer, profile: Profile | None) -> bool:
    try:
        key = customer_key(session, inst, customer.id)
        if profile is None:
            inst.vault.open(key, "customers", customer.id, "email", customer.email)
        else:
            decrypt_profile(inst, key, customer, profile)
    except (NotFound, DecryptionError, KeyringError, ValueError):
        return False  # NotFound: no data key row; ValueError: a field that is not JSON
    return True


@contextmanager
def _snapshot(session: Session) -> Iterator[None]:
    with unit_of_work(session):
        begin_snapshot(session)  # one state, without holding writers up
        yield


def open_every_customer(session: Session, inst: Instance) -> tuple[int, int, list[str]]:
    """(customers, failures, up to :data:`NAMED_FAILURES` failing ids): every data key
    unwrapped and every profile opened, in memory, in batches of one snapshot."""
    total = failed = 0
    names: list[str] = []
    after = ""
    with _snapshot(session):
        while True:
            rows = session.execute(
                select(Customer, Profile)
                .outerjoin(Profile, Profile.customer_id == Customer.id)
                .where(Customer.id > after)
                .order_by(Customer.id)
                .limit(BATCH)
            ).all()
            if not rows:
                break
            for customer, profile in rows:
                total += 1
                if not _opens(session, inst, customer, profile):
                    failed += 1
                    if len(names) < NAMED_FAILURES:
                        names.append(customer.id)
            after = rows[-1][0].id
            session.expunge_all()
    return total, failed, names


def verify(session: Session, inst: Instance, kept: tuple[checkpoints.Kept, ...]) -> VerifyReport:
    """Every customer decrypts and the log verifies against every checkpoint in ``kept``."""
    total, failed, names = open_every_customer(session, inst)
    log = checkpoints.verify_log(session, inst, kept)
    return VerifyReport(total, failed, names, log)
