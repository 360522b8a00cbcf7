"""The instance's typed members: made once, on first use, from the instance's own keys and
settings, or the ones given to ``open_instance`` (tests script the noise)."""

from __future__ import annotations

import threading
import time

import pytest
from argon2.exceptions import VerifyMismatchError

from infomediary.broker.index import MatchIndex
from infomediary.broker.noise import NoiseSource
from infomediary.config import Settings
from infomediary.crypto.receipts import ReceiptSigner
from infomediary.instance import Instance, Lazy, open_instance


def test_lazy_makes_its_value_once_however_many_threads_ask() -> None:
    made: list[object] = []

    def make() -> object:
        time.sleep(0.05)  # long enough for every thread to arrive while it is being made
        made.append(object())
        return made[-1]

    lazy = Lazy(make)
    assert made == []  # nothing until asked
    start = threading.Barrier(8)
    seen: list[object] = []

    def ask() -> None:
        start.wait()
        seen.append(lazy.get())

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
    assert seen == made * 8


def test_lazy_uses_a_given_value_and_never_makes_one() -> None:
    given = object()

    def make() -> object:
        raise AssertionError("made although a value was given")

    assert Lazy(make, given).get() is given


def test_members_are_made_from_the_instance_keys_and_settings(inst: Instance) -> None:
    assert not hasattr(inst, "extras")
    signer = inst.receipt_signer
    assert isinstance(signer, ReceiptSigner)
    assert inst.receipt_signer is signer
    assert signer.kid == ReceiptSigner(inst.keyring.secret("receipt_signing")).kid
    assert isinstance(inst.noise, NoiseSource)
    assert inst.noise is inst.noise
    assert inst.noise.epsilon == inst.settings.broker_epsilon
    assert isinstance(inst.match_index, MatchIndex)
    assert inst.match_index is inst.match_index
    dummy = inst.dummy_hash
    assert dummy.startswith("$argon2id$")
    assert inst.dummy_hash == dummy
    with pytest.raises(VerifyMismatchError):
        inst.hasher.verify(dummy, "correct horse battery")


def test_open_instance_takes_the_members_a_caller_brings(base_config: Settings) -> None:
    noise = NoiseSource(0.5)
    index = MatchIndex(b"k" * 32)
    signer = ReceiptSigner(b"s" * 32)
    opened = open_instance(base_config, noise=noise, match_index=index, receipt_signer=signer)
    try:
        assert opened.noise is noise
        assert opened.match_index is index
        assert opened.receipt_signer is signer
    finally:
        opened.close()
