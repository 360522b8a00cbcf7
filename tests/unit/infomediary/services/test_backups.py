"""Backups: a consistent copy with its manifest and never the keys; a restore that checks
the keys before it writes; a verification that opens every customer and the log."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from infomediary.audit.log import current_root
from infomediary.config import Settings, load_config
from infomediary.crypto.keyring import FileKeyring
from infomediary.db import make_engine, normalise_url
from infomediary.instance import Instance, initialise, open_instance
from infomediary.models import DataKey, Profile
from infomediary.services import backups, checkpoints
from tests.conftest import FAST_ARGON2, PG_ENV, need_service
from tests.factories import make_customer
from tests.ops.restore_drill import drop_database, recreate_database

PROFILE = {"locality": "Lyon", "birth_year": 1970, "interests": ["books"]}


def seed(inst: Instance, count: int = 3) -> list[str]:
    ids = [make_customer(inst, profile=PROFILE) for _ in range(count)]
    with inst.sessions() as session:
        checkpoints.sign(session, inst)
    return ids


@pytest.fixture
def target(inst: Instance, tmp_path: Path) -> Iterator[Settings]:
    """Another instance to restore into: its own folder and an empty database of the same
    backend, with a copy of the source instance's keyring (as restored from the keys' medium)."""
    folder = tmp_path / "restored-instance"
    folder.mkdir(mode=0o700)
    shutil.copyfile(inst.settings.keyring_path, folder / "keyring.json")
    os.chmod(folder / "keyring.json", 0o600)
    if inst.engine.dialect.name == "sqlite":
        url = f"sqlite:///{folder / 'restored.sqlite3'}"
    else:
        name = f"drill_unit_{secrets.token_hex(4)}"
        parsed = normalise_url(inst.settings.database_url).set(database=name)
        url = parsed.render_as_string(hide_password=False)
        recreate_database(url, maintenance=str(normalise_url(inst.settings.database_url).database))
    settings = load_config(
        {"INSTANCE_PATH": str(folder), "DATABASE_URL": url, **FAST_ARGON2}, environ={}
    )
    try:
        yield settings
    finally:
        if inst.engine.dialect.name != "sqlite":
            drop_database(url, maintenance=str(normalise_url(inst.settings.database_url).database))


def test_create_writes_a_copy_and_its_manifest_and_never_the_keys(
    inst: Instance, tmp_path: Path
) -> None:
    seed(inst)
    manifest = backups.create(inst, tmp_path / "backup")
    folder = tmp_path / "backup"
    names = sorted(p.name for p in folder.iterdir())
    expected = backups.SQLITE_FILE if inst.engine.dialect.name == "sqlite" else backups.PG_FILE
    assert names == sorted([expected, backups.MANIFEST])
    doc = json.loads((folder / backups.MANIFEST).read_text())
    assert doc["format"] == backups.FORMAT
    assert doc["backend"] == inst.engine.dialect.name
    assert doc["customers"] == 3
    assert doc["fingerprints"] == inst.keyring.fingerprints()
    with inst.sessions() as session:
        in_use = session.execute(
            select(DataKey.kek_version).distinct().order_by(DataKey.kek_version)
        ).scalars()
        assert doc["kek_versions"] == list(in_use)
    with inst.sessions() as session:
        size, root = current_root(session)
    assert (
        (doc["log"]["size"], doc["log"]["root"])
        == (size, root.hex())
        == (
            manifest.log_size,
            manifest.log_root,
        )
    )
    data = (folder / expected).read_bytes()
    assert doc["files"][expected]["sha256"] == hashlib.sha256(data).hexdigest()
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # no key is in any file of it: not the keyring's bytes, not one key
    ring = json.loads(inst.settings.keyring_path.read_text())
    keys = [*ring["keks"].values(), *ring["secrets"].values()]
    for path in folder.iterdir():
        content = path.read_bytes()
        assert not any(key.encode() in content for key in keys)
        assert b'"keks"' not in content


def test_create_refuses_a_folder_in_use_or_beside_the_keyring(
    inst: Instance, tmp_path: Path
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x")
    with pytest.raises(backups.BackupError, match="not an empty folder"):
        backups.create(inst, used)
    with pytest.raises(backups.BackupError, match="instance folder"):
        backups.create(inst, inst.settings.instance_path / "backups")
    assert not (inst.settings.instance_path / "backups").exists()


def test_keys_go_elsewhere_than_data(inst: Instance, tmp_path: Path) -> None:
    seed(inst, 1)
    backups.create(inst, tmp_path / "backup")
    with pytest.raises(backups.BackupError, match="holds a data backup"):
        backups.copy_keyring(inst.settings, tmp_path / "backup")
    with pytest.raises(backups.BackupError, match="holds a data backup"):
        backups.copy_keyring(inst.settings, tmp_path / "backup" / "keys")
    with pytest.raises(backups.BackupError, match="instance folder"):
        backups.copy_keyring(inst.settings, inst.settings.instance_path / "copy")
    written = backups.copy_keyring(inst.settings, tmp_path / "keys")
    assert written.read_bytes() == inst.settings.keyring_path.read_bytes()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert FileKeyring.load(written).fingerprints() == inst.keyring.fingerprints()


def test_a_folder_that_is_no_backup_is_named_so(tmp_path: Path) -> None:
    with pytest.raises(backups.BackupError, match="is not a folder"):
        backups.read_manifest(tmp_path / "missing")
    with pytest.raises(backups.BackupError, match=r"has no manifest\.json"):
        backups.read_manifest(tmp_path)
    (tmp_path / backups.MANIFEST).write_text("not json")
    with pytest.raises(backups.BackupError, match="not JSON"):
        backups.read_manifest(tmp_path)
    (tmp_path / backups.MANIFEST).write_text('{"format": 1}')
    with pytest.raises(backups.BackupError, match="lacks what a manifest holds"):
        backups.read_manifest(tmp_path)


def test_a_damaged_copy_is_refused(inst: Instance, tmp_path: Path) -> None:
    seed(inst, 1)
    manifest = backups.create(inst, tmp_path / "backup")
    ((name, _),) = manifest.files.items()
    path = tmp_path / "backup" / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(backups.BackupError, match="does not match its checksum"):
        backups.check_files(tmp_path / "backup", backups.read_manifest(tmp_path / "backup"))


def test_another_keyring_or_one_without_a_kek_in_use_is_refused(
    inst: Instance, tmp_path: Path
) -> None:
    seed(inst, 1)
    manifest = backups.create(inst, tmp_path / "backup")
    backups.check_keys(inst.keyring, manifest)  # its own keyring passes
    other = FileKeyring.create(tmp_path / "other.json")
    with pytest.raises(backups.BackupError, match=r"is not this backup's: key \S+ differs"):
        backups.check_keys(other, manifest)
    absent = max(inst.keyring.kek_versions()) + 100
    later = dataclasses.replace(manifest, kek_versions=[*manifest.kek_versions, absent])
    with pytest.raises(backups.BackupError, match=rf"lacks KEK version\(s\) \[{absent}\]"):
        backups.check_keys(inst.keyring, later)


def test_restore_round_trip_then_every_customer_decrypts(
    inst: Instance, target: Settings, tmp_path: Path
) -> None:
    ids = seed(inst)
    manifest = backups.create(inst, tmp_path / "backup")
    with inst.sessions() as session:
        kept = checkpoints.Kept("kept", checkpoints.latest_note(session))
    report = backups.restore(target, tmp_path / "backup")
    assert (report.log_size, report.customers) == (manifest.log_size, 3)
    assert report.revision == report.head == manifest.revision
    restored = open_instance(target)
    try:
        with restored.sessions() as session:
            proved = backups.verify(session, restored, (kept,))
            assert current_root(session) == (manifest.log_size, bytes.fromhex(manifest.log_root))
    finally:
        restored.close()
    assert proved.ok, proved
    assert (proved.customers, proved.failed, proved.failed_ids) == (len(ids), 0, [])
    assert proved.log.kept == 1
    # a second restore over the data it brought is refused, and allowed when forced
    with pytest.raises(backups.BackupError, match="holds data"):
        backups.restore(target, tmp_path / "backup")
    assert backups.restore(target, tmp_path / "backup", force=True).customers == 3


def test_restore_with_the_wrong_keyring_writes_nothing(
    inst: Instance, target: Settings, tmp_path: Path
) -> None:
    seed(inst, 1)
    backups.create(inst, tmp_path / "backup")
    target.keyring_path.unlink()
    FileKeyring.create(target.keyring_path)
    with pytest.raises(backups.BackupError, match="not this backup's"):
        backups.restore(target, tmp_path / "backup")
    engine = make_engine(target.database_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_restore_refuses_another_backend(inst: Instance, target: Settings, tmp_path: Path) -> None:
    seed(inst, 1)
    backups.create(inst, tmp_path / "backup")
    manifest_path = tmp_path / "backup" / backups.MANIFEST
    doc = json.loads(manifest_path.read_text())
    doc["backend"] = "postgresql" if doc["backend"] == "sqlite" else "sqlite"
    manifest_path.write_text(json.dumps(doc))
    with pytest.raises(backups.BackupError, match="backup and the configured database is"):
        backups.restore(target, tmp_path / "backup")


def test_verify_counts_a_customer_who_does_not_decrypt_by_id(inst: Instance) -> None:
    ids = seed(inst)
    broken = sorted(ids)[1]
    with inst.sessions() as session, session.begin():
        blob = session.execute(
            select(Profile.locality).where(Profile.customer_id == broken)
        ).scalar_one()
        # another customer's sealed locality in its place: it does not authenticate here
        session.execute(
            update(Profile).where(Profile.customer_id == sorted(ids)[0]).values(locality=blob)
        )
    with inst.sessions() as session:
        report = backups.verify(session, inst, ())
    assert not report.ok
    assert (report.customers, report.failed, report.failed_ids) == (3, 1, [sorted(ids)[0]])
    assert report.log.result.ok


def test_verify_fails_on_a_log_row_altered(inst: Instance) -> None:
    seed(inst, 2)
    with inst.sessions() as session, session.begin():
        session.execute(text("UPDATE access_log SET purpose = 'marketing' WHERE seq = 1"))
    with inst.sessions() as session:
        report = backups.verify(session, inst, ())
    assert report.failed == 0
    assert not report.ok
    assert not report.log.result.ok


def test_pg_dump_missing_is_one_line(
    inst: Instance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if inst.engine.dialect.name == "sqlite":
        pytest.skip("SQLite backups need no tool: the sqlite3 module's backup API")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(backups.BackupError, match="pg_dump is needed"):
        backups.create(inst, tmp_path / "backup")


APP_ROLE = os.environ.get("INFOMEDIARY_TEST_APP_ROLE", "infomediary_app")


@pytest.fixture(params=["postgresql"])
def two_role_server(request: pytest.FixtureRequest) -> URL:
    """The PostgreSQL server of the tests, with the app's login role present."""
    raw = os.environ.get(PG_ENV)
    if not raw:
        need_service(f"the two-role restore needs PostgreSQL at {PG_ENV}")
        raise AssertionError("unreachable")
    server = make_engine(raw, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            quoted = server.dialect.identifier_preparer.quote(APP_ROLE)
            conn.execute(
                text(
                    f"DO $$ BEGIN CREATE ROLE {quoted} LOGIN; "
                    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
                )
            )
    except DBAPIError as exc:
        need_service(f"PostgreSQL at {PG_ENV} cannot make a role: {type(exc).__name__}")
    finally:
        server.dispose()
    return normalise_url(raw)


def _two_roles(server: URL, name: str, folder: Path) -> Settings:
    owner = server.set(database=name).render_as_string(hide_password=False)
    app = server.set(database=name, username=APP_ROLE, password=None)
    recreate_database(owner, maintenance=str(server.database))
    return load_config(
        {
            "INSTANCE_PATH": str(folder),
            "DATABASE_URL": app.render_as_string(hide_password=False),
            "ADMIN_DATABASE_URL": owner,
            **FAST_ARGON2,
        },
        environ={},
    )


def test_a_restore_grants_the_apps_role_as_init_does(two_role_server: URL, tmp_path: Path) -> None:
    stamp = secrets.token_hex(4)
    source = _two_roles(two_role_server, f"drill_src_{stamp}", tmp_path / "source")
    target = _two_roles(two_role_server, f"drill_dst_{stamp}", tmp_path / "target")
    try:
        initialise(source)
        inst = open_instance(source)
        try:
            seed(inst, 2)
            manifest = backups.create(inst, tmp_path / "backup")
        finally:
            inst.close()
        (tmp_path / "target").mkdir(mode=0o700)
        shutil.copyfile(source.keyring_path, target.keyring_path)
        os.chmod(target.keyring_path, 0o600)
        report = backups.restore(target, tmp_path / "backup")
        assert report.granted_role == APP_ROLE
        assert report.log_size == manifest.log_size
        restored = open_instance(target)  # as the app's role: it reads and appends
        try:
            with restored.sessions() as session:
                assert backups.verify(session, restored, ()).ok
            with pytest.raises(DBAPIError) as refused, restored.engine.begin() as conn:
                conn.execute(text("UPDATE access_log SET purpose = 'marketing'"))
            assert getattr(refused.value.orig, "sqlstate", None) == "42501"
        finally:
            restored.close()
    finally:
        drop_database(source.admin_database_url, maintenance=str(two_role_server.database))
        drop_database(target.admin_database_url, maintenance=str(two_role_server.database))
