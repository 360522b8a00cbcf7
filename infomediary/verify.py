"""Check a customer's proof file offline: ``python -m infomediary.verify FILE [--checkpoint OLD]...
[--key VKEY] [--origin ORIGIN]``.

The file is what "Download my access log with proofs" gives (``infomediary-log-proofs/1``,
``docs/LOG_FORMAT.md``). This needs no database, no app and no network: it imports the
standard library, :mod:`infomediary.tlog` and ``cryptography`` (for Ed25519) and nothing else
(an import contract and a test in a bare interpreter hold it to that). It checks:

- the checkpoint's signature and origin, under the key in the file or, better, under
  ``--key``, a key the user got some other way (the file's own key proves nothing alone);
- each entry: its leaf hash recomputed from its fields (format 2 by
  :func:`infomediary.tlog.entry.canonical`, format 1 by :func:`~infomediary.tlog.entry_v1.
  canonical_v1`), the customer commitment from its opening and the customer id, the detail
  hash from the plaintext, and that the readable copy says what the entry commits to;
- the links between consecutive entries the file holds, each inclusion proof against the
  checkpoint's root, and each membership proof against its count's member root;
- with ``--checkpoint OLD`` (a checkpoint, or an older proof file): same key and origin, and
  that the file's checkpoint extends OLD, by the file's consistency proof from OLD's size.

One line per problem names the entry (its seq) and what is wrong; then a summary and what
this can and cannot check. Exit status: 0 every check passed, 1 a check failed or one asked
for could not be made, 2 bad input (one line: unreadable, not JSON, not a proof file).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO

from infomediary.tlog import entry as entry_v2
from infomediary.tlog import merkle, note
from infomediary.tlog.entry_v1 import EntryV1Error, canonical_v1

FORMAT = "infomediary-log-proofs/1"
#: Exit statuses: every check passed under a key you gave; a check failed (or one asked for
#: could not be made); the input is not a proof file; every check passed, but only under the
#: key the file carries, which proves nothing by itself.
OK, FAILED, BAD_INPUT, UNTRUSTED = 0, 1, 2, 3
#: The member of a detail holding its salt (left out of the readable copy).
SALT = "salt"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_ZERO = bytes(merkle.HASH_SIZE)

CAN = (
    "that each entry shown is the one the log committed to: its fields give its leaf hash, "
    "the customer commitment opens to your customer id, the detail is the one hashed, and the "
    "readable copy says the same",
    "that the log at the checkpoint holds each entry (RFC 9162 inclusion proofs), and that "
    "entries next to each other in the log link to each other",
    "that you were one of the members each count commits to (membership proofs)",
    "that the checkpoint is signed by the key, and, with --checkpoint, that it extends a "
    "checkpoint you kept (RFC 9162 consistency proof)",
)
CANNOT = (
    "that the key is the log's real key: only a key you got some other way (--key) makes the "
    "signature mean something",
    "that every access to your data was logged, or that this file lists every entry about "
    "you: the log commits to entries, not to whom they are about",
    "that a supplier received what an entry says: the supplier's copy of a count is not in "
    "the log, so that it equals the log's cannot be checked",
    "that the member number a count's record binds is yours: the record opens to that "
    "number, and that the number is yours is the log's statement",
    "the sentences: reasons are written from the structured reason when shown; the "
    "structured reason is what is checked",
    "the details of format-1 entries: they commit to the ciphertext, not the plaintext",
    "that others are shown the same log: compare checkpoints with others, or a witness's",
)


class BadInput(Exception):
    """The input is not something to check (the message is one line)."""


class _Malformed(Exception):
    """A field of one entry cannot be read."""


@dataclass
class Report:
    """What a check found: problems (each names the entry), checks asked for that could not
    be made, and what passed."""

    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    #: What was not checked and not asked for (a detail the file could not open).
    notes: list[str] = field(default_factory=list)
    origin: str = ""
    customer_id: str = ""
    key: str = ""
    key_trusted: bool = False
    checkpoint: note.Checkpoint | None = None
    signature_ok: bool = False
    entries: int = 0
    counts: int = 0
    inclusion: int = 0
    membership: int = 0
    links: int = 0
    consistency: int = 0

    @property
    def status(self) -> int:
        if self.problems or self.unchecked:
            return FAILED
        return OK if self.key_trusted else UNTRUSTED


# -- reading --------------------------------------------------------------------------------


def read_document(path: str) -> dict[str, Any]:
    """A proof file, or :class:`BadInput` saying in one line why it is not one."""
    text = _read_text(path)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise BadInput(f"{path} is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BadInput(f"{path} is not an Infomediary proof file (format {FORMAT})")
    for name, kind in (
        ("vkey", str),
        ("checkpoint", str),
        ("customer_id", str),
        ("entries", list),
        ("counted_in", list),
    ):
        if not isinstance(document.get(name), kind):
            raise BadInput(f"{path} is not a complete proof file: {name} is missing")
    if not isinstance(document.get("consistency", []), list):
        raise BadInput(f"{path} is not a complete proof file: consistency is not a list")
    return document


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None


def read_key(value: str) -> note.Verifier:
    """``--key``: a verifier key (``name+id+base64``), or a file holding one."""
    candidate = Path(value)
    text = _read_text(value) if "+" not in value and candidate.is_file() else value
    try:
        return note.Verifier.from_vkey(text.strip())
    except note.NoteError as exc:
        raise BadInput(f"--key: {exc}") from None


def read_old_checkpoint(path: str) -> str:
    """``--checkpoint``: the signed note a checkpoint file holds, or an older proof file's."""
    text = _read_text(path)
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise BadInput(f"{path} is neither a checkpoint nor JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("checkpoint"), str):
            raise BadInput(f"{path} is neither a checkpoint nor a proof file")
        return str(document["checkpoint"])
    return text


def _bytes(value: Any, what: str, size: int | None = merkle.HASH_SIZE) -> bytes:
    if not isinstance(value, str):
        raise _Malformed(f"{what} is not base64 text")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _Malformed(f"{what} is not base64") from None
    if size is not None and len(raw) != size:
        raise _Malformed(f"{what} is not {size} bytes")
    return raw


def _optional(value: Any, what: str, size: int | None = merkle.HASH_SIZE) -> bytes | None:
    return None if value is None else _bytes(value, what, size)


def _hashes(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise _Malformed(f"{what} is not a list of hashes")
    return [_bytes(node, what) for node in value]


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Malformed(f"{what} is not a whole number")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(f"{what} is not a text")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is missing")
    return value


def _unsalted(plaintext: bytes) -> Any:
    try:
        detail = json.loads(plaintext)
    except ValueError:
        return None
    if isinstance(detail, dict):
        detail.pop(SALT, None)
    return detail


def _micros(iso: Any) -> int | None:
    if not isinstance(iso, str):
        return None
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // _MICROSECOND


# -- checking -------------------------------------------------------------------------------


@dataclass
class _Checked:
    seq: int
    leaf: bytes
    prev: bytes


class _Checker:
    def __init__(
        self,
        document: dict[str, Any],
        key: note.Verifier | None,
        origin: str | None,
    ) -> None:
        self.doc = document
        self.customer_id = str(document["customer_id"])
        self.report = Report(customer_id=self.customer_id)
        self.trusted = key
        self.origin = origin
        self.checked: dict[int, _Checked] = {}

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    def run(self, older: Sequence[tuple[str, str]]) -> Report:
        self._checkpoint()
        for index, raw in enumerate(self.doc["entries"]):
            self._entry(raw, index, own=True)
        for index, raw in enumerate(self.doc["counted_in"]):
            self._entry(raw, index, own=False)
        self._links()
        for label, text in older:
            self._older(label, text)
        return self.report

    # the checkpoint and its key

    def _checkpoint(self) -> None:
        report = self.report
        try:
            in_file: note.Verifier | None = note.Verifier.from_vkey(str(self.doc["vkey"]))
        except note.NoteError as exc:
            in_file = None
            self.problem(f"the file's verifier key: {exc}")
        if self.trusted is not None and in_file is not None and in_file != self.trusted:
            self.problem(
                f"the file names the key {in_file.vkey}, not the key you trust "
                f"({self.trusted.vkey})"
            )
        verifier = self.trusted or in_file
        report.key_trusted = self.trusted is not None
        report.key = verifier.vkey if verifier else ""
        stated = self.doc.get("origin")
        origin = self.origin or (stated if isinstance(stated, str) else None)
        if origin is None and verifier is not None:
            origin = verifier.name
        if self.origin is not None and stated != self.origin:
            self.problem(f"the file says it is of the log {stated}, not {self.origin}")
        report.origin = origin or ""
        text = str(self.doc["checkpoint"])
        if verifier is not None and origin is not None:
            try:
                report.checkpoint = note.open_checkpoint(text, verifier, origin)
                report.signature_ok = True
            except note.NoteError as exc:
                self.problem(f"checkpoint: {exc}")
        if report.checkpoint is None:
            try:  # keep checking the proofs against the unsigned text, to name every problem
                report.checkpoint = note.parse_checkpoint(text[: text.rfind("\n\n") + 1])
            except note.NoteError as exc:
                self.problem(f"checkpoint: {exc}; no proof can be checked")
        if report.checkpoint is not None and self.doc.get("tree_size") not in (
            None,
            report.checkpoint.size,
        ):
            self.problem("the file's tree_size is not its checkpoint's size")

    # one entry

    def _entry(self, raw: Any, index: int, *, own: bool) -> None:
        where = "entries" if own else "counted_in"
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("seq"), int)
            or isinstance(raw.get("seq"), bool)
        ):
            self.problem(f"{where}[{index}]: not an entry (no seq)")
            return
        seq = int(raw["seq"])
        name = f"entry {seq}" if own else f"entry {seq} (a count you were part of)"
        if seq in self.checked:
            self.problem(f"{name}: the file holds it twice")
            return
        try:
            if raw.get("format") == entry_v2.VERSION:
                checked = self._format_2(raw, seq, name, own=own)
            elif raw.get("format") == 1:
                checked = self._format_1(raw, seq, name, own=own)
            else:
                self.problem(f"{name}: unknown entry format {raw.get('format')!r}")
                return
            if checked is None:
                return
            stated = _bytes(raw.get("leaf_hash"), "its leaf hash")
            if stated != checked.leaf:
                self.problem(
                    f"{name}: its fields do not give its leaf hash: a field was altered "
                    "after the log committed to it"
                )
            # the stated leaf is what the proofs and the next entry's link are checked with,
            # so one altered field is one problem
            checked.leaf = stated
            self._inclusion(raw, seq, name, stated)
        except _Malformed as exc:
            self.problem(f"{name}: cannot be read: {exc}")
            return
        self.checked[seq] = checked
        if own:
            self.report.entries += 1
        else:
            self.report.counts += 1

    def _format_2(self, raw: dict[str, Any], seq: int, name: str, *, own: bool) -> _Checked | None:
        c = _object(raw.get("committed"), "its committed fields")
        fields = entry_v2.Entry(
            seq=_int(c.get("seq"), "seq"),
            time_us=_int(c.get("time_us"), "time_us"),
            actor_type=_text(c.get("actor_type"), "actor_type"),
            actor_id=_text(c.get("actor_id"), "actor_id"),
            customer=_optional(c.get("customer"), "customer"),
            action=_text(c.get("action"), "action"),
            categories=_text(c.get("categories"), "categories"),
            purpose=_text(c.get("purpose"), "purpose"),
            outcome=_text(c.get("outcome"), "outcome"),
            reason=_text(c.get("reason"), "reason"),
            request=_text(c.get("request"), "request"),
            detail=_optional(c.get("detail"), "detail"),
            members=_optional(c.get("members"), "members"),
            prev=_bytes(c.get("prev"), "prev"),
        )
        if fields.seq != seq:
            self.problem(f"{name}: its committed fields are of entry {fields.seq}")
        try:
            leaf = fields.leaf_hash()
        except entry_v2.EntryError as exc:
            raise _Malformed(str(exc)) from None
        openings = _object(raw.get("openings"), "its openings")
        self._customer(fields, openings, name, own=own)
        self._detail(fields, openings, raw, name)
        self._shown(raw, name, fields)
        if not own:
            self._membership(raw, name, fields)
        return _Checked(seq, leaf, fields.prev)

    def _customer(
        self, fields: entry_v2.Entry, openings: dict[str, Any], name: str, *, own: bool
    ) -> None:
        if not own:
            if fields.customer is not None:
                self.problem(f"{name}: a count commits to no customer of its own, this one does")
            return
        customer_id = openings.get("customer_id")
        if customer_id != self.customer_id:
            self.problem(f"{name}: it is given as customer {customer_id!r}'s, not yours")
            return
        opening = _bytes(openings.get("customer_opening"), "the customer opening")
        if fields.customer is None:
            self.problem(f"{name}: it commits to no customer, so it is not shown to be yours")
        elif entry_v2.customer_commitment(opening, self.customer_id) != fields.customer:
            self.problem(
                f"{name}: its customer commitment does not open to your customer id: it is "
                "not yours, or its opening was altered"
            )

    def _detail(
        self, fields: entry_v2.Entry, openings: dict[str, Any], raw: dict[str, Any], name: str
    ) -> None:
        plaintext = _optional(openings.get("detail_plaintext"), "the detail", None)
        shown = raw.get("shown")
        if fields.detail is None:
            if plaintext is not None:
                self.problem(f"{name}: it commits to no detail, yet the file gives one")
            return
        if plaintext is None:
            if isinstance(shown, dict) and shown.get("detail") is not None:
                self.problem(f"{name}: a detail is shown but none is given to check it against")
            else:
                self.report.notes.append(f"{name}: its detail could not be opened; not checked")
            return
        if entry_v2.detail_hash(plaintext) != fields.detail:
            self.problem(
                f"{name}: the detail does not match the hash the entry commits to: the detail "
                "was altered"
            )
        elif isinstance(shown, dict) and shown.get("detail") != _unsalted(plaintext):
            self.problem(f"{name}: the detail shown is not the detail the entry commits to")

    def _shown(self, raw: dict[str, Any], name: str, fields: entry_v2.Entry) -> None:
        shown = raw.get("shown")
        if not isinstance(shown, dict):
            self.problem(f"{name}: it holds no readable copy, or one that is not an object")
            return
        wrong = []
        if _micros(shown.get("time")) != fields.time_us:
            wrong.append("time")
        for key in ("action", "purpose", "outcome"):
            if shown.get(key) != getattr(fields, key):
                wrong.append(key)
        if shown.get("categories") != [c for c in fields.categories.split(",") if c]:
            wrong.append("categories")
        try:
            committed_reason = json.loads(fields.reason) if fields.reason else None
        except ValueError:
            committed_reason = None
        if shown.get("reason_data") != committed_reason:
            wrong.append("reason")
        actor = shown.get("actor")
        actor_id = fields.actor_id or self.customer_id
        if not isinstance(actor, dict) or (actor.get("type"), actor.get("id")) != (
            fields.actor_type,
            actor_id,
        ):
            wrong.append("actor")
        if wrong:
            self.problem(
                f"{name}: the readable copy differs from what the entry commits to "
                f"({', '.join(wrong)})"
            )

    def _membership(self, raw: dict[str, Any], name: str, fields: entry_v2.Entry) -> None:
        proof = raw.get("membership")
        if fields.members is None:
            self.problem(f"{name}: it commits to no member tree")
            return
        if not isinstance(proof, dict):
            self.problem(f"{name}: it holds no membership proof")
            return
        try:
            record = entry_v2.member_record(
                _bytes(proof.get("opening"), "the member's opening", entry_v2.RECORD_SIZE),
                _int(proof.get("ordinal"), "the member's ordinal"),
            )
            if record != _bytes(proof.get("record"), "the member record", entry_v2.RECORD_SIZE):
                raise merkle.ProofError("the member record is not the one its opening gives")
            entry_v2.verify_membership(
                record,
                _bytes(
                    proof.get("bucket"),
                    "the bucket",
                    entry_v2.RECORD_SIZE * entry_v2.BUCKET_RECORDS,
                ),
                _int(proof.get("leaf_index"), "the bucket's index"),
                _int(proof.get("leaves"), "the member tree's size"),
                _hashes(proof.get("proof"), "the membership proof"),
                fields.members,
            )
        except (merkle.ProofError, entry_v2.EntryError) as exc:
            self.problem(f"{name}: the membership proof fails: {exc}")
            return
        self.report.membership += 1

    def _format_1(self, raw: dict[str, Any], seq: int, name: str, *, own: bool) -> _Checked | None:
        body = _object(raw.get("committed_v1"), "its committed fields")
        try:
            leaf = merkle.leaf_hash(canonical_v1(body))
        except EntryV1Error as exc:
            raise _Malformed(str(exc)) from None
        if body.get("seq") != seq:
            self.problem(f"{name}: its committed fields are of entry {body.get('seq')}")
        customer = body.get("customer")
        if own and customer != self.customer_id:
            self.problem(f"{name}: it names customer {customer!r}, not you")
        if not own and customer is not None:
            self.problem(f"{name}: a count names no customer of its own, this one does")
        if not own:
            self.problem(f"{name}: a count of format 1 can hold no membership proof")
        return _Checked(seq, leaf, _bytes(body.get("prev"), "prev"))

    def _inclusion(self, raw: dict[str, Any], seq: int, name: str, leaf: bytes) -> None:
        checkpoint = self.report.checkpoint
        if checkpoint is None:
            return
        if seq >= checkpoint.size:
            self.problem(f"{name}: it is past the checkpoint, which holds {checkpoint.size}")
            return
        proof = _hashes(raw.get("inclusion_proof"), "the inclusion proof")
        try:
            merkle.verify_inclusion(seq, checkpoint.size, leaf, proof, checkpoint.root)
        except merkle.ProofError as exc:
            self.problem(
                f"{name}: the log at the checkpoint does not hold it: {exc} (the entry or "
                "its proof was altered)"
            )
            return
        self.report.inclusion += 1

    # links and older checkpoints

    def _links(self) -> None:
        for seq, checked in sorted(self.checked.items()):
            if seq == 0 and checked.prev != _ZERO:
                self.problem("entry 0: it links to an entry before the first")
            before = self.checked.get(seq - 1)
            if before is None:
                continue
            if checked.prev != before.leaf:
                self.problem(
                    f"entry {seq}: it does not link to entry {seq - 1} (its prev is not that "
                    "entry's leaf hash)"
                )
            else:
                self.report.links += 1

    def _older(self, label: str, text: str) -> None:
        report = self.report
        verifier = self.trusted
        if verifier is None:
            try:
                verifier = note.Verifier.from_vkey(str(self.doc["vkey"]))
            except note.NoteError:
                verifier = None
        current = report.checkpoint
        if verifier is None or current is None or not report.signature_ok:
            report.unchecked.append(
                f"{label}: not compared, as this file's own checkpoint is not verified"
            )
            return
        try:
            old = note.open_checkpoint(text, verifier, report.origin)
        except note.NoteError as exc:
            self.problem(f"{label}: {exc}")
            return
        if old.size > current.size:
            self.problem(
                f"{label}: it holds {old.size} entries, more than this file's checkpoint "
                f"({current.size}): the log does not extend it (it shrank, or is another log); "
                "if it is in fact newer than this file, check it the other way round "
                f"(GET /api/v1/log/proof/consistency?from={current.size}&to={old.size})"
            )
            return
        if old.size == current.size:
            if old.root != current.root:
                self.problem(
                    f"{label}: another root for the same size {old.size}: the log was rewritten"
                )
            else:
                report.consistency += 1
            return
        if old.size == 0:
            report.consistency += 1
            return
        proof = next(
            (
                p
                for p in self.doc.get("consistency", [])
                if isinstance(p, dict) and p.get("from") == old.size and p.get("to") == current.size
            ),
            None,
        )
        if proof is None:
            report.unchecked.append(
                f"{label}: cannot be checked offline: this file holds no consistency proof "
                f"from size {old.size} to {current.size}. Download the file again with "
                f"since={old.size}, or fetch /api/v1/log/proof/consistency?from={old.size}"
                f"&to={current.size} from the log and check it with this checkpoint"
            )
            return
        try:
            nodes = _hashes(proof.get("proof"), "the consistency proof")
            merkle.verify_consistency(old.size, current.size, old.root, current.root, nodes)
        except _Malformed as exc:
            self.problem(f"{label}: the consistency proof cannot be read: {exc}")
            return
        except merkle.ProofError as exc:
            self.problem(
                f"{label}: this file's checkpoint ({current.size} entries) does not extend it "
                f"({old.size} entries): {exc}"
            )
            return
        report.consistency += 1


def check(
    document: dict[str, Any],
    *,
    key: note.Verifier | None = None,
    origin: str | None = None,
    older: Sequence[tuple[str, str]] = (),
) -> Report:
    """Every check of a proof file (as :func:`read_document` gives it); ``older`` holds
    (label, signed checkpoint) pairs of checkpoints kept before."""
    return _Checker(document, key, origin).run(older)


# -- output ---------------------------------------------------------------------------------


def render(path: str, report: Report, out: TextIO) -> None:
    def line(text: str = "") -> None:
        out.write(text + "\n")

    checkpoint = report.checkpoint
    line(f"Checking {path}")
    line(f"  log:        {report.origin or '(unknown)'}")
    line(f"  customer:   {report.customer_id} (the entries are checked to be this customer's)")
    trust = "the key you gave" if report.key_trusted else "the file's own key, NOT one you trust"
    line(f"  key:        {report.key or '(none)'} ({trust})")
    if checkpoint is not None:
        root = base64.b64encode(checkpoint.root).decode()
        line(f"  checkpoint: {checkpoint.size} entries, root {root}")
    line()
    if report.problems:
        line(f"Problems ({len(report.problems)}):")
        for problem in report.problems:
            line(f"  {problem}")
    else:
        line("No problems found.")
    if report.unchecked:
        line()
        line("Asked for, but not checked:")
        for item in report.unchecked:
            line(f"  {item}")
    if report.notes:
        line()
        line("Not checked:")
        for item in report.notes:
            line(f"  {item}")
    line()
    if not report.signature_ok:
        signature = "NOT verified"
    elif report.key_trusted:
        signature = "good under the key you gave"
    else:
        signature = "valid under the file's own key, which you have not checked"
    line(
        f"Summary: {report.entries} entries of yours and {report.counts} counts you were part "
        f"of; checkpoint signature {signature}; {report.inclusion} inclusion proofs, "
        f"{report.membership} membership proofs, {report.links} links between entries and "
        f"{report.consistency} older checkpoints checked; {len(report.problems)} problems."
    )
    if not report.key_trusted:
        line()
        line(
            "Note: the signature was checked against the key inside this file. That proves "
            "nothing by itself (whoever made the file chose the key). Get the log's key some "
            "other way (GET /api/v1/log/key, from someone you trust) and pass it with --key."
        )
    line()
    line("What this can check:")
    for item in CAN:
        line(f"  - {item}")
    line("What it cannot check:")
    for item in CANNOT:
        line(f"  - {item}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"{self.prog}: {message}\n")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    parser = _Parser(
        prog="python -m infomediary.verify",
        description="Check an Infomediary access-log proof file offline.",
    )
    parser.add_argument("file", help="the proof file (access-log-proofs.json)")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="OLD",
        help="a checkpoint kept before (a signed checkpoint, or an older proof file); "
        "may be given more than once",
    )
    parser.add_argument(
        "--key", help="the log's verifier key, got some other way (or a file holding it)"
    )
    parser.add_argument("--origin", help="the log's origin, if you know it")
    args = parser.parse_args(argv)
    try:
        document = read_document(args.file)
        key = read_key(args.key) if args.key else None
        older = [(f"checkpoint {p}", read_old_checkpoint(p)) for p in args.checkpoint]
    except BadInput as exc:
        sys.stderr.write(f"{parser.prog}: {exc}\n")
        return BAD_INPUT
    report = check(document, key=key, origin=args.origin, older=older)
    render(args.file, report, out)
    return report.status


if __name__ == "__main__":
    sys.exit(main())
