"""The keyring: versioned key-encryption keys plus the keys of keyed hashes.

The default keyring is a JSON file in the instance folder with mode 0600. Anything that
offers :class:`KeyProvider`'s methods (a KMS client, say) can stand in for it: the vault
only asks for a KEK by version and for a named secret.

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
    @property
    def active_kek_version(self) -> int: ...

    def kek(self, version: int) -> bytes: ...

    def kek_versions(self) -> list[int]: ...

    def secret(self, name: str) -> bytes: ...

    def refresh(self) -> bool: ...


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


class FileKeyring:
    """A keyring file: ``{"format", "active_kek", "keks": {version: key}, "secrets": {...}}``."""

    def __init__(self, path: Path, keks: dict[int, bytes], active: int, named: dict[str, bytes]):
        self.path = path
        self._keks = keks
        self._active = active
        self._named = named
        self._signature = _signature(path)
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []

    # -- loading and saving ---------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> FileKeyring:
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
            keks = {int(v): _unb64(k, f"kek {v}") for v, k in doc["keks"].items()}
            named = {n: _unb64(k, n) for n, k in doc.get("secrets", {}).items()}
            active = int(doc["active_kek"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(f"keyring {path} is malformed") from exc
        if active not in keks:
            raise KeyringError(f"keyring {path} names an active KEK it does not hold")
        ring = cls(path, keks, active, named)
        ring._signature = signature
        return ring

    @classmethod
    def create(cls, path: Path) -> FileKeyring:
        if path.exists():
            raise KeyringError(f"keyring {path} already exists")
        ring = cls(path, {1: secrets.token_bytes(32)}, 1, {})
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
        doc = {
            "format": FORMAT,
            "active_kek": self._active,
            "keks": {str(v): _b64(k) for v, k in sorted(self._keks.items())},
            "secrets": {n: _b64(k) for n, k in sorted(self._named.items())},
        }
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
            fresh = FileKeyring.load(self.path)
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
    def active_kek_version(self) -> int:
        return self._active

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
