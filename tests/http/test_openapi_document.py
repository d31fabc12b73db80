"""The OpenAPI document's shape: valid, generator-friendly, examples that match their schemas."""

from __future__ import annotations

from typing import Any, Iterator

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

from .oas import validate

# The operationIds are part of the contract: generated clients name their functions after them.
OPERATION_IDS = {
    "healthz", "readyz", "openapi", "journey_templates", "design_saga_journey", "list_journeys", "get_journey",
    "execute_saga_journey", "list_sagas", "get_saga_status", "get_saga_execution_history", "advance_saga_step",
    "fail_saga_step", "compensate_saga", "retry_compensation", "skip_compensation",
    "events", "saga_events", "backup", "prune", "whoami", "console_stats",
}


@pytest.fixture
async def doc(client) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    return await resp.json()


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            yield method, path, op


def _media(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, content type, media type object) of every request and response body."""
    for method, path, op in _operations(doc):
        for ctype, media in op.get("requestBody", {}).get("content", {}).items():
            yield f"{method} {path} request", ctype, media
        for status, resp in op["responses"].items():
            for ctype, media in resp.get("content", {}).items():
                yield f"{method} {path} {status}", ctype, media


def _nested(schema: Any, where: str, top: bool = True) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema below the top of a component schema."""
    if isinstance(schema, dict):
        if not top:
            yield where, schema
        for key, value in schema.items():
            if key not in ("example", "examples", "enum"):
                yield from _nested(value, f"{where}/{key}", top=False)
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _nested(value, f"{where}/{i}", top=False)


async def test_document_validates(doc):
    validate_spec(doc)
    assert {op["operationId"] for _, _, op in _operations(doc)} == OPERATION_IDS
    assert all(op.get("tags") and op.get("summary") for _, _, op in _operations(doc))


async def test_every_body_is_a_named_component(doc):
    for where, ctype, media in _media(doc):
        if ctype.endswith("json") or ctype.endswith("msgpack"):
            assert set(media["schema"]) == {"$ref"}, where


async def test_no_anonymous_objects_or_enums_and_nullables_use_any_of(doc):
    """Generators turn inline objects and enums into ``..._type_0`` models or drop them."""
    for name, schema in doc["components"]["schemas"].items():
        for where, sub in _nested(schema, name):
            types = sub.get("type")
            assert types != "object" and "enum" not in sub, f"{where}: make it a named component"
            if isinstance(types, list):
                assert not {"object", "array"} & set(types), f"{where}: nullable object/array must be anyOf [X, null]"
    for method, path, op in _operations(doc):
        for p in op.get("parameters", []):
            assert p["schema"].get("type") != "object" and "enum" not in p["schema"], (method, path, p["name"])


async def test_every_error_is_a_problem(doc):
    for method, path, op in _operations(doc):
        for status, resp in op["responses"].items():
            if int(status) >= 400:
                assert list(resp["content"]) == ["application/problem+json"], (method, path, status)
                assert resp["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


async def test_examples_on_every_operation_match_their_schemas(doc):
    for method, path, op in _operations(doc):
        ok = [r for s, r in op["responses"].items() if s.startswith("2")]
        assert ok and all(
            "example" in m or "examples" in m for r in ok for c, m in r["content"].items() if c != "application/msgpack"
        ), (method, path)
        if "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"]["examples"], (method, path)
        for p in op.get("parameters", []):
            assert "example" in p, (method, path, p["name"])
            validate(doc, p["schema"], p["example"])
    checked = 0
    for where, ctype, media in _media(doc):
        values = [media["example"]] if "example" in media else [e["value"] for e in media.get("examples", {}).values()]
        for value in values:
            try:
                validate(doc, media["schema"], value)
            except jsonschema.ValidationError as exc:
                raise AssertionError(f"{where} {ctype}: example does not match: {exc.message}") from None
            checked += 1
    assert checked >= 40
