"""Policy templates: declarative starting points (``policies/templates/*.toml``).

Each file has a ``title``, a plain-words ``description`` and ``[[rules]]`` in the form
:func:`policies.engine.policy_from_dict` reads. Files are read through
:mod:`importlib.resources`, so they load from an installed wheel as well as from a checkout,
and are validated at import: a broken template stops the app at start, not at first use.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from policies.codec import policy_from_dict
from policies.model import Policy
from policies.validation import validate_policy

#: Least to most generous, the order the dashboard offers them in; other files follow.
_ORDER = ("private", "balanced", "rewarded")


@dataclass(frozen=True, slots=True)
class Template:
    """A template as read from its file."""

    name: str
    title: str
    description: str
    policy: Policy


def _load(resource: Traversable) -> Template:
    name = resource.name.removesuffix(".toml")
    try:
        data = tomllib.loads(resource.read_text(encoding="utf-8"))
        title, description = data.pop("title", None), data.pop("description", None)
        if not isinstance(title, str) or not isinstance(description, str):
            raise ValueError("needs a string title and a string description")
        policy = policy_from_dict({**data, "template": name})
    except (tomllib.TOMLDecodeError, ValueError) as error:
        raise ValueError(f"policy template {resource.name}: {error}") from error
    if problems := validate_policy(policy):
        raise ValueError(f"policy template {resource.name}: {' '.join(problems)}")
    return Template(name, title.strip(), " ".join(description.split()), policy)


def _load_all() -> dict[str, Template]:
    found = {
        t.name: t
        for t in (
            _load(resource)
            for resource in files("policies").joinpath("templates").iterdir()
            if resource.name.endswith(".toml")
        )
    }
    names = [n for n in _ORDER if n in found] + sorted(set(found) - set(_ORDER))
    return {name: found[name] for name in names}


_TEMPLATES = _load_all()

#: Template name -> its policy (``Policy.template`` is the name).
TEMPLATES: dict[str, Policy] = {name: t.policy for name, t in _TEMPLATES.items()}


def _template(name: str) -> Template:
    try:
        return _TEMPLATES[name]
    except KeyError:
        raise KeyError(
            f"unknown policy template {name!r} (choose one of {', '.join(_TEMPLATES)})"
        ) from None


def load_template(name: str) -> Policy:
    """The policy of template ``name``; :class:`KeyError` naming the choices if there is none."""
    return _template(name).policy


def template_title(name: str) -> str:
    """The template's short title, e.g. "Balanced"."""
    return _template(name).title


def template_description(name: str) -> str:
    """What the template does, in plain words, as one paragraph."""
    return _template(name).description
