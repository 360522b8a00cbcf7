"""The access-log benchmark still runs: a quick run on SQLite prints every figure and ratio.

Its numbers are not checked (speed is measured by the benchmark itself, not by tests); a
seeded log that fails to verify, or a proof that fails, makes the run exit with an error.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_prints_the_ratios() -> None:
    ran = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "audit.py"), "--quick", "--no-pg"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    out = ran.stdout
    assert "SQLite: 2,000 entries seeded" in out
    for line in (
        "ratio verify/raw hash:",
        "ratio verify/read (session) + hash:",
        "ratio verify/read (DBAPI) + hash:",
        "ratio prototype/raw hash:",
        "inclusion proof from StoredTree:",
        "inclusion proof verification:",
        "inclusion proof, prototype (2 queries):",
        "consistency proof from StoredTree:",
        "consistency proof, prototype (2 queries):",
        "consistency proof verification:",
    ):
        assert line in out, line
    assert out.count("ratio append/insert throughput:") == 2
    assert "PostgreSQL" not in out
