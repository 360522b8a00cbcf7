"""Signed checkpoints of the access log: signed on a schedule and on demand, served and kept,
and a log that was rolled back, truncated or rewritten is caught by a checkpoint kept outside."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, func, select

from infomediary import create_app
from infomediary.audit.log import (
    GENESIS,
    HEAD_ID,
    Actor,
    LogEvent,
    append,
    canonical_entry,
    current_root,
    leaf_hash,
)
from infomediary.audit.reasons import Reason
from infomediary.cli import main
from infomediary.errors import BadCheckpoint, NoCheckpoint
from infomediary.models import AccessLogEntry, Job, LogCheckpoint, LogHead, LogNode, utcnow
from infomediary.services import checkpoints, jobs
from infomediary.tlog import merkle, note
from tests.table_rows import row_counts

ACTOR = Actor.system("test")


def grow(inst, entries: int, label: str = "entry") -> None:
    with inst.sessions() as session:
        for n in range(entries):
            append(session, LogEvent(ACTOR, "read", None, reason=f"{label} {n}"))
        session.commit()


def sign(inst) -> checkpoints.Signed:
    with inst.sessions() as session:
        return checkpoints.sign(session, inst)


def rebuild(session, size: int | None = None) -> None:
    """What a forger with database access does: drop entries from ``size`` on, then recompute
    every link, leaf hash, tree node and the head over what is left."""
    if size is not None:
        session.execute(delete(AccessLogEntry).where(AccessLogEntry.seq >= size))
        session.execute(delete(LogCheckpoint).where(LogCheckpoint.size > size))
    session.execute(delete(LogNode))
    rows = session.execute(select(AccessLogEntry).order_by(AccessLogEntry.seq)).scalars().all()
    prev, frontier = GENESIS, list[bytes]()
    for number, row in enumerate(rows):
        row.prev_hash = prev
        row.leaf_hash = leaf_hash(canonical_entry(row))
        frontier, done = merkle.append_leaf(frontier, number, row.leaf_hash)
        session.add_all(LogNode(level=lv, idx=ix, hash=h) for lv, ix, h in done)
        prev = row.leaf_hash
    head = session.get(LogHead, HEAD_ID)
    head.size, head.last_hash, head.frontier = len(rows), prev, b"".join(frontier)
    session.commit()


def kept(inst, signed: checkpoints.Signed, label: str = "kept") -> checkpoints.Kept:
    return checkpoints.Kept(label, signed.checkpoint.note)


def verify_log(inst, *kept_ones: checkpoints.Kept) -> checkpoints.LogReport:
    with inst.sessions() as session:
        return checkpoints.verify_log(session, inst, kept_ones)


# -- signing and serving -----------------------------------------------------------------------


def test_a_checkpoint_is_a_c2sp_signed_note_of_the_tree_and_is_served(inst, client) -> None:
    grow(inst, 9)
    signed = sign(inst)
    assert signed.new
    vkey = client.get("/api/v1/log/key")
    assert vkey.status_code == 200
    assert vkey.mimetype == "text/plain"
    verifier = note.Verifier.from_vkey(vkey.text.strip())
    assert verifier.name == "localhost/log"
    served = client.get("/api/v1/log/checkpoint")
    assert served.status_code == 200
    assert served.mimetype == "text/plain"
    opened = note.open_checkpoint(served.text, verifier, "localhost/log")
    with inst.sessions() as session:
        assert (opened.size, opened.root) == current_root(session)
    assert opened.size == 9


def test_the_origin_is_the_issuers_host_or_the_setting(inst) -> None:
    settings = inst.settings
    assert checkpoints.origin(replace(settings, issuer="https://id.example.org:8443")) == (
        "id.example.org:8443/log"
    )
    assert checkpoints.origin(replace(settings, log_origin="example.org/audit")) == (
        "example.org/audit"
    )


def test_reading_checkpoints_writes_nothing(inst, client) -> None:
    grow(inst, 3)
    sign(inst)
    with inst.engine.connect() as conn:
        before = row_counts(conn)
    for path in ("/api/v1/log/checkpoint", "/api/v1/log/key"):
        assert client.get(path).status_code == 200
    with inst.engine.connect() as conn:
        assert row_counts(conn) == before


def test_before_any_checkpoint_the_api_says_so(client) -> None:
    answer = client.get("/api/v1/log/checkpoint")
    assert answer.status_code == 404
    assert answer.mimetype == "application/problem+json"
    assert answer.json["code"] == "no_checkpoint"


def test_a_checkpoint_is_signed_only_when_the_log_grew_and_every_one_is_kept(inst, client) -> None:
    grow(inst, 5)
    first = sign(inst)
    again = sign(inst)
    assert not again.new
    assert again.checkpoint.size == first.checkpoint.size == 5
    grow(inst, 6)
    second = sign(inst)
    assert second.new
    assert second.checkpoint.size == 11
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(LogCheckpoint)).scalar_one() == 2
    # consistency between the two kept checkpoints, from the public endpoint
    assert client.get("/api/v1/log/checkpoint?size=5").text == first.checkpoint.note
    assert client.get("/api/v1/log/checkpoint?size=11").text == second.checkpoint.note
    assert client.get("/api/v1/log/checkpoint?size=7").json["code"] == "no_checkpoint"
    assert client.get("/api/v1/log/checkpoint?size=-1").json["code"] == "invalid_proof_request"
    with inst.sessions() as session:
        assert checkpoints.sizes(session) == [11, 5]
        assert checkpoints.sizes(session, before=11) == [5]
    proof = client.get("/api/v1/log/proof/consistency?from=5&to=11").json["proof"]
    merkle.verify_consistency(
        5,
        11,
        first.checkpoint.root,
        second.checkpoint.root,
        [base64.b64decode(p) for p in proof],
    )


def test_the_schedule_signs_when_the_log_grew_and_comes_back(inst) -> None:
    checkpoints.schedule(inst)
    checkpoints.schedule(inst)  # idempotent: one job
    with inst.sessions() as session:
        assert (
            session.execute(
                select(func.count()).select_from(Job).where(Job.key == checkpoints.JOB)
            ).scalar_one()
            == 1
        )
    grow(inst, 4)
    now = utcnow()
    assert jobs.run_pending(inst, now=now) >= 1
    with inst.sessions() as session:
        assert [c.size for c in session.execute(select(LogCheckpoint)).scalars()] == [4]
        job = session.execute(select(Job).where(Job.key == checkpoints.JOB)).scalar_one()
        assert job.run_after >= now + timedelta(seconds=inst.settings.checkpoint_seconds)
    later = now + timedelta(seconds=inst.settings.checkpoint_seconds + 1)
    jobs.run_pending(inst, now=later)  # the log did not grow: nothing new is signed
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(LogCheckpoint)).scalar_one() == 1


# -- verification against checkpoints kept outside ---------------------------------------------


def test_an_intact_log_agrees_with_every_checkpoint(inst) -> None:
    grow(inst, 7)
    old = sign(inst)
    grow(inst, 5)
    sign(inst)
    report = verify_log(inst, kept(inst, old, "old.txt"))
    assert report.result.ok, report.result.problem
    assert (report.stored, report.kept) == (2, 1)
    assert report.result.checked == (7, 7, 12)


def test_a_log_restored_from_an_older_copy_and_grown_again_is_caught(inst) -> None:
    grow(inst, 6)
    sign(inst)
    grow(inst, 4)
    witnessed = sign(inst)  # size 10, kept by a witness
    with inst.sessions() as session:
        rebuild(session, 6)  # the backup at size 6 comes back...
    grow(inst, 7, "other")  # ...and the log grows again, past 10
    report = verify_log(inst, kept(inst, witnessed, "witness/checkpoint-10"))
    assert not report.result.ok
    assert "checkpoint witness/checkpoint-10 disagrees with the log at size 10" in (
        report.result.problem
    )
    assert "it agrees at size 6" in report.result.problem


def test_a_truncated_log_is_caught(inst) -> None:
    grow(inst, 10)
    witnessed = sign(inst)
    with inst.sessions() as session:
        rebuild(session, 4)
    report = verify_log(inst, kept(inst, witnessed, "cp"))
    assert not report.result.ok
    assert report.result.problem == (
        "checkpoint cp vouches for 10 entries but the log holds 4: entries 4 to 9 were removed"
    )


def test_a_rewritten_history_is_caught_by_the_checkpoints(inst) -> None:
    grow(inst, 8)
    witnessed = sign(inst)
    with inst.sessions() as session:
        row = session.get(AccessLogEntry, 3)
        row.reason_data = Reason("text", {"text": "nothing happened"}).to_json()
        session.execute(delete(LogCheckpoint))  # the forger drops the stored ones too
        rebuild(session)
    with inst.sessions() as session:
        assert checkpoints.verify_log(session, inst).result.ok  # nothing inside tells
    report = verify_log(inst, kept(inst, witnessed, "cp-8"))
    assert not report.result.ok
    assert "checkpoint cp-8 disagrees with the log at size 8" in report.result.problem


def test_a_stored_checkpoint_that_was_altered_is_caught(inst) -> None:
    grow(inst, 3)
    sign(inst)
    with inst.sessions() as session:
        row = session.execute(select(LogCheckpoint)).scalar_one()
        row.root = bytes(32)
        session.commit()
    report = verify_log(inst)
    assert not report.result.ok
    assert "the stored checkpoint of size 3 does not say what its row says" in (
        report.result.problem
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello\n", "not a note"),
        ("other/log\n3\n" + base64.b64encode(bytes(32)).decode() + "\n", "other key"),
    ],
)
def test_a_kept_file_that_is_not_our_checkpoint_is_refused_by_name(inst, text, message) -> None:
    grow(inst, 3)
    if message == "other key":
        stranger = note.Signer("localhost/log", Ed25519PrivateKey.generate())
        text = stranger.sign(text.replace("other/log", "localhost/log"))
    with pytest.raises(BadCheckpoint) as refused:
        verify_log(inst, checkpoints.Kept("f.txt", text))
    assert refused.value.message.startswith("f.txt: ")
    assert "\n" not in refused.value.message


def test_a_kept_checkpoint_of_another_origin_is_refused(inst) -> None:
    grow(inst, 3)
    with inst.sessions() as session:
        signer = checkpoints.signer(inst)
        size, root = current_root(session)
    other = note.Signer(signer.name, signer.private)
    text = other.sign(note.Checkpoint("elsewhere/log", size, root).text())
    with pytest.raises(BadCheckpoint) as refused:
        verify_log(inst, checkpoints.Kept("f.txt", text))
    assert "another log: elsewhere/log" in refused.value.message


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli_env(base_config, monkeypatch):
    monkeypatch.setenv("INFOMEDIARY_INSTANCE_PATH", str(base_config.instance_path))
    monkeypatch.setenv("INFOMEDIARY_DATABASE_URL", base_config.database_url)


def test_cli_signs_writes_and_verifies_against_the_file(inst, cli_env, tmp_path: Path) -> None:
    grow(inst, 5)
    out = CliRunner().invoke(main, ["audit", "checkpoint", "--out", str(tmp_path / "w")])
    assert out.exit_code == 0, out.output
    assert "checkpoint of 5 entries signed; written to" in out.output
    saved = tmp_path / "w" / "checkpoint-000000000005"
    assert saved.read_text() == sign(inst).checkpoint.note
    grow(inst, 2)
    ok = CliRunner().invoke(main, ["audit", "verify", "--checkpoint", str(saved)])
    assert ok.exit_code == 0, ok.output
    assert "access log intact: 7 entries; 1 stored and 1 kept checkpoint(s) agree" in ok.output
    with inst.sessions() as session:
        rebuild(session, 3)
    broken = CliRunner().invoke(main, ["audit", "verify", "--checkpoint", str(saved)])
    assert broken.exit_code == 1
    assert "vouches for 5 entries but the log holds 3" in broken.output


def test_cli_names_a_file_that_is_not_a_checkpoint_in_one_line(inst, cli_env, tmp_path) -> None:
    grow(inst, 2)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\xff\xfe not text")
    out = CliRunner().invoke(main, ["audit", "verify", "--checkpoint", str(junk)])
    assert out.exit_code == 1
    assert out.output.strip() == f"error: {junk}: not a checkpoint (not UTF-8 text)"
    missing = CliRunner().invoke(main, ["audit", "verify", "--checkpoint", str(tmp_path / "no")])
    assert missing.exit_code == 1
    assert missing.output.startswith("error: cannot read checkpoint")
    assert len(missing.output.strip().splitlines()) == 1


def test_the_app_worker_schedules_checkpoints(base_config) -> None:
    app = create_app(base_config, run_jobs=True)
    try:
        inst = app.extensions["infomediary"]
        with inst.sessions() as session:
            assert session.execute(select(Job.kind).where(Job.key == checkpoints.JOB)).scalar()
    finally:
        app.extensions["infomediary.jobs"].stop()
        app.extensions["infomediary"].close()


def test_an_empty_log_is_not_signed_and_an_empty_checkpoint_agrees(inst, client) -> None:
    with inst.sessions() as session, pytest.raises(NoCheckpoint, match="empty"):
        checkpoints.sign(session, inst)
    checkpoints.schedule(inst)
    jobs.run_pending(inst)  # the job passes over an empty log
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(LogCheckpoint)).scalar_one() == 0
    grow(inst, 3)
    sign(inst)
    empty = note.Checkpoint("localhost/log", 0, merkle.EMPTY_ROOT).text()
    kept_empty = checkpoints.Kept("empty", checkpoints.signer(inst).sign(empty))
    report = verify_log(inst, kept_empty)
    assert report.result.ok, report.result.problem
    assert report.result.checked == (0, 3)


@pytest.mark.parametrize("size", ["9999999999999999999", "9223372036854775808"])
def test_a_checkpoint_size_past_any_log_is_a_400(inst, client, size: str) -> None:
    grow(inst, 2)
    sign(inst)
    answer = client.get(f"/api/v1/log/checkpoint?size={size}")
    assert answer.status_code == 400
    assert answer.json["code"] == "invalid_proof_request"
