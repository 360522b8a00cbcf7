"""SoftHSM2 tokens for the tests of the PKCS#11 key provider (Debian's ``softhsm2``).

:func:`softhsm_or_skip` gives a SoftHSM2 of the test's own: a ``softhsm2.conf`` whose token
folder is a temporary one, named by ``SOFTHSM2_CONF`` for this process and the processes it
starts. Each :meth:`SoftHsm.new_token` initialises a fresh token in it. Without the module
or ``softhsm2-util`` the tests skip, naming the package (under
``INFOMEDIARY_REQUIRE_SERVICES=1`` they fail instead).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import need_service

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
UTIL = "softhsm2-util"


@dataclass(frozen=True)
class Token:
    label: str
    pin: str
    so_pin: str


class SoftHsm:
    def __init__(self, folder: Path) -> None:
        self.tokens = folder / "tokens"
        self.tokens.mkdir(mode=0o700)
        self.conf = folder / "softhsm2.conf"
        self.conf.write_text(
            f"directories.tokendir = {self.tokens}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
        )
        self.module = MODULE

    def new_token(self, label: str | None = None) -> Token:
        """A freshly initialised token; the module is initialised again in this process so
        that it sees the token (SoftHSM2 lists tokens when it is initialised), which needs
        every keyring on it closed."""
        import pkcs11

        from infomediary.crypto import pkcs11_keyring

        if pkcs11_keyring._TOKENS:
            raise RuntimeError("close every PKCS#11 keyring before making a token")
        token = Token(
            label or f"test-{secrets.token_hex(4)}",
            pin=f"user-{secrets.token_hex(6)}",
            so_pin=f"so-{secrets.token_hex(6)}",
        )
        subprocess.run(
            [
                UTIL,
                "--init-token",
                "--free",
                "--label",
                token.label,
                "--so-pin",
                token.so_pin,
                "--pin",
                token.pin,
            ],
            env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
            check=True,
            capture_output=True,
            timeout=60,
        )
        pkcs11.lib(self.module).reinitialize()
        return token


def softhsm_or_skip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    """A SoftHSM2 of the caller's, ``SOFTHSM2_CONF`` set while it lasts."""
    if not Path(MODULE).is_file() or shutil.which(UTIL) is None:
        need_service(f"PKCS#11 tests need Debian's softhsm2 ({MODULE} and {UTIL})")
    hsm = SoftHsm(tmp_path_factory.mktemp("softhsm"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(hsm.conf))
        yield hsm
