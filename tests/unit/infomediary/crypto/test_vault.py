"""The vault: envelope encryption, associated data binding, blind index, keyring checks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from infomediary.crypto.keyring import FileKeyring, KeyringError
from infomediary.crypto.vault import DecryptionError, Vault
from infomediary.instance import initialise, open_instance
from infomediary.models import Customer, DataKey, Profile
from infomediary.services import customer_keys, exports, profiles
from tests.factories import make_customer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Vault:
    return Vault(FileKeyring.create(tmp_path_factory.mktemp("ring") / "keyring.json"))


@given(value=json_values)
def test_seal_open_round_trip(vault: Vault, value: object) -> None:
    key, _, _ = vault.new_data_key("c1")
    blob = vault.seal(key, "profiles", "c1", "name", value)
    assert vault.open(key, "profiles", "c1", "name", blob) == value


@pytest.mark.parametrize(
    ("table", "record", "field", "owner"),
    [
        ("customers", "c1", "name", "c1"),  # other table
        ("profiles", "c2", "name", "c1"),  # other row
        ("profiles", "c1", "phone", "c1"),  # other field
        ("profiles", "c1", "name", "c2"),  # other customer's key
    ],
)
def test_moved_ciphertext_does_not_decrypt(vault: Vault, table, record, field, owner) -> None:
    key1, _, _ = vault.new_data_key("c1")
    key2, _, _ = vault.new_data_key("c2")
    blob = vault.seal(key1, "profiles", "c1", "name", "Ada")
    key = key1 if owner == "c1" else key2
    with pytest.raises(DecryptionError):
        vault.open(key, table, record, field, blob)


def test_flipped_bit_does_not_decrypt(vault: Vault) -> None:
    key, _, _ = vault.new_data_key("c1")
    blob = bytearray(vault.seal(key, "profiles", "c1", "name", "Ada"))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        vault.open(key, "profiles", "c1", "name", bytes(blob))


def test_nonces_are_fresh(vault: Vault) -> None:
    key, _, _ = vault.new_data_key("c1")
    blobs = {vault.seal(key, "profiles", "c1", "name", "same") for _ in range(50)}
    assert len(blobs) == 50


def test_blind_index_is_normalised_and_keyed(tmp_path: Path, vault: Vault) -> None:
    assert vault.email_index(" Ada@Example.ORG ") == vault.email_index("ada@example.org")
    assert vault.email_index("ada@example.org") != vault.email_index("bob@example.org")
    other = Vault(FileKeyring.create(tmp_path / "other.json"))
    assert other.email_index("ada@example.org") != vault.email_index("ada@example.org")


def test_keyring_file_is_private(tmp_path: Path) -> None:
    ring = FileKeyring.create(tmp_path / "k.json")
    assert (ring.path.stat().st_mode & 0o777) == 0o600
    ring.path.chmod(0o644)
    with pytest.raises(KeyringError, match="readable by other users"):
        FileKeyring.load(ring.path)


@pytest.mark.parametrize(
    "content",
    ["not json", '{"format": 1}', '{"format": 1, "active_kek": 2, "keks": {"1": "AAAA"}}'],
)
def test_malformed_keyring_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeyringError):
        FileKeyring.load(path)


def test_a_kek_not_loaded_yet_is_read_from_the_file(tmp_path: Path) -> None:
    server = FileKeyring.create(tmp_path / "k.json")
    wrapped_before = Vault(server).new_data_key("c1")[2]
    rotator = FileKeyring.load(server.path)  # ``keys rotate`` in another process
    version = rotator.add_kek()
    wrapped = Vault(rotator).rewrap(wrapped_before, 1, version)
    assert server.kek_versions() == [1]
    unwrapped = Vault(server).unwrap("c1", 1, version, wrapped)  # no restart needed
    assert unwrapped.customer_id == "c1"
    assert server.kek_versions() == [1, version]


def test_a_wrap_rereads_a_changed_keyring_first(tmp_path: Path) -> None:
    server = FileKeyring.create(tmp_path / "k.json")
    version = FileKeyring.load(server.path).add_kek()
    _key, used, wrapped = Vault(server).new_data_key("c1")
    assert used == version
    assert Vault(FileKeyring.load(server.path)).unwrap("c1", 1, used, wrapped)


def test_a_pruned_keyring_drops_the_kek_but_keeps_the_rest(tmp_path: Path) -> None:
    server = FileKeyring.create(tmp_path / "k.json")
    pruner = FileKeyring.load(server.path)
    pruner.add_kek()
    pruner.remove_kek(1)
    assert server.refresh() is True
    assert server.kek_versions() == [2]
    assert server.active_kek_version == 2
    assert server.refresh() is False  # unchanged: one stat, no read


def test_a_replaced_keyring_file_is_refused_on_reread(tmp_path: Path) -> None:
    server = FileKeyring.create(tmp_path / "k.json")
    foreign = FileKeyring.create(tmp_path / "other.json")
    foreign.path.replace(server.path)
    with pytest.raises(KeyringError, match="another instance"):
        server.refresh()
    assert server.kek(1) != foreign.kek(1)  # the keys it had stay loaded


def test_profile_field_moved_to_another_customer_fails(inst) -> None:
    a = make_customer(inst, profile={"phone": "+61 400 111 222"})
    b = make_customer(inst)
    with inst.sessions() as session:
        blob = session.get(Profile, a).phone
        session.execute(update(Profile).where(Profile.customer_id == b).values(phone=blob))
        # also move within a row: a's phone into a's name column
        session.execute(update(Profile).where(Profile.customer_id == a).values(name=blob))
        session.commit()
    from infomediary.audit.log import Actor
    from infomediary.services import Context

    for victim in (a, b):
        with inst.sessions() as session, pytest.raises(DecryptionError):
            profiles.read_profile(session, inst, victim, Context(Actor.system("test")))


def test_missing_keyring_refuses_to_start(base_config, inst) -> None:
    make_customer(inst)
    config = replace(base_config, keyring_path=base_config.instance_path / "absent.json")
    with pytest.raises(KeyringError, match="keyring not found"):
        open_instance(config)


def test_init_refuses_to_create_keyring_over_encrypted_data(base_config, inst) -> None:
    make_customer(inst)
    config = replace(base_config, keyring_path=base_config.instance_path / "new.json")
    with pytest.raises(KeyringError, match="restore it"):
        initialise(config)
    assert not config.keyring_path.exists()


def test_foreign_keyring_refuses_to_start(base_config, inst, tmp_path: Path) -> None:
    make_customer(inst)
    foreign = FileKeyring.create(tmp_path / "foreign.json")
    with pytest.raises(KeyringError, match="another instance"):
        open_instance(replace(base_config, keyring_path=foreign.path))


def test_keyring_missing_a_used_kek_refuses_to_start(base_config, inst, tmp_path: Path) -> None:
    make_customer(inst)
    doc = json.loads(base_config.keyring_path.read_text())
    doc["keks"] = {"99": doc["keks"][str(doc["active_kek"])]}
    doc["active_kek"] = 99
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    with pytest.raises(KeyringError, match=r"lacks KEK version\(s\)"):
        open_instance(replace(base_config, keyring_path=path))


MARKERS = {
    "email": "marker.zq81@example.org",
    "name": "Xylophonia Quenbright",
    "phone": "+61 499 876 543",
    "street_address": "77 Zanzibar Crescent",
    "locality": "Quokkaville",
    "password": "Pw-marker-Ultraviolet-42",
}


def raw_database_text(inst) -> bytes:
    """Every byte the database holds for our tables, as stored."""
    if inst.engine.dialect.name == "sqlite":
        data = Path(inst.engine.url.database).read_bytes()
        wal = Path(inst.engine.url.database + "-wal")
        return data + (wal.read_bytes() if wal.exists() else b"")
    chunks = []
    with inst.engine.connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        for table in list(tables):
            for row in conn.execute(text(f'SELECT CAST(t AS text) FROM "{table}" t')).scalars():  # noqa: S608
                chunks.append(row.encode())
    return b"\n".join(chunks)


def test_nothing_personal_reaches_the_database_in_plaintext(inst) -> None:
    customer_id = make_customer(
        inst,
        email=MARKERS["email"],
        password=MARKERS["password"],
        name=MARKERS["name"],
        profile={
            "phone": MARKERS["phone"],
            "street_address": MARKERS["street_address"],
            "locality": MARKERS["locality"],
            "postcode": "2000",
            "birth_year": 1981,
            "interests": ["diabetes-care"],
        },
    )
    from infomediary.audit.log import Actor
    from infomediary.services import Context

    with inst.sessions() as session:  # reads and exports write log entries too
        exports.export(session, inst, customer_id, Context(Actor.customer(customer_id)))
    raw = raw_database_text(inst)
    assert customer_id.encode() in raw  # the scan does see the tables' content
    for field, marker in MARKERS.items():
        for needle in (marker.encode(), marker.lower().encode(), marker.encode().hex().encode()):
            assert needle not in raw, f"{field} found in plaintext"
    assert b"diabetes-care" not in raw


def test_rotation_rewraps_without_touching_fields(inst) -> None:
    customer_id = make_customer(inst, profile={"phone": "+61 400 000 001"})
    with inst.sessions() as session:
        before = session.get(Profile, customer_id).phone
        old_wrapped = session.get(DataKey, customer_id).wrapped_key
    version = inst.keyring.add_kek()
    with inst.sessions() as session:
        row = session.get(DataKey, customer_id)
        row.wrapped_key = inst.vault.rewrap(row.wrapped_key, row.kek_version, version)
        row.kek_version = version
        session.commit()
    with inst.sessions() as session:
        row = session.get(DataKey, customer_id)
        assert row.wrapped_key != old_wrapped
        assert session.get(Profile, customer_id).phone == before
        key = customer_keys.customer_key(session, inst, customer_id)
        assert inst.vault.open(key, "profiles", customer_id, "phone", before) == "+61 400 000 001"


def test_emails_are_unique_by_blind_index(inst) -> None:
    make_customer(inst, email="Same@Example.org")
    from infomediary.errors import EmailTaken

    with pytest.raises(EmailTaken):
        make_customer(inst, email="same@example.ORG ")
    with inst.sessions() as session:
        assert len(session.execute(select(Customer.id)).all()) == 1
