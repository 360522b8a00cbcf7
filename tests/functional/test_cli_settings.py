"""The ``infomediary`` command checks its settings at start: a wrong one is one line on stderr
and a non-zero exit, never a traceback; an unknown variable is named, with a suggestion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def infomediary(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, with only the given ``INFOMEDIARY_*``."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), **variables}
    return subprocess.run(
        [sys.executable, "-c", "from infomediary.cli import main; main()", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fast(tmp_path: Path) -> dict[str, str]:
    return {
        "INFOMEDIARY_INSTANCE_PATH": str(tmp_path / "instance"),
        "INFOMEDIARY_ARGON2_TIME_COST": "1",
        "INFOMEDIARY_ARGON2_MEMORY_KIB": "1024",
        "INFOMEDIARY_ARGON2_PARALLELISM": "1",
    }


@pytest.mark.parametrize("command", [("init",), ("serve", "--port", "1"), ("outbox",)])
def test_a_database_url_that_is_no_url_is_one_line_and_no_traceback(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = infomediary(*command, **fast(tmp_path), INFOMEDIARY_DATABASE_URL="notaurl")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "error: INFOMEDIARY_DATABASE_URL must be a database URL such as "
        "postgresql://user@host/db or sqlite:////path/to/file.sqlite3 (the value given is not one)"
    ]
    assert not (tmp_path / "instance").exists()  # refused before anything was created


def test_a_mistyped_login_rate_limit_is_refused(tmp_path: Path) -> None:
    done = infomediary("init", **fast(tmp_path), INFOMEDIARY_LOGIN_RATE_LIMIT="5 per minut")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        "error: INFOMEDIARY_LOGIN_RATE_LIMIT must be a rate limit such as "
        "'5 per minute;30 per hour', not '5 per minut'"
    ]


def test_a_mistyped_variable_name_is_warned_about_and_the_command_runs(tmp_path: Path) -> None:
    done = infomediary(
        "init", **fast(tmp_path), INFOMEDIARY_LOGIN_RATE_LIMT="1 per minute", INFOMEDIARY_X="1"
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "INFOMEDIARY_LOGIN_RATE_LIMT is not a setting and is ignored "
        "(did you mean INFOMEDIARY_LOGIN_RATE_LIMIT?)",
        "INFOMEDIARY_X is not a setting and is ignored",
    ]
    assert "new keyring created" in done.stdout


def test_the_harness_variables_are_not_warned_about(tmp_path: Path) -> None:
    done = infomediary(
        "outbox",
        **fast(tmp_path),
        INFOMEDIARY_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/test",
        INFOMEDIARY_REQUIRE_SERVICES="1",
        INFOMEDIARY_SCREENSHOT_DIR=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip() == "the outbox is empty"
