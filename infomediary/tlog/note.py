"""C2SP ``signed-note`` with Ed25519, and the C2SP ``tlog-checkpoint`` it signs.

A note is a UTF-8 text ending in a newline, a blank line, then signature lines ``— <key name>
base64(key ID || signature)``; the key ID is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``
and the Ed25519 signature is over the text, its final newline included. A verifier key is
written ``<name>+<key ID in hex>+base64(0x01 || public key)`` (the ``vkey`` form).

A checkpoint is the text ``<origin>\\n<tree size>\\n<base64 root hash>\\n`` and any extension
lines. :func:`open_checkpoint` checks the signature of the one key it is given and the origin,
and says which failed: not a note, not a checkpoint, signed by another key, a bad signature,
another origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = 0x01
DASH = "\u2014 "
_NAME = re.compile(r"[^\s+]+")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class NoteError(ValueError):
    """A note, verifier key or checkpoint that cannot be trusted; the message says why."""


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public).digest()[:4]


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not _NAME.fullmatch(parts[0]):
            raise NoteError("not a verifier key: expected name+keyid+base64key")
        name, hexid, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
            wanted = bytes.fromhex(hexid)
        except (binascii.Error, ValueError):
            raise NoteError("not a verifier key: its key ID or key is not encoded right") from None
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("not an Ed25519 verifier key")
        verifier = cls(name, raw[1:])
        if verifier.key_id != wanted:
            raise NoteError("the verifier key's ID does not match its name and key")
        return verifier


@dataclass(frozen=True)
class Signer:
    name: str
    private: Ed25519PrivateKey

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError("a key name holds no white space and no '+'")

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, _public_bytes(self.private.public_key()))

    def sign(self, text: str) -> str:
        """The signed note of ``text`` (which must end in a newline)."""
        _check_text(text)
        signature = self.private.sign(text.encode())
        line = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{DASH}{self.name} {line}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text ends in a newline and holds no control characters")


def open_note(note: str, verifier: Verifier) -> str:
    """The text of ``note`` if ``verifier``'s key signed it; :class:`NoteError` otherwise."""
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before signatures")
    text, lines = note[: cut + 1], note[cut + 2 :].splitlines()
    _check_text(text)
    if not lines or not all(line.startswith(DASH) for line in lines):
        raise NoteError("not a signed note: its signature lines are malformed")
    known = verifier.key_id
    for line in lines:
        name, _, encoded = line[len(DASH) :].partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError("not a signed note: a signature is not base64") from None
        if name != verifier.name or raw[:4] != known:
            continue  # another key's signature: ignored, as the specification says
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public).verify(raw[4:], text.encode())
        except InvalidSignature:
            raise NoteError(
                f"the signature of {name} does not verify: the note was altered"
            ) from None
        return text
    raise NoteError(f"the note is not signed by the key {verifier.name}+{known.hex()}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [
            self.origin,
            str(self.size),
            base64.b64encode(self.root).decode(),
            *self.extensions,
        ]
        return "".join(f"{line}\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("not a checkpoint: it needs an origin, a size and a root hash")
    origin, size, root, *extensions = lines[:-1]
    if not origin or not _SIZE.fullmatch(size):
        raise NoteError("not a checkpoint: its origin or tree size is malformed")
    try:
        digest = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise NoteError("not a checkpoint: its root hash is not base64") from None
    if len(digest) != 32:
        raise NoteError("not a checkpoint: its root hash is not 32 bytes")
    if any(not line for line in extensions):
        raise NoteError("not a checkpoint: an extension line is empty")
    return Checkpoint(origin, int(size), digest, tuple(extensions))


def open_checkpoint(note: str, verifier: Verifier, origin: str) -> Checkpoint:
    """The checkpoint ``note`` holds, if ``verifier`` signed it and it is of ``origin``."""
    checkpoint = parse_checkpoint(open_note(note, verifier))
    if checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is of another log: {checkpoint.origin}, not {origin}")
    return checkpoint
