"""Field types of the API's request schemas: strict text, and the error that names its code."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from infomediary.text import CONTROL_MESSAGE, MULTILINE_MESSAGE, has_control_characters


class FieldError(str):
    """A field's error message that names its machine-readable code (``unknown_attribute``,
    ...): the problem's ``code`` when it is the first error of a request."""

    code: str

    def __new__(cls, code: str, message: str) -> FieldError:
        error = super().__new__(cls, message)
        error.code = code
        return error


class Text(fields.String):
    """A string with no control characters (:mod:`infomediary.text`): NUL cannot be stored
    by PostgreSQL, and the others have no place in a request. ``strip=True`` removes
    surrounding white space after that check, before validators run."""

    multiline = False

    def __init__(self, *args: Any, strip: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.strip = strip

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if has_control_characters(text, multiline=self.multiline):
            raise ValidationError(MULTILINE_MESSAGE if self.multiline else CONTROL_MESSAGE)
        return text.strip() if self.strip else text


class MultilineText(Text):
    """Text that may hold tabs and line breaks, such as an offer's body."""

    multiline = True
