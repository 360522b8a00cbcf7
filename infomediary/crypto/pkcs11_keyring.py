"""KEKs that never leave a PKCS#11 token (an HSM; SoftHSM2 in development and CI).

Each KEK is an AES-256 secret-key object generated inside the token, labelled
``infomediary-kek-<version>``, sensitive and not extractable, usable only to wrap and unwrap.
Data keys are wrapped with ``CKM_AES_KEY_WRAP`` (RFC 3394) by ``C_WrapKey``: the bytes are the
same format as the file keyring's. The DEK passes through the token as a session object that
is destroyed at once; a rotation's re-wrap unwraps and wraps inside the token, so there the
DEK does not come out at all.

The versions are the token's objects, found again whenever a version is asked for that is
not known yet (and on every :meth:`Pkcs11Keyring.refresh`), so a server sees the KEK another
process's ``keys rotate`` generated without a restart; the newest version is the keyring's
active one, and the database names the one new data keys are stored under, as with the file.

The named secrets stay in the keyring file (``FileKeyring(holds_keks=False)``): they key the
HMACs of every request, which a round trip to the token each time would slow down.

PKCS#11 logs in per application, not per session, and a logout ends every session of the
process; so a process holds one logged-in session per token, shared by every keyring that
opens it and closed when the last one closes. A forked child (gunicorn's workers) does not
inherit a usable session: the first use in the child initialises the module again and logs
in afresh. One lock serialises every call on a session (the module is initialised without
locking callbacks).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    MultipleObjectsReturned,
    NoSuchToken,
    ObjectHandleInvalid,
    PinIncorrect,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    SessionClosed,
    SessionHandleInvalid,
    UserNotLoggedIn,
)

from infomediary.crypto.keyring import FileKeyring, KeyringError

LABEL_PREFIX = "infomediary-kek-"
#: What a fingerprint of a token's KEK wraps: a fixed 256-bit constant. RFC 3394 is
#: deterministic, so the wrapping identifies the KEK without the KEK leaving the token.
FINGERPRINT_CONSTANT = hashlib.sha256(b"infomediary/kek-fingerprint/pkcs11/constant").digest()
FINGERPRINT_DOMAIN = b"infomediary/kek-fingerprint/pkcs11/v1"
#: A KEK: usable only to wrap and unwrap, never readable.
KEK_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
    Attribute.DERIVE: False,
}
#: A DEK passing through the token: a session object, wrapped and destroyed at once.
DEK_TEMPLATE: dict[Attribute, Any] = {
    Attribute.CLASS: ObjectClass.SECRET_KEY,
    Attribute.KEY_TYPE: KeyType.AES,
    Attribute.TOKEN: False,
    Attribute.SENSITIVE: False,
    Attribute.EXTRACTABLE: True,
}
#: The settings named in messages (this layer does not import the settings).
MODULE_SETTING = "INFOMEDIARY_PKCS11_MODULE"
LABEL_SETTING = "INFOMEDIARY_PKCS11_TOKEN_LABEL"
PIN_SETTING = "INFOMEDIARY_PKCS11_PIN"
#: Errors after which the session is opened again and the call retried once.
STALE = (SessionHandleInvalid, SessionClosed, UserNotLoggedIn)


class _Token:
    """This process's logged-in session on one token, shared by the keyrings that open it."""

    def __init__(self, module: str, label: str, pin: str) -> None:
        self.module = module
        self.label = label
        self._pin_digest = hashlib.sha256(pin.encode()).digest()
        self.lock = threading.RLock()
        self.users = 0
        #: Bumped whenever the session is replaced: object handles of an older one are void.
        self.generation = 0
        self._session: Any = None
        self._pid = 0
        self._open(pin)

    def same_pin(self, pin: str) -> bool:
        return hmac.compare_digest(self._pin_digest, hashlib.sha256(pin.encode()).digest())

    def _open(self, pin: str) -> None:
        try:
            lib = pkcs11.lib(self.module)
        except PKCS11Error:
            raise KeyringError(
                f"cannot load the PKCS#11 module {self.module}: check {MODULE_SETTING}"
            ) from None
        if self._pid and self._pid != os.getpid():
            lib.reinitialize()  # a forked child: the parent's initialisation is not ours
        try:
            token = lib.get_token(token_label=self.label)
        except NoSuchToken:
            raise KeyringError(
                f"no PKCS#11 token labelled {self.label!r} in {self.module}: check {LABEL_SETTING}"
            ) from None
        except MultipleObjectsReturned:
            raise KeyringError(
                f"more than one PKCS#11 token is labelled {self.label!r}: "
                f"give {LABEL_SETTING} a unique label"
            ) from None
        except PKCS11Error as exc:
            raise KeyringError(
                f"PKCS#11 module {self.module} cannot list its tokens ({type(exc).__name__}): "
                f"check {MODULE_SETTING} and the module's own configuration"
            ) from None
        try:
            self._session = token.open(rw=True, user_pin=pin)
        except (PinIncorrect, PinLenRange):
            raise KeyringError(
                f"PKCS#11 token {self.label!r} refused the user PIN: check {PIN_SETTING}"
            ) from None
        except PinLocked:
            raise KeyringError(
                f"PKCS#11 token {self.label!r} has locked its user PIN after failed logins: "
                "its security officer must reset it"
            ) from None
        except PKCS11Error as exc:
            raise KeyringError(
                f"cannot log in to PKCS#11 token {self.label!r}: {type(exc).__name__}"
            ) from None
        self._pid = os.getpid()
        self.generation += 1

    def session(self, pin: str) -> Any:
        """The session, opened again in a forked child. Call with :attr:`lock` held."""
        if self._pid != os.getpid() or self._session is None:
            self._session = None
            self._open(pin)
        return self._session

    def reopen(self, pin: str) -> None:
        self._session = None
        self._open(pin)

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and self._pid == os.getpid():
            with suppress(PKCS11Error):  # the module already ended it: nothing to give back
                session.close()

    def after_fork(self) -> None:
        self.lock = threading.RLock()  # a thread of the parent may have held it


_TOKENS: dict[tuple[str, str], _Token] = {}
_TOKENS_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    global _TOKENS_LOCK
    _TOKENS_LOCK = threading.Lock()
    for token in _TOKENS.values():
        token.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _acquire(module: str, label: str, pin: str) -> _Token:
    with _TOKENS_LOCK:
        token = _TOKENS.get((module, label))
        if token is not None and not token.same_pin(pin):
            raise KeyringError(
                f"this process is logged in to PKCS#11 token {label!r} with another PIN: "
                f"check {PIN_SETTING}"
            )
        if token is None:
            token = _Token(module, label, pin)
            _TOKENS[(module, label)] = token
        token.users += 1
        return token


def _release(token: _Token) -> None:
    with _TOKENS_LOCK:
        token.users -= 1
        if token.users > 0:
            return
        _TOKENS.pop((token.module, token.label), None)
    with token.lock:
        token.close()


def _version_of(label: str | None) -> int | None:
    if not label or not label.startswith(LABEL_PREFIX):
        return None
    digits = label[len(LABEL_PREFIX) :]
    return int(digits) if digits.isdigit() and not digits.startswith("0") else None


class Pkcs11Keyring:
    """KEKs in a PKCS#11 token, named secrets in the keyring file beside it."""

    def __init__(self, named: FileKeyring, module: str, token_label: str, pin: str) -> None:
        if named.holds_keks:
            raise KeyringError(f"keyring {named.path} holds KEKs; the token keeps them instead")
        self.path: Path = named.path
        self._named = named
        self._pin = pin
        self._token = _acquire(module, token_label, pin)
        self._keks: dict[int, Any] = {}
        self._generation = -1
        self._prints: dict[int, str] = {}
        self._listeners: list[Callable[[], None]] = []
        self._closed = False
        try:
            with self._session():
                pass  # a first session finds the token's KEKs
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(
        cls, path: Path, module: str, token_label: str, pin: str, *, create: bool = False
    ) -> Pkcs11Keyring:
        """The keyring of ``path`` and the token; with ``create`` (``infomediary init``), make
        the file and, if the token holds none yet, the first KEK inside the token."""
        if create:
            named = FileKeyring.create(path, holds_keks=False)
        else:
            named = FileKeyring.load(path, holds_keks=False)
        ring = cls(named, module, token_label, pin)
        if create and not ring._keks:
            ring.add_kek()
        if not ring._keks:
            ring.close()
            raise KeyringError(
                f"PKCS#11 token {token_label!r} holds no {LABEL_PREFIX}* KEK: restore the token "
                "this instance was made with, or run `infomediary init` for a new instance"
            )
        return ring

    # -- the session ------------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[Any]:
        """The shared session under its lock; handles found on an older one are dropped."""
        if self._closed:
            raise KeyringError(f"{self.where} was closed")
        with self._token.lock:
            session = self._token.session(self._pin)
            if self._generation != self._token.generation:
                self._keks = {}
                self._generation = self._token.generation
                self._scan_with(session)
            yield session

    def _call(self, work: Callable[[Any], bytes]) -> bytes:
        """Run ``work(session)``; once more after searching the token again if a KEK's handle
        went stale (another process destroyed it), or on a fresh session if the module
        dropped this one."""
        with self._session() as session:
            try:
                return work(session)
            except ObjectHandleInvalid:
                self._scan()
                return work(session)
            except STALE:
                self._token.reopen(self._pin)
        with self._session() as session:
            return work(session)

    def _scan(self) -> bool:
        return self._scan_with(self._token.session(self._pin))

    def _scan_with(self, session: Any) -> bool:
        """Find the token's KEK objects; returns whether the set of versions changed."""
        found: dict[int, Any] = {}
        for obj in session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES}
        ):
            version = _version_of(obj.label)
            if version is not None:
                found[version] = obj
        changed = found.keys() != self._keks.keys()
        self._keks = found
        self._prints = {v: p for v, p in self._prints.items() if v in found}
        return changed

    def _key(self, version: int) -> Any:
        """The KEK object of ``version`` (session lock held); a version not known yet makes
        the token be searched again once."""
        key = self._keks.get(version)
        if key is None and self._scan():
            key = self._keks.get(version)
        if key is None:
            raise KeyringError(
                f"{self.where} has no KEK version {version}; "
                "restore the token whose KEKs wrapped these data keys"
            )
        return key

    def close(self) -> None:
        """Give back this keyring's share of the session (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._keks = {}
        _release(self._token)

    # -- KeyProvider ------------------------------------------------------------------------
    @property
    def where(self) -> str:
        return f"PKCS#11 token {self._token.label!r}"

    @property
    def active_kek_version(self) -> int:
        if not self._keks:
            raise KeyringError(f"{self.where} holds no KEK")
        return max(self._keks)

    def kek_versions(self) -> list[int]:
        return sorted(self._keks)

    def kek(self, version: int) -> bytes:
        raise KeyringError(
            f"KEK version {version} is inside {self.where} and never leaves it: "
            "wrap through the keyring instead"
        )

    def wrap(self, version: int, dek: bytes) -> bytes:
        def work(session: Any) -> bytes:
            kek = self._key(version)
            obj = session.create_object({**DEK_TEMPLATE, Attribute.VALUE: dek})
            try:
                return bytes(kek.wrap_key(obj, mechanism=Mechanism.AES_KEY_WRAP))
            finally:
                obj.destroy()

        return self._call(work)

    def unwrap(self, version: int, wrapped: bytes) -> bytes:
        def work(_session: Any) -> bytes:
            obj = self._unwrapped(version, wrapped, readable=True)
            try:
                return bytes(obj[Attribute.VALUE])
            finally:
                obj.destroy()

        return self._call(work)

    def rewrap(self, wrapped: bytes, from_version: int, to_version: int) -> bytes:
        """Unwrap and wrap inside the token: the DEK is never readable on the way."""

        def work(_session: Any) -> bytes:
            target = self._key(to_version)
            obj = self._unwrapped(from_version, wrapped, readable=False)
            try:
                return bytes(target.wrap_key(obj, mechanism=Mechanism.AES_KEY_WRAP))
            finally:
                obj.destroy()

        return self._call(work)

    def _unwrapped(self, version: int, wrapped: bytes, *, readable: bool) -> Any:
        kek = self._key(version)
        template = {Attribute.TOKEN: False, Attribute.EXTRACTABLE: True}
        template[Attribute.SENSITIVE] = not readable
        try:
            return kek.unwrap_key(
                ObjectClass.SECRET_KEY,
                KeyType.AES,
                wrapped,
                mechanism=Mechanism.AES_KEY_WRAP,
                store=False,
                template=template,
            )
        except (*STALE, ObjectHandleInvalid):
            raise
        except PKCS11Error:
            raise KeyringError(
                f"KEK version {version} does not unwrap the data keys it should: "
                f"{self.where} does not belong to this database"
            ) from None

    def secret(self, name: str) -> bytes:
        return self._named.secret(name)

    # -- re-reading -------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Re-read the file if it changed and search the token for KEKs; returns whether the
        KEK versions changed."""
        self._named.refresh()
        with self._session():
            changed = self._scan()
        if changed:
            self._notify()
        return changed

    def reload(self) -> bool:
        self._named.reload()
        return self.refresh()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def ensure_named_keys(self) -> bool:
        return self._named.ensure_named_keys()

    # -- rotation ---------------------------------------------------------------------------
    def add_kek(self) -> int:
        """Generate the next KEK version inside the token; it becomes the active one."""
        with self._session() as session:
            self._scan()
            version = max(self._keks, default=0) + 1
            label = f"{LABEL_PREFIX}{version}"
            try:
                key = session.generate_key(
                    KeyType.AES,
                    256,
                    label=label,
                    id=str(version).encode(),
                    store=True,
                    template=KEK_TEMPLATE,
                )
            except PKCS11Error as exc:
                raise KeyringError(
                    f"{self.where} could not generate KEK version {version}: {type(exc).__name__}"
                ) from None
            self._keks = {**self._keks, version: key}
        self._notify()
        return version

    def remove_keks(self, versions: list[int]) -> None:
        """Destroy the KEK objects of ``versions`` (never the active one) in the token."""
        with self._session():
            self._scan()
            if self.active_kek_version in versions:
                raise KeyringError("the active KEK cannot be removed")
            for version in versions:
                key = self._keks.get(version)
                if key is None:
                    continue
                with suppress(ObjectHandleInvalid):  # another process destroyed it first
                    key.destroy()
            self._scan()
        self._notify()

    def fingerprints(self) -> dict[str, str]:
        """``kek:<v>``: SHA-256 of the KEK's wrapping of a constant; the secrets' as the file's."""
        for version in self.kek_versions():
            if version not in self._prints:
                wrapped = self.wrap(version, FINGERPRINT_CONSTANT)
                digest = hashlib.sha256(FINGERPRINT_DOMAIN + wrapped).hexdigest()[:32]
                self._prints[version] = digest
        prints = {f"kek:{v}": p for v, p in self._prints.items()}
        prints.update(self._named.fingerprints())
        return prints
