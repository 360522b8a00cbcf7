"""The request schemas' base and the one validation path of API input into frozen inputs."""

from __future__ import annotations

from typing import Any, TypeVar

from marshmallow import RAISE, Schema, ValidationError

from infomediary.errors import InvalidRequest


class RequestSchema(Schema):
    """A request body: unknown fields are refused. ``codes`` names the machine-readable code
    of a field's error (unless the error names its own, :class:`FieldError`); any other
    error is ``default_code``."""

    class Meta:
        unknown = RAISE

    default_code = "validation_failed"
    codes: dict[str, str] = {}


Loaded = TypeVar("Loaded")


def _first_message(messages: Any) -> str:
    while isinstance(messages, dict | list) and messages:
        messages = next(iter(messages.values())) if isinstance(messages, dict) else messages[0]
    return messages if isinstance(messages, str) else "Invalid value."


def load(schema: RequestSchema, data: Any, into: type[Loaded]) -> Loaded:
    """The one validation path of API input: ``data`` loaded by ``schema`` into the frozen
    input ``into``, or :class:`InvalidRequest` with a code and one message per field."""
    try:
        loaded = schema.load(data)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        errors: dict[str, str] = {}
        code = ""
        for name, field_messages in messages.items():
            message = _first_message(field_messages)
            field = "body" if name == "_schema" else str(name)
            errors[field] = str(message)
            if not code:
                code = getattr(message, "code", None) or schema.codes.get(
                    field, schema.default_code
                )
        if errors.get("body") == "Invalid input type.":
            errors["body"] = "The body must be a JSON object."
        raise InvalidRequest(code or schema.default_code, errors) from None
    if not isinstance(loaded, into):  # pragma: no cover - a schema whose post_load is wrong
        raise TypeError(f"{type(schema).__name__} did not load a {into.__name__}")
    return loaded
