"""The PKCS#11 keyring against a real SoftHSM2 token: KEKs generated inside it and never out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive

from infomediary.crypto.keyring import FileKeyring, KeyringError
from infomediary.crypto.pkcs11_keyring import LABEL_PREFIX, Pkcs11Keyring
from infomediary.crypto.vault import Vault
from tests.softhsm import SoftHsm, Token, softhsm_or_skip

pytestmark = pytest.mark.hsm
ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    yield from softhsm_or_skip(tmp_path_factory)


@pytest.fixture
def token(hsm: SoftHsm) -> Token:
    return hsm.new_token()


@pytest.fixture
def ring(hsm: SoftHsm, token: Token, tmp_path: Path) -> Iterator[Pkcs11Keyring]:
    keyring = Pkcs11Keyring.open(
        tmp_path / "keyring.json", hsm.module, token.label, token.pin, create=True
    )
    try:
        yield keyring
    finally:
        keyring.close()


def raw_kek(hsm: SoftHsm, token: Token, version: int) -> pkcs11.Key:
    """The KEK object through a session of its own (the process is logged in already)."""
    session = pkcs11.lib(hsm.module).get_token(token_label=token.label).open()
    return session.get_key(object_class=ObjectClass.SECRET_KEY, label=f"{LABEL_PREFIX}{version}")


def test_wrap_unwrap_round_trip_and_rewrap(ring: Pkcs11Keyring) -> None:
    assert ring.kek_versions() == [1]
    dek = os.urandom(32)
    wrapped = ring.wrap(1, dek)
    assert len(wrapped) == 40  # RFC 3394: 64 bits longer than the key
    assert wrapped != dek
    assert ring.unwrap(1, wrapped) == dek
    assert ring.wrap(1, dek) == wrapped  # the key wrap is deterministic
    version = ring.add_kek()
    assert version == 2 == ring.active_kek_version
    moved = ring.rewrap(wrapped, 1, 2)
    assert moved != wrapped
    assert ring.unwrap(2, moved) == dek


def test_the_vault_seals_and_opens_with_a_token(ring: Pkcs11Keyring) -> None:
    vault = Vault(ring)
    key, version, wrapped = vault.new_data_key("c1")
    blob = vault.seal(key, "profiles", "c1", "name", "Ada")
    again = vault.unwrap("c1", 1, version, wrapped)
    assert vault.open(again, "profiles", "c1", "name", blob) == "Ada"


def test_a_kek_is_generated_inside_and_cannot_be_read(
    ring: Pkcs11Keyring, hsm: SoftHsm, token: Token
) -> None:
    kek = raw_kek(hsm, token, 1)
    with pytest.raises(AttributeSensitive):
        kek[Attribute.VALUE]
    assert kek[Attribute.SENSITIVE] is True
    assert kek[Attribute.EXTRACTABLE] is False
    assert kek[Attribute.NEVER_EXTRACTABLE] is True
    assert kek[Attribute.LOCAL] is True  # generated in the token, never imported
    assert kek[Attribute.ENCRYPT] is False
    assert kek[Attribute.WRAP] is True
    with pytest.raises(KeyringError, match="never leaves it"):
        ring.kek(1)


def test_the_file_beside_a_token_holds_the_secrets_but_no_kek(ring: Pkcs11Keyring) -> None:
    doc = json.loads(ring.path.read_text())
    assert doc["keks"] == {}
    assert doc["kek_provider"] == "pkcs11"
    assert set(doc["secrets"]) >= {"blind_index", "pseudonym", "session"}
    assert ring.secret("blind_index") == FileKeyring.load(ring.path, holds_keks=False).secret(
        "blind_index"
    )
    with pytest.raises(KeyringError, match="INFOMEDIARY_KEY_PROVIDER=pkcs11"):
        FileKeyring.load(ring.path)


def test_wrapped_keys_unwrap_only_in_their_token(
    ring: Pkcs11Keyring, hsm: SoftHsm, tmp_path: Path
) -> None:
    dek = os.urandom(32)
    wrapped = ring.wrap(1, dek)
    ours = ring.fingerprints()["kek:1"]
    file_ring = FileKeyring.create(tmp_path / "file.json")
    with pytest.raises(KeyringError, match="does not unwrap"):
        file_ring.unwrap(1, wrapped)
    with pytest.raises(InvalidUnwrap):
        aes_key_unwrap(os.urandom(32), wrapped)
    ring.close()
    other_token = hsm.new_token()
    other = Pkcs11Keyring.open(
        tmp_path / "other.json", hsm.module, other_token.label, other_token.pin, create=True
    )
    try:
        assert other.kek_versions() == [1]
        with pytest.raises(KeyringError, match="does not unwrap"):
            other.unwrap(1, wrapped)
        assert other.fingerprints()["kek:1"] != ours
    finally:
        other.close()


def test_the_wrapping_is_rfc_3394_like_the_file_keyring(
    ring: Pkcs11Keyring, hsm: SoftHsm, token: Token
) -> None:
    """A key of known bytes put in the token (for this test only) wraps as the file does."""
    known = os.urandom(32)
    session = pkcs11.lib(hsm.module).get_token(token_label=token.label).open(rw=True)
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.AES,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.VALUE: known,
            Attribute.WRAP: True,
            Attribute.UNWRAP: True,
            Attribute.LABEL: f"{LABEL_PREFIX}9",
        }
    )
    dek = os.urandom(32)
    assert ring.wrap(9, dek) == aes_key_wrap(known, dek)  # found without a restart
    assert ring.unwrap(9, aes_key_wrap(known, dek)) == dek


def test_fingerprints_are_stable_and_need_no_key_material(
    ring: Pkcs11Keyring, hsm: SoftHsm, token: Token
) -> None:
    prints = ring.fingerprints()
    assert set(prints) >= {"kek:1", "secret:blind_index"}
    assert len(prints["kek:1"]) == 32
    named = FileKeyring.load(ring.path, holds_keks=False)
    assert prints["secret:blind_index"] == named.fingerprints()["secret:blind_index"]
    path = ring.path
    ring.close()
    again = Pkcs11Keyring.open(path, hsm.module, token.label, token.pin)
    try:
        assert again.fingerprints() == prints
        version = again.add_kek()
        assert again.fingerprints()[f"kek:{version}"] != prints["kek:1"]
    finally:
        again.close()


def test_a_version_another_process_generates_is_found_without_a_restart(
    ring: Pkcs11Keyring, hsm: SoftHsm, token: Token
) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from infomediary.crypto.pkcs11_keyring import Pkcs11Keyring\n"
        "ring = Pkcs11Keyring.open(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])\n"
        "version = ring.add_kek()\n"
        "print(version, ring.wrap(version, bytes(range(32))).hex())\n"
        "ring.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(ring.path), hsm.module, token.label, token.pin],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    version_text, wrapped_hex = done.stdout.split()
    version = int(version_text)
    assert ring.kek_versions() == [1]  # not looked yet
    assert ring.unwrap(version, bytes.fromhex(wrapped_hex)) == bytes(range(32))
    assert ring.kek_versions() == [1, version]
    assert ring.active_kek_version == version


def test_removing_a_kek_destroys_it_in_the_token(
    ring: Pkcs11Keyring, hsm: SoftHsm, token: Token
) -> None:
    wrapped = ring.wrap(1, bytes(32))
    ring.add_kek()
    with pytest.raises(KeyringError, match="active KEK"):
        ring.remove_keks([2])
    ring.remove_keks([1])
    assert ring.kek_versions() == [2]
    with pytest.raises(pkcs11.NoSuchKey):
        raw_kek(hsm, token, 1)
    with pytest.raises(KeyringError, match="no KEK version 1"):
        ring.unwrap(1, wrapped)


def test_threads_share_the_session(ring: Pkcs11Keyring) -> None:
    failures: list[str] = []

    def work() -> None:
        for _ in range(50):
            dek = os.urandom(32)
            if ring.unwrap(1, ring.wrap(1, dek)) != dek:
                failures.append("round trip")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert not any(thread.is_alive() for thread in threads)


def test_a_forked_child_logs_in_again(ring: Pkcs11Keyring) -> None:
    dek = os.urandom(32)
    wrapped = ring.wrap(1, dek)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a gunicorn worker, say
        os.close(read)
        try:
            ok = ring.unwrap(1, wrapped) == dek and ring.unwrap(1, ring.wrap(1, dek)) == dek
            os.write(write, b"ok" if ok else b"wrong")
        except BaseException as exc:
            os.write(write, type(exc).__name__.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        said = answer.read()
    os.waitpid(pid, 0)
    assert said == b"ok"
    assert ring.unwrap(1, wrapped) == dek  # the parent's session is unharmed


def test_errors_name_the_setting_and_never_the_pin(
    hsm: SoftHsm, token: Token, tmp_path: Path
) -> None:
    path = tmp_path / "keyring.json"
    Pkcs11Keyring.open(path, hsm.module, token.label, token.pin, create=True).close()
    wrong = "not-the-pin-4321"
    with pytest.raises(KeyringError) as refused:
        Pkcs11Keyring.open(path, hsm.module, token.label, wrong)
    assert "INFOMEDIARY_PKCS11_PIN" in str(refused.value)
    assert wrong not in str(refused.value)
    assert "\n" not in str(refused.value)
    with pytest.raises(KeyringError, match="INFOMEDIARY_PKCS11_TOKEN_LABEL"):
        Pkcs11Keyring.open(path, hsm.module, "no-such-token", token.pin)
    not_a_module = tmp_path / "module.so"
    not_a_module.write_bytes(b"not a shared object")
    with pytest.raises(KeyringError, match="INFOMEDIARY_PKCS11_MODULE"):
        Pkcs11Keyring.open(path, str(not_a_module), token.label, token.pin)
    Pkcs11Keyring.open(path, hsm.module, token.label, token.pin).close()  # not locked out
