"""The package itself: lazy imports (PEP 562), ``--version`` and ``python -m infomediary``."""

from __future__ import annotations

import subprocess
import sys

import pytest

import infomediary

#: Submodules that need neither Flask nor SQLAlchemy: importing them must load neither, so pure
#: tools (an offline verifier, a parser) can live inside the package.
PURE = [
    "infomediary",
    "infomediary.errors",
    "infomediary.text",
    "infomediary.scopes",
    "infomediary.statuses",
    "infomediary.logs",
    "infomediary.supplier_names",
    "infomediary.crypto.keyring",
    "infomediary.crypto.vault",
    "infomediary.crypto.receipts",
]


@pytest.mark.parametrize("module", PURE)
def test_a_pure_submodule_loads_no_framework(module: str) -> None:
    probe = (
        f"import sys, {module}; "
        "print(','.join(m for m in ('flask', 'sqlalchemy', 'werkzeug') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} loaded {out.stdout.strip()}"


def test_create_app_is_resolved_on_first_use() -> None:
    probe = (
        "import sys, infomediary; assert 'flask' not in sys.modules; "
        "f = infomediary.create_app; print(f.__module__, 'flask' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["infomediary.app", "True"]


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = infomediary.no_such_thing


@pytest.mark.parametrize(
    "command", [[sys.executable, "-m", "infomediary"], [sys.executable, "-m", "infomediary.cli"]]
)
def test_version(command: list[str]) -> None:
    if command[-1] == "infomediary.cli":
        command = [sys.executable, "-c", "from infomediary.cli import main; main()"]
    out = subprocess.run([*command, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"infomediary, version {infomediary.__version__}"
    assert infomediary.__version__[0].isdigit()


def test_python_m_lists_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "infomediary", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("init", "serve", "keys", "suppliers"):
        assert command in out.stdout
