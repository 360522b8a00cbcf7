"""The restore drill: back up, wipe, restore, and prove the restore is the instance it was.

Every step is the real ``infomediary`` command in a subprocess, configured as an operator
would (``INFOMEDIARY_INSTANCE_PATH``, ``INFOMEDIARY_DATABASE_URL``):

1. ``init`` and ``demo --customers N/2``: customers with sealed profiles, log entries;
2. ``audit checkpoint --out`` to a folder outside the instance and the backup (the witness),
   then more activity (``demo --customers N``), so the backup holds entries the kept
   checkpoint does not cover;
3. ``backup keys`` to a keys folder, ``backup create`` to a backup folder;
4. the wipe: the SQLite file (or the PostgreSQL database, dropped and created again) and the
   instance's keyring are gone;
5. the keyring comes back from the keys folder, ``backup restore``, and ``backup verify
   --checkpoint <the kept one>``: every customer decrypts and the log is consistent with it.

And the controls that show the drill can fail: a restore with another instance's keyring is
refused before the database is written; ``backup verify`` against another instance's
checkpoint fails; after one log row is altered, it fails too.

    python -m tests.ops.restore_drill [--database-url URL] [--customers N]

With ``--database-url`` (PostgreSQL), the drill drops and creates that database: give it one
of its own. ``tests/ops/test_restore_drill.py`` runs it on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text

from infomediary.db import make_engine, normalise_url

BIN = Path(sys.executable).with_name("infomediary")
FAST_ARGON2 = {
    "INFOMEDIARY_ARGON2_TIME_COST": "1",
    "INFOMEDIARY_ARGON2_MEMORY_KIB": "1024",
    "INFOMEDIARY_ARGON2_PARALLELISM": "1",
}
#: The longest any one command of the drill may take.
STEP_TIMEOUT = 300


class DrillFailed(AssertionError):
    """A step did not do what the drill expects of it; the message names the step."""


@dataclass
class Drill:
    root: Path
    database_url: str | None = None  # PostgreSQL, dropped and created again; else SQLite
    customers: int = 20
    say: Callable[[str], None] = print
    #: The server's database the drill connects to while it drops and creates its own.
    maintenance: str = "postgres"
    steps: list[tuple[str, float]] = field(default_factory=list)

    @property
    def instance(self) -> Path:
        return self.root / "instance"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    @property
    def witness(self) -> Path:
        return self.root / "witness"

    @property
    def other(self) -> Path:
        return self.root / "other-instance"

    def env(self, instance: Path, database_url: str | None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("INFOMEDIARY_") or k == "INFOMEDIARY_TEST_DATABASE_URL"
        }
        env.update(FAST_ARGON2)
        env["INFOMEDIARY_INSTANCE_PATH"] = str(instance)
        if database_url:
            env["INFOMEDIARY_DATABASE_URL"] = database_url
        return env

    def cli(
        self,
        step: str,
        *args: str,
        expect: int = 0,
        instance: Path | None = None,
        database_url: str | None = None,
        other: bool = False,
    ) -> str:
        """Run ``infomediary ARGS``; the output (stdout, then stderr), after checking the exit."""
        where = instance or self.instance
        url = database_url if other else self.database_url
        started = time.perf_counter()
        done = subprocess.run(  # our own command, no shell
            [str(BIN), *args],
            env=self.env(where, url),
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        self.steps.append((step, time.perf_counter() - started))
        output = done.stdout + done.stderr
        if done.returncode != expect:
            raise DrillFailed(
                f"{step}: `infomediary {' '.join(args)}` exited {done.returncode}, "
                f"expected {expect}:\n{output.strip()}"
            )
        said = (done.stderr or done.stdout).strip().splitlines()
        if expect != 0 and (len(said) != 1 or "Traceback" in output):
            raise DrillFailed(f"{step}: the failure is not one line:\n{output.strip()}")
        self.say(f"ok   {step}")
        return output

    def cli_json(self, step: str, *args: str, expect: int = 0) -> dict[str, Any]:
        out = self.cli(step, *args, "--json", expect=expect)
        doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return doc

    # -- the database, beside the command ---------------------------------------------------

    def sqlite_file(self) -> Path:
        return self.instance / "infomediary.sqlite3"

    def wipe_database(self) -> None:
        if self.database_url is None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.sqlite_file()}{suffix}").unlink(missing_ok=True)
            if self.sqlite_file().exists():
                raise DrillFailed("wipe: the SQLite file is still there")
            return
        recreate_database(self.database_url, self.maintenance)

    def tamper_one_entry(self) -> None:
        """Alter one access-log row behind the app's back, as an attacker with the database would."""
        url = self.database_url or f"sqlite:///{self.sqlite_file()}"
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                changed = conn.execute(
                    text(
                        "UPDATE access_log SET purpose = 'marketing' "
                        "WHERE seq = (SELECT MIN(seq) + 1 FROM access_log)"
                    )
                ).rowcount
        finally:
            engine.dispose()
        if changed != 1:
            raise DrillFailed(f"tamper: {changed} rows changed, not 1")

    # -- the drill ---------------------------------------------------------------------------

    def make_other_instance(self) -> tuple[Path, Path]:
        """Another instance (SQLite, in its own folder): its keyring and a checkpoint of its log."""
        other = self.other
        self.cli("other instance: init", "init", instance=other, other=True)
        self.cli("other instance: demo", "demo", instance=other, other=True)
        self.cli(
            "other instance: checkpoint",
            "audit",
            "checkpoint",
            "--out",
            str(self.root / "other-witness"),
            instance=other,
            other=True,
        )
        (checkpoint,) = (self.root / "other-witness").iterdir()
        return other / "keyring.json", checkpoint

    def run(self) -> None:
        for folder in (self.keys, self.witness):
            folder.mkdir(parents=True)
        others: dict[str, Any] = {}

        def other_instance() -> None:
            try:
                others["made"] = self.make_other_instance()
            except BaseException as exc:  # reported by the main thread
                others["error"] = exc

        beside = threading.Thread(target=other_instance, name="other-instance")
        beside.start()
        try:
            self.cli("init", "init")
            self.cli("seed", "demo", "--customers", str(max(self.customers // 2, 1)))
            self.cli("checkpoint kept outside", "audit", "checkpoint", "--out", str(self.witness))
            (kept,) = self.witness.iterdir()
            self.cli("more activity", "demo", "--customers", str(self.customers))
            self.cli("keys copied apart", "backup", "keys", str(self.keys))
            made = self.cli_json("backup create", "backup", "create", str(self.backup))
            self.cli(
                "keys refused in the data backup", "backup", "keys", str(self.backup), expect=1
            )
            if "keyring" in " ".join(p.name for p in self.backup.iterdir()):
                raise DrillFailed("backup create: a keyring is in the data backup")
            if made["log"]["size"] <= int(kept.name.rsplit("-", 1)[1]):
                raise DrillFailed("backup create: no entry after the kept checkpoint")

            self.wipe_database()
            self.instance.joinpath("keyring.json").unlink()
            self.say("ok   wipe: database and keyring gone")
        finally:
            beside.join()
        if "error" in others:
            raise DrillFailed(f"the other instance: {others['error']}")
        other_keyring, other_checkpoint = others["made"]

        ring = self.instance / "keyring.json"
        shutil.copyfile(other_keyring, ring)
        os.chmod(ring, 0o600)
        out = self.cli(
            "restore with the wrong keyring fails", "backup", "restore", str(self.backup), expect=1
        )
        if "keyring" not in out:
            raise DrillFailed(
                f"restore with the wrong keyring: not a keyring refusal: {out.strip()}"
            )

        (kept_keys,) = self.keys.iterdir()
        shutil.copyfile(kept_keys, ring)
        os.chmod(ring, 0o600)
        restored = self.cli_json("restore", "backup", "restore", str(self.backup))
        if (restored["customers"], restored["log_size"]) != (
            made["customers"],
            made["log"]["size"],
        ):
            raise DrillFailed(f"restore: brought back {restored}, the backup held {made}")

        proved = self.cli_json(
            "verify against the kept checkpoint", "backup", "verify", "--checkpoint", str(kept)
        )
        if not (
            proved["ok"]
            and proved["failed"] == 0
            and proved["customers"] == made["customers"]
            and proved["log_size"] == made["log"]["size"]
            and proved["kept_checkpoints"] == 1
        ):
            raise DrillFailed(f"verify: {proved}")
        self.say(
            f"     {proved['customers']} customers decrypt, {proved['log_size']} entries verify"
        )

        foreign = self.cli(
            "verify against another instance's checkpoint fails",
            "backup",
            "verify",
            "--checkpoint",
            str(other_checkpoint),
            expect=1,
        )
        if str(other_checkpoint) not in foreign:
            raise DrillFailed(f"verify against another instance's checkpoint: {foreign.strip()}")

        self.tamper_one_entry()
        tampered = self.cli_json(
            "verify after one row is altered fails",
            "backup",
            "verify",
            "--checkpoint",
            str(kept),
            expect=1,
        )
        if tampered["log_ok"] or tampered["failed"] != 0:
            raise DrillFailed(f"verify after tampering: {tampered}")


def recreate_database(url: str, maintenance: str = "postgres") -> None:
    """Drop the database ``url`` names (closing its connections) and create it empty again,
    connected to another database of the same server (``maintenance``)."""
    parsed = normalise_url(url)
    name = parsed.database
    if not name:
        raise DrillFailed(f"{url}: no database named")
    admin = make_engine(
        parsed.set(database=maintenance).render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            quoted = admin.dialect.identifier_preparer.quote(name)
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()


def drop_database(url: str, maintenance: str = "postgres") -> None:
    parsed = normalise_url(url)
    admin = make_engine(
        parsed.set(database=maintenance).render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.connect() as conn:
            quoted = admin.dialect.identifier_preparer.quote(str(parsed.database))
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    finally:
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="a PostgreSQL database of its own (it is dropped)")
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument(
        "--maintenance-database",
        default="postgres",
        help="another database of the server, connected to while the drill's is dropped",
    )
    parser.add_argument("--keep", action="store_true", help="keep the drill's folder")
    args = parser.parse_args(argv)
    if args.database_url and make_url(args.database_url).get_backend_name() != "postgresql":
        parser.error("--database-url must be a PostgreSQL URL (SQLite is the default)")
    root = Path(tempfile.mkdtemp(prefix="restore-drill-"))
    drill = Drill(root, args.database_url, args.customers, maintenance=args.maintenance_database)
    started = time.perf_counter()
    try:
        if args.database_url:
            recreate_database(args.database_url, args.maintenance_database)
        drill.run()
    except DrillFailed as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    slowest = ", ".join(
        f"{step} {took:.1f} s" for step, took in sorted(drill.steps, key=lambda s: -s[1])[:3]
    )
    print(f"restore drill passed in {time.perf_counter() - started:.1f} s (slowest: {slowest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
