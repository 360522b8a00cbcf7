"""The docs tell the truth about the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

from infomediary.cli import main
from infomediary.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `INFOMEDIARY_([A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))
    assert documented == set(SETTINGS)


def test_readme_names_every_cli_command() -> None:
    readme = (ROOT / "README.md").read_text()
    names: list[str] = []
    for name, command in main.commands.items():
        sub = getattr(command, "commands", None)
        names += [f"infomediary {name} {s}" for s in sub] if sub else [f"infomediary {name}"]
    for name in names:
        assert f"`{name}" in readme, name


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme
    assert "make test" in readme


def test_pure_packages_import_neither_flask_nor_the_app() -> None:
    for package in ("policies", "connectors"):
        for source in (ROOT / package).rglob("*.py"):
            text = source.read_text()
            assert not re.search(r"^\s*(from|import) (flask|infomediary)\b", text, re.MULTILINE), (
                source
            )
