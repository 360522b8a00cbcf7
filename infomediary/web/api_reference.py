"""The public API reference: a server-rendered page made from the OpenAPI document.

The page reads the very document ``/api/openapi.json`` serves (:func:`openapi.build_spec`,
built once per app), so it cannot describe another API than the one suppliers call: every
path and method, grouped by tag, with summary, description, parameters, request body,
responses (their schemas and problem codes) and security (schemes and scopes), and every
component schema with its fields. No script and no external asset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, render_template
from flask.typing import ResponseReturnValue

from infomediary.web.openapi import build_spec

bp = Blueprint("api_reference", __name__)

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    #: The component schema the type names, if any (its anchor on the page).
    schema: str | None
    required: bool
    description: str


@dataclass(frozen=True)
class Content:
    media_type: str
    type: str
    schema: str | None
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Response:
    status: str
    description: str
    content: tuple[Content, ...]
    codes: tuple[str, ...]
    headers: tuple[str, ...]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    anchor: str
    operation_id: str
    summary: str
    description: str
    parameters: tuple[Field, ...]
    parameter_places: tuple[str, ...]
    request_body: tuple[Content, ...]
    body_required: bool
    responses: tuple[Response, ...]
    #: (scheme, its scopes), any one of which is enough.
    security: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Tag:
    name: str
    anchor: str
    description: str
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class Schema:
    name: str
    anchor: str
    description: str
    type: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Scheme:
    name: str
    description: str
    #: (flow or kind, scopes as (name, description)).
    flows: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


@dataclass(frozen=True)
class Reference:
    title: str
    version: str
    description: str
    tags: tuple[Tag, ...]
    schemas: tuple[Schema, ...]
    schemes: tuple[Scheme, ...]

    @property
    def operations(self) -> tuple[Operation, ...]:
        return tuple(op for tag in self.tags for op in tag.operations)


def anchor(*parts: str) -> str:
    """A fragment id from words: lower case letters, digits and hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def schema_anchor(name: str) -> str:
    return anchor("schema", name)


class _Reader:
    def __init__(self, document: dict[str, Any]):
        self.document = document

    def resolve(self, item: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in item and seen < 20:
            section, name = item["$ref"].split("/")[-2:]
            item = self.document["components"][section][name]
            seen += 1
        return item

    def type_of(self, schema: Any) -> tuple[str, str | None]:
        """A schema's type in words, and the component schema it names (if it names one)."""
        if not isinstance(schema, dict):
            return (str(schema) if schema else "any"), None
        if "$ref" in schema:
            name = str(schema["$ref"]).split("/")[-1]
            return name, name
        for key, joiner in (("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")):
            if key in schema:
                return joiner.join(self.type_of(s)[0] for s in schema[key]), None
        if "enum" in schema:
            return "one of " + ", ".join(str(v) for v in schema["enum"]), None
        if "const" in schema:
            return f"always {schema['const']}", None
        kind = schema.get("type", "any")
        if isinstance(kind, list):
            kind = " or ".join(str(k) for k in kind)
        if kind == "array" or (isinstance(kind, str) and "array" in kind):
            inner, ref = self.type_of(schema.get("items", {}))
            return f"array of {inner}", ref
        if schema.get("format"):
            return f"{kind} ({schema['format']})", None
        return str(kind), None

    def fields(self, schema: Any) -> tuple[Field, ...]:
        if not isinstance(schema, dict):
            return ()
        schema = self.resolve(schema)
        required = set(schema.get("required", ()))
        found = []
        for name, prop in (schema.get("properties") or {}).items():
            kind, ref = self.type_of(prop)
            description = str(prop.get("description", "")) if isinstance(prop, dict) else ""
            found.append(Field(str(name), kind, ref, name in required, description))
        return tuple(found)

    def content(self, body: dict[str, Any]) -> tuple[Content, ...]:
        found = []
        for media_type, media in (body.get("content") or {}).items():
            schema = media.get("schema", {})
            kind, ref = self.type_of(schema)
            fields = () if ref else self.fields(schema)
            found.append(Content(str(media_type), kind, ref, fields))
        return tuple(found)

    def codes(self, response: dict[str, Any]) -> tuple[str, ...]:
        """The problem codes a response's examples carry."""
        codes: list[str] = []
        for media in (response.get("content") or {}).values():
            examples = dict(media.get("examples") or {})
            if "example" in media:
                examples["example"] = {"value": media["example"]}
            for example in examples.values():
                value = self.resolve(example).get("value")
                if isinstance(value, dict):
                    code = value.get("code") or value.get("error")
                    if isinstance(code, str) and code not in codes:
                        codes.append(code)
        return tuple(codes)

    def parameters(self, items: list[dict[str, Any]]) -> tuple[tuple[Field, ...], tuple[str, ...]]:
        fields, places = [], []
        for raw in items:
            param = self.resolve(raw)
            kind, ref = self.type_of(param.get("schema", {}))
            fields.append(
                Field(
                    str(param.get("name", "")),
                    kind,
                    ref,
                    bool(param.get("required")),
                    str(param.get("description", "")),
                )
            )
            places.append(str(param.get("in", "")))
        return tuple(fields), tuple(places)

    def operation(
        self, path: str, method: str, item: dict[str, Any], op: dict[str, Any]
    ) -> Operation:
        params, places = self.parameters([*item.get("parameters", []), *op.get("parameters", [])])
        body = self.resolve(op["requestBody"]) if "requestBody" in op else {}
        responses = []
        for status, raw in (op.get("responses") or {}).items():
            response = self.resolve(raw)
            responses.append(
                Response(
                    str(status),
                    str(response.get("description", "")),
                    self.content(response),
                    self.codes(response),
                    tuple(str(h) for h in response.get("headers") or {}),
                )
            )
        security = op.get("security", self.document.get("security", []))
        return Operation(
            method=method.upper(),
            path=path,
            anchor=anchor("op", method, path),
            operation_id=str(op.get("operationId", "")),
            summary=str(op.get("summary", "")),
            description=str(op.get("description", "")),
            parameters=params,
            parameter_places=places,
            request_body=self.content(body),
            body_required=bool(body.get("required")),
            responses=tuple(responses),
            security=tuple(
                (str(name), tuple(str(s) for s in scopes))
                for requirement in security
                for name, scopes in requirement.items()
            ),
        )

    def reference(self) -> Reference:
        doc = self.document
        described = {t["name"]: str(t.get("description", "")) for t in doc.get("tags", [])}
        grouped: dict[str, list[Operation]] = {name: [] for name in described}
        for path, item in (doc.get("paths") or {}).items():
            for method in METHODS:
                if method in item:
                    op = item[method]
                    for tag in op.get("tags") or ["other"]:
                        grouped.setdefault(str(tag), []).append(
                            self.operation(path, method, item, op)
                        )
        tags = tuple(
            Tag(name, anchor("tag", name), described.get(name, ""), tuple(ops))
            for name, ops in grouped.items()
            if ops
        )
        components = doc.get("components") or {}
        schemas = tuple(
            Schema(
                str(name),
                schema_anchor(str(name)),
                str(schema.get("description", "")),
                self.type_of({k: v for k, v in schema.items() if k != "properties"})[0],
                self.fields(schema),
            )
            for name, schema in sorted((components.get("schemas") or {}).items())
        )
        schemes = []
        for name, scheme in (components.get("securitySchemes") or {}).items():
            flows = tuple(
                (str(flow), tuple((str(k), str(v)) for k, v in (spec.get("scopes") or {}).items()))
                for flow, spec in (scheme.get("flows") or {}).items()
            )
            kind = " ".join(str(scheme.get(k, "")) for k in ("type", "scheme") if scheme.get(k))
            schemes.append(Scheme(str(name), str(scheme.get("description", kind)), flows))
        info = doc.get("info") or {}
        return Reference(
            str(info.get("title", "")),
            str(info.get("version", "")),
            str(info.get("description", "")),
            tags,
            schemas,
            tuple(schemes),
        )


def document(app: Flask) -> dict[str, Any]:
    """The app's OpenAPI document, built once (the one ``/api/openapi.json`` serves)."""
    found = app.extensions.get("openapi_document")
    if found is None:
        found = app.extensions["openapi_document"] = build_spec(app)
    return dict(found)


def reference(doc: dict[str, Any]) -> Reference:
    return _Reader(doc).reference()


@bp.get("/docs/api")
def index() -> ResponseReturnValue:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return render_template(
        "api_reference.html", ref=reference(document(app)), schema_anchor=schema_anchor
    )
