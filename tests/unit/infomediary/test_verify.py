"""The offline verifier on proof files the real download built: an intact file passes, and
each kind of tampering is named by entry with exit status 1; input that is not a proof file
is refused in one line with status 2; and the verifier loads nothing of the app."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from infomediary import verify
from infomediary.audit.log import HEAD_ID, Actor, canonical_v1, leaf_hash
from infomediary.instance import Instance, open_instance
from infomediary.models import AccessLogEntry, LogHead, LogNode, utcnow
from infomediary.services import Context, checkpoints, log_proofs
from infomediary.services.customer_keys import customer_key
from infomediary.tlog import entry as entry_v2
from infomediary.tlog import merkle, note
from infomediary.tlog.entry_v1 import EntryV1Error
from infomediary.tlog.entry_v1 import canonical_v1 as pure_canonical_v1
from tests.conftest import empty_tables
from tests.functional.test_broker_privacy import count, new_supplier, person
from tests.scripted_noise import ScriptedNoise

TAS = {"purpose": "marketing", "where": {"region": ["TAS"]}}
#: Modules the verifier must never load.
APP_MODULES = ("flask", "sqlalchemy", "werkzeug", "authlib", "marshmallow", "pyroaring")


@dataclass
class Scenario:
    inst: Instance
    customer_id: str
    other_id: str

    def download(self, since: int | None = None, before: int | None = None) -> dict[str, Any]:
        with self.inst.sessions() as session:
            return log_proofs.download(
                session,
                self.inst,
                self.customer_id,
                Context(Actor.customer(self.customer_id), "req-proofs"),
                since,
                before=before,
            )


@pytest.fixture
def broker(inst: Instance) -> Iterator[Callable[[], Instance]]:
    opened: list[Instance] = []

    def open_broker() -> Instance:
        settings = replace(inst.settings, broker_customer_budget=10.0, broker_k=-1_000_000)
        opened.append(open_instance(settings, noise=ScriptedNoise(0.1, [0] * 2000)))
        return opened[-1]

    yield open_broker
    for other in opened:
        other.close()


def append_v1(inst: Instance, customer_id: str) -> int:
    """An entry of format 1 about the customer, appended as the log wrote them before format
    2 (its JSON form, the detail's ciphertext, raw ids), tree nodes and head included."""
    with inst.sessions() as session:
        key = customer_key(session, inst, customer_id)
        head = session.execute(
            select(LogHead).where(LogHead.id == HEAD_ID).with_for_update()
        ).scalar_one()
        row = AccessLogEntry(
            seq=head.size,
            created_at=utcnow(),
            actor_type="supplier",
            actor_id="sup-of-old",
            customer_id=customer_id,
            action="read",
            categories="identity",
            purpose="service",
            outcome="allowed",
            reason="policy allows",
            request_id="r-old",
            detail=inst.vault.seal_bytes(
                key, "access_log", customer_id, "detail", b'{"fields": ["name"]}'
            ),
            members=None,
            prev_hash=head.last_hash,
            version=None,
        )
        row.leaf_hash = leaf_hash(canonical_v1(row))
        edge = head.frontier or b""
        frontier, completed = merkle.append_leaf(
            [edge[i : i + 32] for i in range(0, len(edge), 32)], head.size, row.leaf_hash
        )
        head.size += 1
        head.last_hash = row.leaf_hash
        head.frontier = b"".join(frontier)
        session.add(row)
        session.add_all(LogNode(level=lv, idx=ix, hash=h) for lv, ix, h in completed)
        session.commit()
        return row.seq


@pytest.fixture
def scenario(broker: Callable[[], Instance]) -> Scenario:
    """A customer with entries of both formats, counted twice (and once more not: another
    region), beside another customer counted with them."""
    inst = broker()
    target = person(inst)
    other = person(inst)
    append_v1(inst, target)
    acme = new_supplier(inst, "Acme Books")
    count(inst, acme, TAS)
    count(inst, acme, {"purpose": "marketing", "where": {"region": ["NT"]}})
    count(inst, acme, {"purpose": "analytics", "where": {"region": ["TAS"]}})
    return Scenario(inst, target, other)


def run(
    tmp_path: Path, document: dict[str, Any], *args: str, name: str = "proofs.json"
) -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    out = io.StringIO()
    status = verify.main([str(path), *args], out=out)
    return status, out.getvalue()


def problems(output: str) -> list[str]:
    lines = output.splitlines()
    if "No problems found." in lines:
        return []
    start = next(i for i, line in enumerate(lines) if line.startswith("Problems ("))
    found = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        found.append(line.strip())
    return found


def own(document: dict[str, Any], fmt: int = 2, action: str | None = None) -> dict[str, Any]:
    return next(
        e
        for e in document["entries"]
        if e["format"] == fmt and (action is None or e["shown"]["action"] == action)
    )


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def flipped(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 1
    return b64(bytes(raw))


# -- an intact file ------------------------------------------------------------------------


def test_an_intact_file_passes_and_says_what_it_cannot_check(
    scenario: Scenario, tmp_path: Path
) -> None:
    document = scenario.download()
    assert [e["format"] for e in document["entries"]].count(1) == 1
    assert len(document["counted_in"]) == 2
    status, output = run(tmp_path, document)
    assert status == verify.UNTRUSTED, output  # no key of one's own given: not a pass
    assert problems(output) == []
    summary = next(line for line in output.splitlines() if line.startswith("Summary:"))
    entries = len(document["entries"])
    assert f"{entries} entries of yours and 2 counts" in summary
    assert f"{entries + 2} inclusion proofs, 2 membership proofs" in summary
    assert "checkpoint signature valid under the file's own key, which you have not" in summary
    assert "the file's own key, NOT one you trust" in output
    assert "proves nothing by itself" in output
    assert "What it cannot check:" in output
    assert "the supplier's copy of a count is not in the log" in output
    assert "that every access to your data was logged" in output


def test_with_the_logs_key_given_the_warning_goes(scenario: Scenario, tmp_path: Path) -> None:
    key = checkpoints.verifier_key(scenario.inst)
    status, output = run(tmp_path, scenario.download(), "--key", key)
    assert status == verify.OK, output
    assert "(the key you gave)" in output
    assert "proves nothing by itself" not in output
    key_file = tmp_path / "log.vkey"
    key_file.write_text(key + "\n")
    assert run(tmp_path, scenario.download(), "--key", str(key_file))[0] == verify.OK


# -- tampering, each named -------------------------------------------------------------------


def test_a_forged_entry_field_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    entry = own(document, action="update")
    entry["committed"]["purpose"] = "marketing"
    entry["shown"]["purpose"] = "marketing"
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert problems(output) == [
        f"entry {entry['seq']}: its fields do not give its leaf hash: a field was altered "
        "after the log committed to it"
    ]


def test_a_forged_entry_with_its_leaf_hash_recomputed_is_not_in_the_log(
    scenario: Scenario, tmp_path: Path
) -> None:
    document = scenario.download()
    entry = own(document, action="update")
    entry["committed"]["outcome"] = entry["shown"]["outcome"] = "denied"
    fields: dict[str, Any] = {
        name: base64.b64decode(value)
        if name in ("customer", "detail", "members", "prev") and value is not None
        else value
        for name, value in entry["committed"].items()
    }
    forged = entry_v2.Entry(**fields)
    entry["leaf_hash"] = b64(forged.leaf_hash())
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    [found] = problems(output)
    assert found.startswith(f"entry {entry['seq']}: the log at the checkpoint does not hold it")


def test_a_wrong_proof_node_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    entry = document["entries"][-1]
    entry["inclusion_proof"][0] = flipped(entry["inclusion_proof"][0])
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert problems(output) == [
        f"entry {entry['seq']}: the log at the checkpoint does not hold it: the inclusion "
        f"proof of index {entry['seq']} does not lead to the root (the entry or its proof was "
        "altered)"
    ]


def test_a_bad_signature_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    text, _, signature = document["checkpoint"].partition("\n\n")
    name, encoded = signature.strip().removeprefix(note.DASH).split(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    document["checkpoint"] = f"{text}\n\n{note.DASH}{name} {b64(bytes(raw))}\n"
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert problems(output) == [
        f"checkpoint: the signature of {name} does not verify: the note was altered"
    ]
    assert "checkpoint signature NOT verified" in output


def test_an_altered_checkpoint_text_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    text, _, signatures = document["checkpoint"].partition("\n\n")
    origin, size, root = text.split("\n")
    document["checkpoint"] = f"{origin}\n{int(size) + 1}\n{root}\n\n{signatures}"
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert problems(output)[0] == (
        f"checkpoint: the signature of {origin} does not verify: the note was altered"
    )


def test_another_key_given_with_key_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    origin = document["origin"]
    stranger = note.Signer(origin, Ed25519PrivateKey.generate()).verifier.vkey
    status, output = run(tmp_path, document, "--key", stranger)
    assert status == verify.FAILED
    found = problems(output)
    assert found[0] == (
        f"the file names the key {document['vkey']}, not the key you trust ({stranger})"
    )
    assert found[1].startswith(f"checkpoint: the note is not signed by the key {origin}+")


def test_a_file_signed_by_another_key_of_its_own_fails_under_the_real_key(
    scenario: Scenario, tmp_path: Path
) -> None:
    """A forger re-signs a forged file with a key of their own and puts it in the file: the
    file alone passes (which is why the output warns), the log's key does not."""
    document = scenario.download()
    signer = note.Signer(document["origin"], Ed25519PrivateKey.generate())
    document["vkey"] = signer.verifier.vkey
    text = document["checkpoint"][: document["checkpoint"].index("\n\n") + 1]
    document["checkpoint"] = signer.sign(text)
    assert run(tmp_path, document)[0] == verify.UNTRUSTED  # consistent, under its own key
    status, output = run(tmp_path, document, "--key", checkpoints.verifier_key(scenario.inst))
    assert status == verify.FAILED
    assert any(p.startswith("checkpoint: the note is not signed by") for p in problems(output))


def test_another_origin_given_with_origin_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    status, output = run(tmp_path, document, "--origin", "elsewhere.example/log")
    assert status == verify.FAILED
    assert problems(output)[:2] == [
        f"the file says it is of the log {document['origin']}, not elsewhere.example/log",
        f"checkpoint: the checkpoint is of another log: {document['origin']}, not "
        "elsewhere.example/log",
    ]
    key = checkpoints.verifier_key(scenario.inst)
    assert run(tmp_path, document, "--origin", document["origin"], "--key", key)[0] == verify.OK


def test_an_entry_past_the_checkpoint_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    entry = document["entries"][0]
    entry["seq"] = entry["committed"]["seq"] = document["tree_size"]
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert (
        f"entry {document['tree_size']}: it is past the checkpoint, which holds "
        f"{document['tree_size']}"
    ) in problems(output)


def test_an_altered_customer_opening_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    entry = own(document, action="create")
    entry["openings"]["customer_opening"] = flipped(entry["openings"]["customer_opening"])
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert problems(output) == [
        f"entry {entry['seq']}: its customer commitment does not open to your customer id: "
        "it is not yours, or its opening was altered"
    ]


def test_another_customers_entries_are_named(scenario: Scenario, tmp_path: Path) -> None:
    """A file passed off as another customer's: every entry is named as not theirs."""
    document = scenario.download()
    document["customer_id"] = scenario.other_id
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    named = {p.split(":")[0] for p in problems(output)}
    assert named == {f"entry {e['seq']}" for e in document["entries"]}


def test_an_altered_detail_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    entry = own(document, action="update")
    plaintext = json.loads(base64.b64decode(entry["openings"]["detail_plaintext"]))
    plaintext["fields"] = ["name"]
    entry["openings"]["detail_plaintext"] = b64(json.dumps(plaintext).encode())
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert problems(output) == [
        f"entry {entry['seq']}: the detail does not match the hash the entry commits to: the "
        "detail was altered"
    ]


def test_an_altered_readable_copy_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    entry = own(document, action="update")
    entry["shown"]["detail"] = {"fields": ["name"]}
    entry["shown"]["time"] = "2020-01-01T00:00:00+00:00"
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert problems(output) == [
        f"entry {entry['seq']}: the detail shown is not the detail the entry commits to",
        f"entry {entry['seq']}: the readable copy differs from what the entry commits to (time)",
    ]


def test_an_altered_membership_proof_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    counted = document["counted_in"][0]
    counted["membership"]["proof"] = [flipped(n) for n in counted["membership"]["proof"]] or [
        b64(bytes(32))
    ]
    other = document["counted_in"][1]
    other["membership"]["record"] = b64(bytes(16))
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    found = problems(output)
    assert len(found) == 2
    assert found[0].startswith(
        f"entry {counted['seq']} (a count you were part of): the membership proof fails: "
    )
    assert found[1] == (
        f"entry {other['seq']} (a count you were part of): the membership proof fails: the "
        "member record is not the one its opening gives"
    )


def test_a_member_record_that_is_not_the_members_own_is_refused(
    scenario: Scenario, tmp_path: Path
) -> None:
    """A record made from another opening for the same member number, consistent with itself,
    is not in the tree: an opening cannot be invented."""
    document = scenario.download()
    counted = document["counted_in"][0]["membership"]
    counted["opening"] = b64(bytes(16))
    counted["record"] = b64(entry_v2.member_record(bytes(16), counted["ordinal"]))
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert problems(output)[0].endswith("the member record is not in its bucket")


def test_a_broken_link_between_neighbours_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    by_seq = {e["seq"]: e for e in document["entries"] + document["counted_in"]}
    seq = next(s for s in sorted(by_seq) if s - 1 in by_seq and by_seq[s]["format"] == 2)
    by_seq[seq]["committed"]["prev"] = b64(bytes(32))
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert (
        f"entry {seq}: it does not link to entry {seq - 1} (its prev is not that entry's leaf hash)"
    ) in problems(output)


def test_a_forged_format_1_entry_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    entry = own(document, fmt=1)
    entry["committed_v1"]["reason"] = "policy allows everything"
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    assert problems(output) == [
        f"entry {entry['seq']}: its fields do not give its leaf hash: a field was altered "
        "after the log committed to it"
    ]


def test_a_malformed_entry_is_a_problem_not_a_crash(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    entry = own(document, action="create")
    entry["committed"]["prev"] = "not base64!"
    document["entries"].append("nothing")
    status, output = run(tmp_path, document)
    assert status == verify.FAILED
    found = problems(output)
    assert f"entry {entry['seq']}: cannot be read: prev is not base64" in found
    assert f"entries[{len(document['entries']) - 1}]: not an entry (no seq)" in found


# -- older checkpoints --------------------------------------------------------------------------


def test_a_later_file_extends_an_earlier_one(scenario: Scenario, tmp_path: Path) -> None:
    first = scenario.download()
    old = tmp_path / "old.json"
    old.write_text(json.dumps(first))
    note_file = tmp_path / "old.checkpoint"
    note_file.write_text(first["checkpoint"])
    count(scenario.inst, new_supplier(scenario.inst, "Beta"), TAS)
    later = scenario.download()  # the earlier download's checkpoint is proved without since
    status, output = run(
        tmp_path,
        later,
        "--checkpoint",
        str(old),
        "--checkpoint",
        str(note_file),
        "--key",
        checkpoints.verifier_key(scenario.inst),
    )
    assert status == verify.OK, output
    assert "2 older checkpoints checked" in output


def test_a_checkpoint_the_log_does_not_extend_is_named(scenario: Scenario, tmp_path: Path) -> None:
    """Two logs under one key that diverge: the second's consistency proof from the first's
    size does not lead to the first's root."""
    first = scenario.download()
    size = note.parse_checkpoint(first["checkpoint"][: first["checkpoint"].index("\n\n") + 1])
    old = tmp_path / "old.json"
    old.write_text(json.dumps(first))
    empty_tables(scenario.inst)
    other = Scenario(scenario.inst, person(scenario.inst), "")
    for _ in range(size.size):
        person(scenario.inst)
    second = other.download(since=size.size)
    assert [p["from"] for p in second["consistency"]] == [size.size]
    status, output = run(tmp_path, second, "--checkpoint", str(old))
    assert status == verify.FAILED
    [found] = problems(output)
    assert found.startswith(
        f"checkpoint {old}: this file's checkpoint ({second['tree_size']} entries) does not "
        f"extend it ({size.size} entries): the consistency proof does not lead to the root"
    )


def test_a_smaller_log_than_a_kept_checkpoint_is_named(scenario: Scenario, tmp_path: Path) -> None:
    first = scenario.download()
    old = tmp_path / "old.json"
    old.write_text(json.dumps(first))
    empty_tables(scenario.inst)
    second = Scenario(scenario.inst, person(scenario.inst), "").download()
    status, output = run(tmp_path, second, "--checkpoint", str(old))
    assert status == verify.FAILED
    assert problems(output) == [
        f"checkpoint {old}: it holds {first['tree_size']} entries, more than this file's "
        f"checkpoint ({second['tree_size']}): the log does not extend it (it shrank, or is "
        "another log); if it is in fact newer than this file, check it the other way round "
        f"(GET /api/v1/log/proof/consistency?from={second['tree_size']}&to={first['tree_size']})"
    ]


def test_without_a_consistency_proof_it_says_it_cannot_check_offline(
    scenario: Scenario, tmp_path: Path
) -> None:
    first = scenario.download()
    note_file = tmp_path / "old.checkpoint"
    note_file.write_text(first["checkpoint"])
    count(scenario.inst, new_supplier(scenario.inst, "Beta"), TAS)
    later = scenario.download()
    later["consistency"] = []
    status, output = run(tmp_path, later, "--checkpoint", str(note_file))
    assert status == verify.FAILED
    assert problems(output) == []
    assert f"checkpoint {note_file}: cannot be checked offline" in output
    assert f"since={first['tree_size']}" in output
    assert f"/api/v1/log/proof/consistency?from={first['tree_size']}&to=" in output


def test_a_kept_checkpoint_of_another_key_is_named(scenario: Scenario, tmp_path: Path) -> None:
    document = scenario.download()
    stranger = note.Signer(document["origin"], Ed25519PrivateKey.generate())
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(stranger.sign(note.Checkpoint(document["origin"], 1, bytes(32)).text()))
    status, output = run(tmp_path, document, "--checkpoint", str(kept))
    assert status == verify.FAILED
    assert problems(output)[0].startswith(f"checkpoint {kept}: the note is not signed by the key")


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"format": "something else"}', "is not an Infomediary proof file"),
        ("[1, 2]", "is not an Infomediary proof file"),
        ('{"format": "infomediary-log-proofs/1"}', "is not a complete proof file: vkey is missing"),
    ],
)
def test_malformed_input_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "input.json"
    path.write_text(content)
    out = io.StringIO()
    assert verify.main([str(path)], out=out) == verify.BAD_INPUT
    assert out.getvalue() == ""
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err


def test_unreadable_input_and_bad_arguments_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert verify.main([str(tmp_path / "missing.json")]) == verify.BAD_INPUT
    err = capsys.readouterr().err
    assert err == (
        f"python -m infomediary.verify: cannot read {tmp_path / 'missing.json'}: "
        "No such file or directory\n"
    )
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    assert verify.main([str(binary)]) == verify.BAD_INPUT
    assert capsys.readouterr().err.endswith("is not UTF-8 text\n")
    with pytest.raises(SystemExit) as exited:
        verify.main([])
    assert exited.value.code == verify.BAD_INPUT
    assert capsys.readouterr().err.count("\n") == 1


def test_a_bad_key_is_refused_in_one_line(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "proofs.json"
    path.write_text(json.dumps(scenario.download()))
    assert verify.main([str(path), "--key", "localhost/log+00+AAAA"]) == verify.BAD_INPUT
    assert capsys.readouterr().err.startswith("python -m infomediary.verify: --key: ")


# -- format 1 ------------------------------------------------------------------------------------


def test_the_pure_format_1_form_agrees_with_the_logs(scenario: Scenario) -> None:
    """The download's format-1 body, through the pure form, gives the bytes the log's own
    form gives for the row: for the stored entry, and for variants of it."""
    document = scenario.download()
    body = own(document, fmt=1)["committed_v1"]
    with scenario.inst.sessions() as session:
        stored = session.execute(
            select(AccessLogEntry).where(AccessLogEntry.version.is_(None))
        ).scalar_one()
        assert leaf_hash(pure_canonical_v1(body)) == stored.leaf_hash
        assert pure_canonical_v1(body) == canonical_v1(stored)
        columns = {c.key: getattr(stored, c.key) for c in AccessLogEntry.__table__.columns}
    for change in (
        {"members": b"\x01\x02"},
        {"detail": None, "customer_id": None},
        {"reason": "caf\u00e9 \u2014 d\u00e9j\u00e0", "actor_id": "\u00fcn\u00ef"},
        {"created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=10)))},
    ):
        row = SimpleNamespace(**{**columns, **change})
        assert pure_canonical_v1(log_proofs._v1_body(cast(Any, row))) == canonical_v1(row), change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": 2}, "v = 1"),
        ({"seq": "1"}, "seq is a whole number"),
        ({"actor": ["supplier"]}, "actor is a [type, id] pair"),
        ({"extra": 1}, "no format-1 entry has extra"),
        ({"members_sha256": None}, "members_sha256 is a text"),
    ],
)
def test_the_pure_format_1_form_refuses_what_no_entry_had(
    change: dict[str, Any], message: str
) -> None:
    body = {
        "v": 1,
        "seq": 3,
        "time": "2026-01-02T03:04:05.678901Z",
        "actor": ["supplier", "s"],
        "customer": "c",
        "action": "read",
        "categories": "identity",
        "purpose": "service",
        "outcome": "allowed",
        "reason": "r",
        "request": "-",
        "detail": None,
        "prev": b64(bytes(32)),
    }
    with pytest.raises(EntryV1Error, match=message.replace("[", r"\[")):
        pure_canonical_v1({**body, **change})
    missing = dict(body)
    del missing["prev"]
    with pytest.raises(EntryV1Error, match="needs prev"):
        pure_canonical_v1(missing)


# -- the verifier alone ----------------------------------------------------------------------


def test_the_command_runs_in_a_bare_interpreter_and_loads_nothing_of_the_app(
    scenario: Scenario, tmp_path: Path
) -> None:
    path = tmp_path / "proofs.json"
    path.write_text(json.dumps(scenario.download()))
    done = subprocess.run(
        [sys.executable, "-I", "-m", "infomediary.verify", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == verify.UNTRUSTED, done.stderr  # no --key: passed, not trusted
    assert "No problems found." in done.stdout
    probe = (
        "import runpy, sys\n"
        f"sys.argv = ['verify', {str(path)!r}]\n"
        "try:\n"
        "    runpy.run_module('infomediary.verify', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    status = exc.code\n"
        f"print(status, sorted(m for m in {APP_MODULES!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert loaded.stdout.splitlines()[-1] == f"{verify.UNTRUSTED} []"
    assert (
        "cryptography"
        in subprocess.run(
            [
                sys.executable,
                "-I",
                "-c",
                "import sys, infomediary.verify; print(sorted(sys.modules))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )  # the probe sees modules: it would see Flask too


def test_a_readable_copy_that_cannot_be_checked_is_not_passed(
    scenario: Scenario, tmp_path: Path
) -> None:
    document = scenario.download()
    own = [e for e in document["entries"] if e["format"] == 2]
    with_detail = next(e for e in own if e["openings"]["detail_plaintext"] is not None)
    other = next(e for e in own if e is not with_detail)
    other["shown"] = "anything"
    with_detail["openings"]["detail_plaintext"] = None
    with_detail["shown"]["detail"] = {"made": "up"}
    status, output = run(tmp_path, document, "--key", checkpoints.verifier_key(scenario.inst))
    assert status == verify.FAILED
    found = problems(output)
    assert f"entry {other['seq']}: it holds no readable copy, or one that is not an object" in found
    assert (
        f"entry {with_detail['seq']}: a detail is shown but none is given to check it against"
        in found
    )
