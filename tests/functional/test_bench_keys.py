"""The rotation benchmark still runs: a quick run on SQLite, with a SoftHSM2 token too.

Its numbers are not checked (speed is measured by the benchmark itself, not by tests); a
rotation that misses a key, or leaves keys under two KEKs, or one that no longer unwraps,
makes the run exit with an error.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import need_service
from tests.softhsm import MODULE, UTIL

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_the_figures_and_ratios() -> None:
    if not Path(MODULE).is_file() or shutil.which(UTIL) is None:
        need_service(f"bench/keys.py --hsm needs Debian's softhsm2 ({MODULE} and {UTIL})")
    ran = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "keys.py"), "--quick", "--hsm"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    out = ran.stdout
    assert "SQLite, KEKs in the keyring file: 2,000 data keys" in out
    assert "SQLite, KEKs in the PKCS#11 token (SoftHSM2): 2,000 data keys" in out
    for label in ("floor (read + write, no re-wrap)", "keys rotate (5,000 per commit)"):
        assert out.count(label) == 2, label
    assert out.count("rotate / floor") == 2
    assert out.count("rotate / old path") == 2
