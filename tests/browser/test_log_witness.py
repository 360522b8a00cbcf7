"""The browser keeps a witness of the access log (static/js/log-witness.js), in Debian's
headless Chromium.

The first visit of "Who accessed my data" after a checkpoint is signed keeps it in the
browser's localStorage; after the log grows and a new checkpoint is signed, the next visit
proves the old one part of the new (RFC 9162 consistency, Ed25519 signature by Web Crypto);
after a forger rewrites the history and signs again with the instance's real key, the next
visit warns and keeps nothing new. The script's verifier is also run on transparency-dev's RFC
9162 consistency vectors, and its note parser on the server's real checkpoint.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import Locator, expect
from sqlalchemy import delete

from infomediary.audit.log import Actor, LogEvent, append
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, LogCheckpoint
from infomediary.services import checkpoints
from infomediary.tlog import merkle, note
from tests.browser_support import BaseTab, open_tab, screenshot
from tests.factories import make_customer
from tests.functional.test_checkpoints import rebuild

pytestmark = [
    pytest.mark.browser,
    # One backend is enough to test the browser side; the storage tests cover both.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]

EMAIL = "ida@example.org"
PASSWORD = "correct horse battery staple"
ORIGIN = "localhost/log"
STORED = f"infomediary.log-witness/{ORIGIN}"
VECTORS = Path(__file__).resolve().parents[1] / "unit" / "infomediary" / "tlog" / "vectors"


@pytest.fixture
def tab(live_server: str, chromium_path: str) -> Iterator[BaseTab]:
    with open_tab(BaseTab, live_server, chromium_path) as result:
        yield result


def log_in(tab: BaseTab) -> None:
    page = tab.page
    tab.goto("/login")
    page.get_by_label("Email address").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Log in")


def sign(inst: Instance) -> checkpoints.SignedCheckpoint:
    with inst.sessions() as session:
        return checkpoints.sign(session, inst).checkpoint


def grow(inst: Instance, entries: int, label: str = "entry") -> None:
    with inst.sessions() as session:
        for n in range(entries):
            append(session, LogEvent(Actor.system("test"), "read", None, reason=f"{label} {n}"))
        session.commit()


def witness(tab: BaseTab) -> Locator:
    return tab.page.locator("#log-witness")


def visit(tab: BaseTab) -> Locator:
    """Open the activity page and wait for the witness to have spoken."""
    tab.goto("/activity")
    status = witness(tab)
    expect(status).to_have_attribute("data-state", re.compile("."))
    assert status.get_attribute("data-state") == "info", status.text_content()
    return status


def kept(tab: BaseTab) -> dict[str, Any] | None:
    raw = tab.page.evaluate(f"() => localStorage.getItem({json.dumps(STORED)})")
    return None if raw is None else dict(json.loads(raw))


def forge(inst: Instance, seq: int) -> None:
    """A forger with the database and the keyring: one entry of the history is changed, every
    hash recomputed, the checkpoints dropped, and a new one signed with the real key."""
    with inst.sessions() as session:
        session.execute(delete(LogCheckpoint))
        row = session.get(AccessLogEntry, seq)
        assert row is not None
        row.purpose = "rewritten"
        rebuild(session)


def test_the_browser_keeps_a_checkpoint_and_proves_the_next_one_extends_it(
    tab: BaseTab, inst: Instance, tmp_path: Path
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    page = tab.page
    log_in(tab)
    first = sign(inst)

    # First visit: the checkpoint is kept, to be checked next time.
    status = visit(tab)
    expect(page.get_by_role("status").filter(has_text="This browser now keeps")).to_have_text(
        "This browser now keeps the access log's latest signed checkpoint "
        f"({first.size} entries). On your next visit it will check that the log was only "
        "added to since."
    )
    stored = kept(tab)
    assert stored is not None
    assert stored["size"] == str(first.size)
    assert stored["note"] == first.note
    assert stored["key"] == checkpoints.verifier_key(inst)
    expect(page.locator("#log-proofs-since")).to_have_value(str(first.size))

    # The log grows and a new checkpoint is signed: the next visit proves consistency.
    grow(inst, 6)
    second = sign(inst)
    assert second.size > first.size
    status = visit(tab)
    expect(status).to_have_text(
        f"Checked: the log you saw before ({first.size} entries) is part of today's "
        f"({second.size} entries)."
    )
    assert kept(tab)["size"] == str(second.size)  # type: ignore[index]
    expect(page.locator("#log-proofs-since")).to_have_value(str(second.size))
    screenshot(tab, tmp_path, "activity-witness")

    # Nothing new: the same checkpoint again.
    status = visit(tab)
    expect(status).to_have_text(
        f"Checked: the access log is as you saw it on your last visit ({second.size} entries)."
    )
    tab.assert_clean()

    # A forged history, re-signed with the instance's real key, and grown past the old size.
    forge(inst, 1)
    grow(inst, 3, "after")
    forged = sign(inst)
    assert forged.size > second.size
    tab.goto("/activity")
    expect(status).to_have_attribute("data-state", "warning")
    expect(status).to_contain_text("Warning: The access log was changed since your last visit")
    expect(status).to_contain_text(
        f"the log you saw before ({second.size} entries) is not part of today's "
        f"({forged.size} entries)"
    )
    expect(status).to_contain_text(
        "tell us at privacy@infomediary.example and an independent auditor"
    )
    expect(status.locator("details pre").first).to_have_text(second.note)
    # nothing new is kept: the evidence stays
    assert kept(tab)["size"] == str(second.size)  # type: ignore[index]
    assert kept(tab)["note"] == second.note  # type: ignore[index]
    expect(page.locator("#log-proofs-since")).to_have_value(str(second.size))
    screenshot(tab, tmp_path, "activity-witness-warning")
    tab.assert_clean()


def test_a_smaller_log_another_root_or_another_key_is_a_warning(
    tab: BaseTab, inst: Instance
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    log_in(tab)
    signed = sign(inst)
    visit(tab)
    good = kept(tab)
    assert good is not None

    def keep(record: dict[str, Any]) -> None:
        tab.page.evaluate(
            "([key, value]) => localStorage.setItem(key, value)", [STORED, json.dumps(record)]
        )

    cases = [
        (
            {**good, "size": str(signed.size + 5)},
            f"the log is smaller than when you last saw it ({signed.size + 5} entries then, "
            f"{signed.size} entries now)",
        ),
        (
            {**good, "root": "A" * 43 + "="},
            f"the log has as many entries as when you last saw it ({signed.size} entries) but "
            "a different root hash",
        ),
        (
            {**good, "key": "localhost/log+00000000+AQ" + "A" * 42 + "="},
            "the log's signing key changed since your last visit",
        ),
    ]
    status = witness(tab)
    for record, problem in cases:
        keep(record)
        tab.goto("/activity")
        expect(status).to_have_attribute("data-state", "warning")
        expect(status).to_contain_text(problem)
        assert kept(tab) == record  # kept as it was
    keep(good)
    visit(tab)
    tab.assert_clean()


def test_before_any_checkpoint_nothing_is_asked_and_a_kept_one_is_missed(
    tab: BaseTab, inst: Instance
) -> None:
    make_customer(inst, email=EMAIL, password=PASSWORD)
    log_in(tab)
    tab.goto("/activity")
    page = tab.page
    expect(page.get_by_role("heading", level=1)).to_have_text("Who accessed my data")
    expect(page.locator("script[src='/static/js/log-witness.js']")).to_have_count(1)
    page.wait_for_function("() => window.infomediaryLogWitness !== undefined")
    expect(witness(tab)).to_be_hidden()
    assert not [url for url in tab.requests if "/api/v1/log/" in url]
    assert kept(tab) is None
    # A browser that kept a checkpoint, shown a log with none: a warning.
    page.evaluate(
        "([key, value]) => { localStorage.setItem(key, value);"
        " localStorage.setItem('infomediary.log-witness.origin', 'localhost/log'); }",
        [STORED, json.dumps({"key": "k", "size": "4", "root": "A" * 43 + "=", "note": "n"})],
    )
    tab.goto("/activity")
    expect(witness(tab)).to_contain_text(
        "the log shows no signed checkpoint, but this browser kept one of 4 entries"
    )
    tab.assert_clean()


# -- the script's own checks, in the browser ---------------------------------------------------

RUN_VECTORS = """async (cases) => {
  const w = window.infomediaryLogWitness;
  const wrong = [];
  for (const c of cases) {
    const bytes = (text) => text ? w.fromBase64(text) : new Uint8Array(0);
    let verified = true;
    try {
      await w.verifyConsistency(c.size1, c.size2, bytes(c.root1), bytes(c.root2),
                                (c.proof || []).map(bytes));
    } catch (error) {
      if (!(error instanceof w.ProofError)) { wrong.push(c.name + ': ' + error); continue; }
      verified = false;
    }
    if (verified === c.wantErr) wrong.push(c.name);
  }
  return wrong;
}"""


def test_the_scripts_verifier_agrees_with_rfc_9162_vectors(tab: BaseTab) -> None:
    cases = []
    for path in sorted((VECTORS / "consistency").rglob("*.json")):
        case = json.loads(path.read_text())
        case["name"] = str(path.relative_to(VECTORS))
        cases.append(case)
    assert len(cases) > 50
    assert any(not case["wantErr"] for case in cases)
    tab.goto("/login")
    tab.page.add_script_tag(url="/static/js/log-witness.js")
    assert tab.page.evaluate(RUN_VECTORS, cases) == []
    tab.assert_clean()


def test_the_scripts_verifier_accepts_the_servers_proofs_and_refuses_altered_ones(
    tab: BaseTab,
) -> None:
    """Every pair of sizes up to 33 (the vectors stop at 8 and miss some of the algorithm's
    paths), proved by tlog.merkle; each proof altered in one node must be refused."""
    tree = merkle.MemoryTree(merkle.leaf_hash(b"leaf %d" % n) for n in range(33))
    cases = []
    for second in range(1, 34):
        for first in range(1, second + 1):
            proof = merkle.consistency_proof(tree, first, second)
            good = {
                "size1": first,
                "size2": second,
                "root1": base64.b64encode(tree.root(first)).decode(),
                "root2": base64.b64encode(tree.root(second)).decode(),
                "proof": [base64.b64encode(node).decode() for node in proof],
                "wantErr": False,
                "name": f"{first}..{second}",
            }
            cases.append(good)
            for at in range(len(proof)):
                altered = list(proof)
                altered[at] = bytes([altered[at][0] ^ 1]) + altered[at][1:]
                cases.append(
                    {
                        **good,
                        "proof": [base64.b64encode(node).decode() for node in altered],
                        "wantErr": True,
                        "name": f"{first}..{second} altered at {at}",
                    }
                )
    tab.goto("/login")
    tab.page.add_script_tag(url="/static/js/log-witness.js")
    assert tab.page.evaluate(RUN_VECTORS, cases) == []
    tab.assert_clean()


CHECK_NOTE = """async ([vkey, note]) => {
  const w = window.infomediaryLogWitness;
  const verifier = await w.parseVkey(vkey);
  const parsed = w.parseNote(note);
  const checkpoint = w.parseCheckpoint(parsed.text);
  const signature = await w.checkSignature(verifier, parsed);
  const altered = w.parseNote(note.replace(/\\n[0-9]+\\n/, "\\n999\\n"));
  let refused = "";
  try { await w.checkSignature(verifier, altered); } catch (error) { refused = error.message; }
  return [checkpoint.origin, checkpoint.size.toString(), signature, refused];
}"""


def test_the_scripts_note_parser_and_signature_check_on_a_real_checkpoint(
    tab: BaseTab, inst: Instance
) -> None:
    grow(inst, 3)
    signed = sign(inst)
    tab.goto("/login")
    tab.page.add_script_tag(url="/static/js/log-witness.js")
    origin, size, signature, refused = tab.page.evaluate(
        CHECK_NOTE, [checkpoints.verifier_key(inst), signed.note]
    )
    assert (origin, size) == (ORIGIN, str(signed.size))
    # Debian's Chromium has Ed25519 in Web Crypto: the signature is really checked
    assert signature == "checked"
    assert refused == "the checkpoint's signature does not verify: it was altered"
    tab.assert_clean()


PARSE_VKEYS = """async (vkeys) => {
  const w = window.infomediaryLogWitness;
  const out = [];
  for (const vkey of vkeys) {
    try {
      const parsed = await w.parseVkey(vkey);
      out.push([parsed.name, Array.from(parsed.publicKey)]);
    } catch (error) {
      out.push([error.name, error.message]);
    }
  }
  return out;
}"""


def test_the_scripts_vkey_parser_reads_keys_as_the_server_writes_them(tab: BaseTab) -> None:
    # keys whose base64 holds a "+" (the separator of the vkey form) and keys that hold none
    verifiers = [
        note.Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)).verifier
        for n in range(40)
    ]
    assert any("+" in v.vkey.split("+", 2)[2] for v in verifiers)
    assert any("+" not in v.vkey.split("+", 2)[2] for v in verifiers)
    name, key_id, key = verifiers[0].vkey.split("+", 2)
    bad = [f"{name}+{'0' * 8}+{key}", f"{name}+{key_id}", f"{name}+{key_id}+{key[:-4]}"]
    tab.goto("/login")
    tab.page.add_script_tag(url="/static/js/log-witness.js")
    parsed = tab.page.evaluate(PARSE_VKEYS, [v.vkey for v in verifiers] + bad)
    assert parsed[: len(verifiers)] == [[v.name, list(v.public)] for v in verifiers]
    assert parsed[len(verifiers) :] == [
        ["NoteError", "the verifier key's ID does not match its name and key"],
        ["NoteError", "not a verifier key: expected name+keyid+base64key"],
        ["NoteError", "not an Ed25519 verifier key"],
    ]
    tab.assert_clean()
