"""Checks against the live OpenAPI document: a response body must validate against the schema the
document declares for its operation, status and content type (jsonschema, draft 2020-12)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema


def validate(doc: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    """Validate ``value`` against ``schema``, resolving ``#/components/...`` refs in ``doc``."""
    root = {**schema, "components": doc["components"]}
    jsonschema.Draft202012Validator(root).validate(value)


def response_schema(doc: dict[str, Any], method: str, path: str, status: int, ctype: str) -> dict[str, Any]:
    responses = doc["paths"][path][method.lower()]["responses"]
    return responses[str(status)]["content"][ctype]["schema"]


def check_response(doc: dict[str, Any], method: str, path: str, status: int, ctype: str, body: bytes) -> Any:
    """The decoded body, after checking it matches what the document declares."""
    value = json.loads(body)
    validate(doc, response_schema(doc, method, path, status, ctype.split(";")[0].strip()), value)
    return value
