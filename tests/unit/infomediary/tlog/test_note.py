"""C2SP signed notes and checkpoints: the published examples verify (the C2SP specification's,
and golang.org/x/mod/sumdb/note's test vectors, BSD-3-Clause, The Go Authors), ours round-trip,
and every way a note can be wrong is refused saying which."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infomediary.tlog.note import (
    Checkpoint,
    NoteError,
    Signer,
    Verifier,
    open_checkpoint,
    open_note,
    parse_checkpoint,
)

DASH = "\u2014"
C2SP_KEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n"
    f"{DASH} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOB"
    "H3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_KEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_NOTE = (
    f"{GO_TEXT}\n"
    f"{DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
    f"{DASH} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGw"
    "nWLox33WWd1RvMc+QQ=\n"
)
GO_SUMDB_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
ORIGIN = "infomediary.example/log"


def test_the_published_examples_verify() -> None:
    assert open_note(C2SP_NOTE, Verifier.from_vkey(C2SP_KEY)) == "This is an example message.\n"
    assert open_note(GO_NOTE, Verifier.from_vkey(PETER_KEY)) == GO_TEXT
    assert open_note(GO_NOTE, Verifier.from_vkey(ENOCH_KEY)) == GO_TEXT
    for vkey in (C2SP_KEY, PETER_KEY, ENOCH_KEY, GO_SUMDB_KEY):
        assert Verifier.from_vkey(vkey).vkey == vkey  # the key ID is computed as specified


def signer(name: str = ORIGIN) -> Signer:
    return Signer(name, Ed25519PrivateKey.generate())


def test_a_checkpoint_round_trips() -> None:
    ours = signer()
    checkpoint = Checkpoint(ORIGIN, 1_000_000, bytes(range(32)))
    note = ours.sign(checkpoint.text())
    assert note.startswith(f"{ORIGIN}\n1000000\nAAECAwQF")
    assert f"\n\n{DASH} {ORIGIN} " in note
    assert open_checkpoint(note, ours.verifier, ORIGIN) == checkpoint
    assert open_checkpoint(note, Verifier.from_vkey(ours.verifier.vkey), ORIGIN) == checkpoint


def test_each_fault_is_named() -> None:
    ours = signer()
    note = ours.sign(Checkpoint(ORIGIN, 5, bytes(32)).text())
    with pytest.raises(NoteError, match="does not verify: the note was altered"):
        open_note(note.replace("\n5\n", "\n6\n"), ours.verifier)
    with pytest.raises(NoteError, match="not signed by the key"):
        open_note(note, signer().verifier)
    with pytest.raises(NoteError, match="another log"):
        open_checkpoint(note, ours.verifier, "elsewhere.example/log")
    with pytest.raises(NoteError, match="not a signed note"):
        open_note("just some text\n", ours.verifier)
    with pytest.raises(NoteError, match="not a checkpoint"):
        open_checkpoint(ours.sign("hello\n"), ours.verifier, ORIGIN)
    for text in (f"{ORIGIN}\n05\nAAAA\n", f"{ORIGIN}\n-1\n{'A' * 44}\n", f"{ORIGIN}\n1\nxyz\n"):
        with pytest.raises(NoteError, match="not a checkpoint"):
            parse_checkpoint(text)
    for vkey in ("nonsense", "a+b+c", C2SP_KEY.replace("530d903a", "530d903b")):
        with pytest.raises(NoteError):
            Verifier.from_vkey(vkey)
