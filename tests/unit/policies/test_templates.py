"""Policy templates: they load, validate and mean what their descriptions say."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import policies
from policies import templates
from policies.codec import policy_from_dict, policy_to_dict
from policies.engine import evaluate
from policies.model import PURPOSES, AccessRequest, Decision, Mode
from policies.taxonomy import CATEGORIES
from policies.templates import (
    TEMPLATES,
    _load,
    _load_all,
    load_template,
    template_description,
    template_title,
)
from policies.validation import validate_policy

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ASKABLE = (Mode.AGGREGATE, Mode.PSEUDONYMOUS, Mode.DIRECT)
SPECIAL = sorted(key for key, c in CATEGORIES.items() if c.special)


def decide(
    template: str, purpose: str, category: str, mode: Mode, supplier: str = "acme"
) -> Decision:
    req = AccessRequest(supplier, "retail", purpose, frozenset({category}), mode)
    return evaluate(load_template(template), req, NOW).decision


def test_the_three_templates_load_least_generous_first() -> None:
    assert list(TEMPLATES) == ["private", "balanced", "rewarded"]


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_template_is_valid_and_described(name: str) -> None:
    policy = load_template(name)
    assert policy is TEMPLATES[name]
    assert policy.template == name
    assert policy.rules
    assert validate_policy(policy) == []
    assert template_title(name) == name.capitalize()
    description = template_description(name)
    assert description.endswith(".")
    assert "\n" not in description
    assert "  " not in description
    assert policy_from_dict(policy_to_dict(policy)) == policy


def test_unknown_template_names_the_choices() -> None:
    with pytest.raises(KeyError, match="choose one of private, balanced, rewarded"):
        load_template("generous")
    with pytest.raises(KeyError, match="'generous'"):
        template_description("generous")


EXPECTATIONS = [
    ("private", "service", "identity", Mode.AGGREGATE, Decision.ALLOW),
    ("private", "service", "purchases", Mode.AGGREGATE, Decision.ALLOW),
    ("private", "service", "identity", Mode.PSEUDONYMOUS, Decision.DENY),
    ("private", "marketing", "interests", Mode.AGGREGATE, Decision.DENY),
    ("private", "analytics", "interests", Mode.AGGREGATE, Decision.NOT_APPLICABLE),
    ("balanced", "service", "identity", Mode.DIRECT, Decision.ALLOW),
    ("balanced", "service", "preferences", Mode.DIRECT, Decision.ALLOW),
    ("balanced", "service", "purchases", Mode.AGGREGATE, Decision.NOT_APPLICABLE),
    ("balanced", "analytics", "purchases", Mode.AGGREGATE, Decision.ALLOW),
    ("balanced", "research", "demographics", Mode.AGGREGATE, Decision.ALLOW),
    ("balanced", "analytics", "purchases", Mode.PSEUDONYMOUS, Decision.DENY),
    ("balanced", "marketing", "interests", Mode.PSEUDONYMOUS, Decision.ALLOW),
    ("balanced", "marketing", "interests", Mode.DIRECT, Decision.DENY),
    ("balanced", "marketing", "purchases", Mode.PSEUDONYMOUS, Decision.NOT_APPLICABLE),
    ("balanced", "marketing", "health", Mode.AGGREGATE, Decision.DENY),
    ("rewarded", "marketing", "purchases", Mode.PSEUDONYMOUS, Decision.ALLOW),
    ("rewarded", "rewards", "demographics", Mode.PSEUDONYMOUS, Decision.ALLOW),
    ("rewarded", "rewards", "demographics", Mode.DIRECT, Decision.DENY),
    ("rewarded", "service", "identity", Mode.DIRECT, Decision.ALLOW),
    ("rewarded", "rewards", "health", Mode.AGGREGATE, Decision.DENY),
]


@pytest.mark.parametrize(("name", "purpose", "category", "mode", "expected"), EXPECTATIONS)
def test_templates_mean_what_they_say(
    name: str, purpose: str, category: str, mode: Mode, expected: Decision
) -> None:
    assert decide(name, purpose, category, mode) is expected


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_no_template_releases_a_special_category(name: str) -> None:
    for purpose, category, mode in itertools.product(PURPOSES, SPECIAL, ASKABLE):
        assert decide(name, purpose, category, mode) is not Decision.ALLOW, (purpose, category)


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_templates_identify_you_only_for_the_service_you_asked_for(name: str) -> None:
    for purpose, category in itertools.product(PURPOSES, CATEGORIES):
        if decide(name, purpose, category, Mode.DIRECT) is Decision.ALLOW:
            assert purpose == "service"
            assert category in {"identity", "preferences"}


def test_rewarded_allows_everything_balanced_allows() -> None:
    for purpose, category, mode in itertools.product(PURPOSES, CATEGORIES, ASKABLE):
        if decide("balanced", purpose, category, mode) is Decision.ALLOW:
            assert decide("rewarded", purpose, category, mode) is Decision.ALLOW


BROKEN = [
    ("not toml = [", "broken.toml"),
    ('description = "no title"\nrules = []', "needs a string title"),
    (
        'title = "T"\ndescription = "D"\n[[rules]]\ncategory = "interests"\npurpose = "marketing"\n'
        'recipient = { kind = "any" }\nmode = "often"',
        "rules[0].mode: 'often' is not one of",
    ),
    (
        'title = "T"\ndescription = "D"\n[[rules]]\ncategory = "horoscope"\npurpose = "marketing"\n'
        'recipient = { kind = "any" }\nmode = "never"',
        "'horoscope' is not a data category",
    ),
]


@pytest.mark.parametrize(("text", "words"), BROKEN)
def test_a_broken_template_fails_loudly_naming_its_file(
    tmp_path: Path, text: str, words: str
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape("policy template broken.toml")) as caught:
        _load(broken)
    assert words in str(caught.value)


def test_template_expiry_may_use_toml_datetimes(tmp_path: Path) -> None:
    dated = tmp_path / "dated.toml"
    dated.write_text(
        'title = "Dated"\ndescription = "D."\n[[rules]]\ncategory = "interests"\n'
        'purpose = "marketing"\nrecipient = { kind = "any" }\nmode = "aggregate"\n'
        "expires = 2027-01-01T00:00:00Z\n",
        encoding="utf-8",
    )
    template = _load(dated)
    assert template.name == "dated"
    assert template.policy.rules[0].expires == datetime(2027, 1, 1, tzinfo=UTC)


RULE = 'recipient = { kind = "any" }\nmode = "aggregate"\n'


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_template_reads_as_its_title_and_one_paragraph(tmp_path: Path) -> None:
    template = _load(
        write(
            tmp_path,
            "plain.toml",
            'title = "  Plain  "\ndescription = """\nOne line,\n  and   another.\n"""\n'
            f'[[rules]]\ncategory = "interests"\npurpose = "analytics"\n{RULE}',
        )
    )
    assert template.name == "plain"
    assert template.title == "Plain"
    assert template.description == "One line, and another."
    assert template.policy.template == "plain"
    assert [r.category for r in template.policy.rules] == ["interests"]


def test_a_template_is_read_as_utf_8_whatever_the_locale(tmp_path: Path) -> None:
    """Under an ASCII locale (no C-locale coercion, no UTF-8 mode) too: loading is portable."""
    path = tmp_path / "accents.toml"
    path.write_bytes('title = "Café"\ndescription = "Naïve."\nrules = []\n'.encode())
    expected = ("Café", "Naïve.")
    template = _load(path)
    assert (template.title, template.description) == expected
    program = (
        "import sys; from pathlib import Path; from policies.templates import _load; "
        "t = _load(Path(sys.argv[1])); print(ascii((t.title, t.description)))"
    )
    ascii_locale = {
        **os.environ,
        "LC_ALL": "C",
        "PYTHONCOERCECLOCALE": "0",
        "PYTHONUTF8": "0",
        "PYTHONPATH": str(Path(policies.__file__).parents[1]),
    }
    ran = subprocess.run(
        [sys.executable, "-c", program, str(path)],
        env=ascii_locale,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == ascii(expected)


TEMPLATE_ERRORS = [
    ('title = "T"\nrules = []', "needs a string title and a string description"),
    ('title = "T"\ndescription = 3\nrules = []', "needs a string title and a string description"),
    ('title = 3\ndescription = "D"\nrules = []', "needs a string title and a string description"),
    ('title = "T"\ndescription = "D"', "policy: missing rules"),
    ('title = "T"\ndescription = "D"\nowner = "me"\nrules = []', "policy: unknown field(s) owner"),
    (
        'title = "T"\ndescription = "D"\n'
        f'[[rules]]\ncategory = "horoscope"\npurpose = "marketing"\n{RULE}'
        f'[[rules]]\ncategory = "interests"\npurpose = "harvest"\n{RULE}',
        "Rule 1: 'horoscope' is not a data category (expected '*' or one of identity, "
        "demographics, district, interests, purchases, preferences, account, health, religion, "
        "politics, sexuality, ethnicity, biometrics). Rule 2: 'harvest' is not a purpose (expected '*' or "
        "one of service, marketing, personalisation, analytics, research, rewards, ai_training).",
    ),
]


@pytest.mark.parametrize(("text", "words"), TEMPLATE_ERRORS)
def test_a_broken_template_says_exactly_what_is_wrong(
    tmp_path: Path, text: str, words: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(f'policy template bad.toml: {words}')}$"):
        _load(write(tmp_path, "bad.toml", text))


def test_the_packaged_templates_load_in_the_order_the_dashboard_offers_them() -> None:
    loaded = _load_all()
    assert list(loaded) == ["private", "balanced", "rewarded"]
    assert {name: t.policy for name, t in loaded.items()} == TEMPLATES
    assert [t.title for t in loaded.values()] == ["Private", "Balanced", "Rewarded"]


def test_other_template_files_follow_the_three_in_name_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only ``*.toml`` files are templates; ones beyond the known three follow, sorted."""
    folder = tmp_path / "templates"
    folder.mkdir()
    for name in ("zesty", "rewarded", "artful", "private"):
        write(folder, f"{name}.toml", f'title = "{name.title()}"\ndescription = "D."\nrules = []\n')
    write(folder, "README.md", "not a template")
    write(folder, "notes.toml.bak", "not a template either = [")
    asked: list[str] = []

    def files(package: str) -> Path:
        asked.append(package)
        return tmp_path

    monkeypatch.setattr(templates, "files", files)
    assert list(_load_all()) == ["private", "rewarded", "artful", "zesty"]
    assert asked == ["policies"]
