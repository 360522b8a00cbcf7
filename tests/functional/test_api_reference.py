"""The API reference page is made from the OpenAPI document: every operation, its parameters,
bodies, responses, problem codes and scopes, every schema; no script or external asset."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import escape

from infomediary.web.api_reference import anchor, schema_anchor

METHODS = ("get", "post", "put", "patch", "delete")


def _esc(text: str) -> str:
    """Text as the page's templates escape it."""
    return str(escape(text))


def _document(client: Any) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/api/openapi.json").get_json()
    return document


def _page(client: Any) -> str:
    response = client.get("/docs/api")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return str(response.get_data(as_text=True))


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in item:
        section, name = item["$ref"].split("/")[-2:]
        item = document["components"][section][name]
    return item


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


def test_every_operation_of_the_document_is_on_the_page(client: Any) -> None:
    document = _document(client)
    page = _page(client)
    operations = _operations(document)
    assert len(operations) >= 10
    shown = set(re.findall(r'data-operation="([A-Z]+) ([^"]+)"', page))
    expected = {(method.upper(), _esc(path)) for path, method, _ in operations}
    assert shown == expected
    for path, method, op in operations:
        section = page[page.index(f'id="{anchor("op", method, path)}"') :]
        section = section[: section.index("</article>")]
        assert f'href="#{anchor("op", method, path)}"' in page  # in the table of contents
        if op.get("summary"):
            assert _esc(op["summary"]) in section
        for raw in op.get("parameters", []):
            assert _esc(_resolve(document, raw)["name"]) in section
        for status, raw in op["responses"].items():
            assert f"<strong>{status}</strong>" in section
            for media in _resolve(document, raw).get("content", {}).values():
                for example in media.get("examples", {}).values():
                    code = example.get("value", {}).get("code")
                    if code:
                        assert f"<code>{code}</code>" in section, (path, method, code)
        for requirement in op.get("security", []):
            for scheme, scopes in requirement.items():
                assert f'href="#scheme-{scheme}"' in section
                for scope in scopes:
                    assert f"<code>{scope}</code>" in section


def test_operations_are_grouped_by_tag_and_every_schema_has_an_anchor(client: Any) -> None:
    document = _document(client)
    page = _page(client)
    for path, method, op in _operations(document):
        for tag in op.get("tags", []):
            heading = page.index(f'id="{anchor("tag", tag)}"')
            assert heading < page.index(f'id="{anchor("op", method, path)}"')
    for name, schema in document["components"]["schemas"].items():
        block = page[page.index(f'id="{schema_anchor(name)}"') :]
        block = block[: block.index("</article>")]
        for field in schema.get("properties", {}):
            assert f'<code class="api-name">{_esc(field)}</code>' in block, (name, field)
    for body_ref in re.findall(r'href="#(schema-[a-z0-9-]+)"', page):
        assert f'id="{body_ref}"' in page


def test_the_page_loads_no_script_and_nothing_from_elsewhere(client: Any) -> None:
    page = _page(client)
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert 'href="/api/openapi.json"' in page


def test_the_footer_links_the_reference(client: Any) -> None:
    assert 'href="/docs/api"' in client.get("/").get_data(as_text=True)
