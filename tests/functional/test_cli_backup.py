"""``infomediary backup``: create, keys, restore and verify through the command, and their
one-line failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from infomediary.cli import main
from infomediary.crypto.keyring import FileKeyring
from infomediary.instance import Instance
from infomediary.services import checkpoints
from tests.factories import make_customer


@pytest.fixture
def env(base_config, inst, monkeypatch) -> dict[str, str]:
    values = {
        "INFOMEDIARY_INSTANCE_PATH": str(base_config.instance_path),
        "INFOMEDIARY_DATABASE_URL": base_config.database_url,
        "INFOMEDIARY_ARGON2_TIME_COST": "1",
        "INFOMEDIARY_ARGON2_MEMORY_KIB": "1024",
        "INFOMEDIARY_ARGON2_PARALLELISM": "1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def one_line_failure(code: int, out: str, *words: str) -> None:
    assert code == 1, out
    assert len(out.strip().splitlines()) == 1, out
    assert out.startswith("error: "), out
    assert "Traceback" not in out
    for word in words:
        assert word in out, out


def seeded(inst: Instance, count: int = 2) -> None:
    for _ in range(count):
        make_customer(inst, profile={"locality": "Ghent"})


def test_create_then_verify_against_a_kept_checkpoint(env, inst: Instance, tmp_path: Path) -> None:
    seeded(inst)
    code, out = run("audit", "checkpoint", "--out", str(tmp_path / "witness"))
    assert code == 0, out
    (kept,) = (tmp_path / "witness").iterdir()
    code, out = run("backup", "create", str(tmp_path / "backup"), "--json")
    assert code == 0, out
    made = json.loads(out)
    assert made["customers"] == 2
    assert made["fingerprints"] == inst.keyring.fingerprints()
    assert not any("keyring" in p.name for p in (tmp_path / "backup").iterdir())
    code, out = run("backup", "verify", "--checkpoint", str(kept))
    assert code == 0, out
    assert "all 2 customers decrypt" in out
    assert "1 kept checkpoint(s) agree" in out


def test_verify_with_another_instances_checkpoint_fails(
    env, inst: Instance, tmp_path: Path
) -> None:
    seeded(inst, 1)
    with inst.sessions() as session:
        ours = checkpoints.sign(session, inst).checkpoint.note
    # the same text signed by another key: what another instance's checkpoint looks like
    lines = ours.splitlines()
    forged = tmp_path / "forged"
    forged.write_text("\n".join(lines[:-1]) + "\n— localhost/log AAAAAAAA\n")
    code, out = run("backup", "verify", "--checkpoint", str(forged))
    one_line_failure(code, out, str(forged))


def test_missing_folder_and_not_a_backup_are_one_line(env, tmp_path: Path) -> None:
    code, out = run("backup", "restore", str(tmp_path / "nowhere"))
    one_line_failure(code, out, "is not a folder")
    code, out = run("backup", "restore", str(tmp_path))
    one_line_failure(code, out, "is not a backup")
    assert run("backup", "restore")[0] == 2  # DIR is required: click's usage error
    assert run("backup", "create")[0] == 2


def test_restore_over_data_is_refused_without_force(env, inst: Instance, tmp_path: Path) -> None:
    seeded(inst, 1)
    assert run("backup", "create", str(tmp_path / "backup"))[0] == 0
    code, out = run("backup", "restore", str(tmp_path / "backup"))
    one_line_failure(code, out, "holds data", "--force")


def test_restore_with_the_wrong_keyring_is_one_line(
    env, inst: Instance, tmp_path: Path, monkeypatch
) -> None:
    seeded(inst, 1)
    assert run("backup", "create", str(tmp_path / "backup"))[0] == 0
    other = tmp_path / "other-instance"
    other.mkdir(mode=0o700)
    FileKeyring.create(other / "keyring.json")
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(other))
    if inst.engine.dialect.name == "sqlite":
        monkeypatch.setenv("INFOMEDIARY_DATABASE_URL", f"sqlite:///{other / 'db.sqlite3'}")
    code, out = run("backup", "restore", "--force", str(tmp_path / "backup"))
    one_line_failure(code, out, "is not this backup's", "differs")


def test_keys_are_copied_apart_and_never_into_a_data_backup(
    env, inst: Instance, tmp_path: Path
) -> None:
    seeded(inst, 1)
    assert run("backup", "create", str(tmp_path / "backup"))[0] == 0
    code, out = run("backup", "keys", str(tmp_path / "backup"))
    one_line_failure(code, out, "holds a data backup")
    code, out = run("backup", "keys", str(tmp_path / "keys"), "--json")
    assert code == 0, out
    written = Path(json.loads(out)["file"])
    assert written.parent == (tmp_path / "keys").resolve()
    assert written.read_bytes() == inst.settings.keyring_path.read_bytes()


def test_pg_dump_missing_is_one_line(env, inst: Instance, tmp_path: Path, monkeypatch) -> None:
    if inst.engine.dialect.name == "sqlite":
        pytest.skip("SQLite backups need no tool: the sqlite3 module's backup API")
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    code, out = run("backup", "create", str(tmp_path / "backup"))
    one_line_failure(code, out, "pg_dump is needed")
    assert not (tmp_path / "backup" / "manifest.json").exists()
