"""The keyring: versioned key-encryption keys plus the keys of keyed hashes.

A provider of KEKs (:class:`KeyProvider`) wraps and unwraps data keys itself: the vault
hands it a DEK and a KEK version and gets the RFC 3394 wrapping back, so a KEK never has to
leave the provider. The default is a JSON file in the instance folder with mode 0600
(:class:`FileKeyring`); a PKCS#11 token (``infomediary.crypto.pkcs11_keyring``) keeps the
KEKs inside an HSM while the file keeps only the named secrets; a cloud KMS would plug into
the same methods (docs/OPERATIONS.md, "Keys in an HSM").

The named secrets (blind index, pseudonyms, sessions, signing) are keys of keyed hashes
used on every request, so they stay in the file with any provider: asking a token for each
HMAC would put it on every request's path.

A running process re-reads the file when it changed (``keys rotate`` and ``keys prune`` run
in other processes): before every wrap, and whenever it is asked for a KEK version it has
not loaded, so a server outlives a rotation without a restart. A re-read may add or drop
KEK versions but never change a key it already holds: that would be another instance's
keyring, and is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

FORMAT = 1
#: Named 256-bit secrets besides the KEKs, each for one keyed hash so that one leaking
#: does not compromise the others.
NAMED_KEYS = (
    "blind_index",
    "pseudonym",
    "session",
    "receipt_signing",
    "purchase_index",
    "log_commitment",
    "log_signing",
    "auditor_sealing",
)


class KeyringError(RuntimeError):
    """The keyring is missing, unreadable or does not match the database."""


class KeyProvider(Protocol):
    """What the vault asks of whoever holds the KEKs: wrap and unwrap DEKs under a version."""

    @property
    def active_kek_version(self) -> int: ...

    def kek_versions(self) -> list[int]: ...

    def wrap(self, version: int, dek: bytes) -> bytes:
        """The RFC 3394 wrapping of ``dek`` under KEK ``version``."""
        ...

    def unwrap(self, version: int, wrapped: bytes) -> bytes:
        """The DEK; :class:`KeyringError` if ``wrapped`` does not unwrap under ``version``."""
        ...

    def rewrap(self, wrapped: bytes, from_version: int, to_version: int) -> bytes:
        """The same DEK wrapped under ``to_version`` (a token does it without the DEK leaving)."""
        ...

    def secret(self, name: str) -> bytes: ...

    def refresh(self) -> bool: ...


class Keyring(KeyProvider, Protocol):
    """What the instance, its lease and rotation ask besides (both providers offer it)."""

    #: The keyring file (all keys, or with a token only the named secrets).
    path: Path

    @property
    def where(self) -> str:
        """Where the KEKs are, for messages: ``keyring /x/keyring.json`` or a token's label."""
        ...

    def kek(self, version: int) -> bytes:
        """The KEK's bytes, for bulk work in other processes; a token refuses."""
        ...

    def reload(self) -> bool: ...

    def on_change(self, listener: Callable[[], None]) -> None: ...

    def ensure_named_keys(self) -> bool: ...

    def add_kek(self) -> int: ...

    def remove_keks(self, versions: list[int]) -> None: ...

    def fingerprints(self) -> dict[str, str]: ...

    def close(self) -> None: ...


def fingerprint(key: bytes) -> str:
    """A public identifier of a key (HMAC of a constant under it), safe to store anywhere."""
    return hmac.new(key, b"infomediary/key-fingerprint/v1", hashlib.sha256).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise KeyringError(f"keyring entry {what} is not valid base64") from exc
    if len(raw) != 32:
        raise KeyringError(f"keyring entry {what} is not a 256-bit key")
    return raw


#: What a keyring file beside a PKCS#11 token says instead of holding KEKs.
PKCS11 = "pkcs11"


class FileKeyring:
    """A keyring file: ``{"format", "active_kek", "keks": {version: key}, "secrets": {...}}``.

    With ``holds_keks=False`` it is the file beside a token: ``"kek_provider": "pkcs11"``, no
    KEKs, only the named secrets (:class:`~infomediary.crypto.pkcs11_keyring.Pkcs11Keyring`).
    """

    def __init__(
        self,
        path: Path,
        keks: dict[int, bytes],
        active: int,
        named: dict[str, bytes],
        *,
        holds_keks: bool = True,
    ):
        self.path = path
        self.holds_keks = holds_keks
        self._keks = keks
        self._active = active
        self._named = named
        self._signature = _signature(path)
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []

    # -- loading and saving ---------------------------------------------------------------
    @classmethod
    def load(cls, path: Path, *, holds_keks: bool = True) -> FileKeyring:
        if not path.exists():
            raise KeyringError(
                f"keyring not found at {path}: run `infomediary init` for a new instance, "
                "or restore the keyring of this database"
            )
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyringError(
                f"keyring {path} is readable by other users (mode {mode:o}); chmod 600 it"
            )
        signature = _signature(path)  # before reading: a change after it is seen next time
        try:
            doc: dict[str, Any] = json.loads(path.read_text("utf-8"))
            if doc.get("format") != FORMAT:
                raise KeyringError(f"keyring {path} has an unknown format")
            beside_token = doc.get("kek_provider") == PKCS11
            if beside_token and holds_keks:
                raise KeyringError(
                    f"keyring {path} holds no KEKs: they are in a PKCS#11 token; "
                    "set INFOMEDIARY_KEY_PROVIDER=pkcs11 and the INFOMEDIARY_PKCS11_* settings"
                )
            if not beside_token and not holds_keks:
                raise KeyringError(
                    f"keyring {path} holds this instance's KEKs itself; "
                    "INFOMEDIARY_KEY_PROVIDER=pkcs11 needs one made by `infomediary init` with it"
                )
            keks = {int(v): _unb64(k, f"kek {v}") for v, k in doc["keks"].items()}
            named = {n: _unb64(k, n) for n, k in doc.get("secrets", {}).items()}
            active = int(doc["active_kek"]) if holds_keks else 0
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(f"keyring {path} is malformed") from exc
        if holds_keks and active not in keks:
            raise KeyringError(f"keyring {path} names an active KEK it does not hold")
        if not holds_keks and keks:
            raise KeyringError(f"keyring {path} is malformed: KEKs beside a PKCS#11 token")
        ring = cls(path, keks, active, named, holds_keks=holds_keks)
        ring._signature = signature
        return ring

    @classmethod
    def create(cls, path: Path, *, holds_keks: bool = True) -> FileKeyring:
        if path.exists():
            raise KeyringError(f"keyring {path} already exists")
        if holds_keks:
            ring = cls(path, {1: secrets.token_bytes(32)}, 1, {})
        else:
            ring = cls(path, {}, 0, {}, holds_keks=False)
        ring.ensure_named_keys()
        return ring

    def ensure_named_keys(self) -> bool:
        """Add any named secret this version needs; return whether the file changed."""
        missing = [n for n in NAMED_KEYS if n not in self._named]
        for name in missing:
            self._named[name] = secrets.token_bytes(32)
        if missing or not self.path.exists():
            self.save()
            return True
        return False

    def save(self) -> None:
        """Write atomically (temp file, fsync, rename) with mode 0600."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "active_kek": self._active,
            "keks": {str(v): _b64(k) for v, k in sorted(self._keks.items())},
            "secrets": {n: _b64(k) for n, k in sorted(self._named.items())},
        }
        if not self.holds_keks:
            doc.update(active_kek=None, kek_provider=PKCS11)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(doc, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        finally:
            if tmp.exists():
                tmp.unlink()
        self._signature = _signature(self.path)

    # -- re-reading -----------------------------------------------------------------------
    def refresh(self) -> bool:
        """Re-read the file if it changed since this process last read or wrote it.

        One ``stat`` when nothing changed. A missing file keeps the keys already loaded
        (``open_instance`` refuses to start without one; a running process keeps serving).
        Returns whether the KEKs or the active version changed.
        """
        current = _signature(self.path)
        if current is None or current == self._signature:
            return False
        return self.reload()

    def reload(self) -> bool:
        """Re-read the file; refuse one whose keys differ from those already loaded."""
        with self._lock:
            fresh = FileKeyring.load(self.path, holds_keks=self.holds_keks)
            for version in self._keks.keys() & fresh._keks.keys():
                if not hmac.compare_digest(self._keks[version], fresh._keks[version]):
                    raise KeyringError(
                        f"keyring {self.path} now holds a different KEK version {version}: "
                        "it was replaced by another instance's keyring"
                    )
            for name in self._named.keys() & fresh._named.keys():
                if not hmac.compare_digest(self._named[name], fresh._named[name]):
                    raise KeyringError(
                        f"keyring {self.path} now holds a different {name} key: "
                        "it was replaced by another instance's keyring"
                    )
            changed = fresh._keks.keys() != self._keks.keys() or fresh._active != self._active
            self._keks = fresh._keks
            self._active = fresh._active
            self._named = {**self._named, **fresh._named}
            self._signature = fresh._signature
        if changed:
            self._notify()
        return changed

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (no arguments) after the KEKs or the active version change."""
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    # -- KeyProvider ----------------------------------------------------------------------
    @property
    def where(self) -> str:
        return f"keyring {self.path}"

    @property
    def active_kek_version(self) -> int:
        return self._active

    def wrap(self, version: int, dek: bytes) -> bytes:
        return aes_key_wrap(self.kek(version), dek)

    def unwrap(self, version: int, wrapped: bytes) -> bytes:
        try:
            return aes_key_unwrap(self.kek(version), wrapped)
        except InvalidUnwrap:
            raise KeyringError(
                f"KEK version {version} does not unwrap the data keys it should: "
                "the keyring does not belong to this database"
            ) from None

    def rewrap(self, wrapped: bytes, from_version: int, to_version: int) -> bytes:
        """Unwraps first: a re-read that fetches ``to_version`` may drop ``from_version``."""
        dek = self.unwrap(from_version, wrapped)
        return aes_key_wrap(self.kek(to_version), dek)

    def kek(self, version: int) -> bytes:
        """The KEK of ``version``; a version not loaded yet makes the file be re-read once."""
        key = self._keks.get(version)
        if key is None and self.refresh():
            key = self._keks.get(version)
        if key is None:
            raise KeyringError(
                f"keyring {self.path} has no KEK version {version}; "
                "restore the keyring that wrapped these data keys"
            )
        return key

    def kek_versions(self) -> list[int]:
        return sorted(self._keks)

    def secret(self, name: str) -> bytes:
        try:
            return self._named[name]
        except KeyError:
            raise KeyringError(f"keyring {self.path} has no {name} key") from None

    # -- rotation -------------------------------------------------------------------------
    def add_kek(self) -> int:
        """Create a new KEK version, make it active and save; returns the version."""
        if not self.holds_keks:
            raise KeyringError(f"keyring {self.path} holds no KEKs: they are in a PKCS#11 token")
        with self._lock:
            self.refresh()
            version = max(self._keks) + 1
            self._keks = {**self._keks, version: secrets.token_bytes(32)}
            self._active = version
            self.save()
        self._notify()
        return version

    def remove_kek(self, version: int) -> None:
        self.remove_keks([version])

    def remove_keks(self, versions: list[int]) -> None:
        """Drop KEK versions (never the active one) and save once."""
        with self._lock:
            self.refresh()
            if self._active in versions:
                raise KeyringError("the active KEK cannot be removed")
            self._keks = {v: k for v, k in self._keks.items() if v not in versions}
            self.save()
        self._notify()

    def close(self) -> None:
        """Nothing to give back: the file is read whole."""

    def fingerprints(self) -> dict[str, str]:
        """Fingerprints of every key, named as stored in ``key_fingerprints``."""
        prints = {f"kek:{v}": fingerprint(k) for v, k in self._keks.items()}
        prints.update({f"secret:{n}": fingerprint(k) for n, k in self._named.items()})
        return prints


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What changes when the file is rewritten (a save replaces it: a new inode)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)
