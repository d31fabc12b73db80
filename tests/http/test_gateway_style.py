"""The gateway is written in the aiohttp style: module-level middlewares, the role declared on
each route, one table of request schemas behind both validation and the OpenAPI document,
resources in ``cleanup_ctx``, and no private attribute of aiohttp objects."""

from __future__ import annotations

import ast
import inspect
import pathlib

from saga_journey.http import middlewares
from saga_journey.http import routes as routes_module
from saga_journey.http.openapi import OPERATIONS
from saga_journey.http.routes import routes
from saga_journey.http.schemas import REQUESTS

from .conftest import auth

HTTP = pathlib.Path(routes_module.__file__).parent
ADMIN = auth("acme-admin")


def test_middlewares_are_module_level_functions():
    assert middlewares.MIDDLEWARES
    for mw in middlewares.MIDDLEWARES:
        assert inspect.getmodule(mw) is middlewares and mw.__qualname__ == mw.__name__, mw
        assert mw.__closure__ is None and getattr(middlewares, mw.__name__) is mw


def test_every_route_declares_its_role_and_is_documented():
    names = [r.name for r in routes.routes]
    assert len(names) == len(set(names))
    for r in routes.routes:
        assert r.role in (None, "read", "write", "admin"), r
        assert r.name in OPERATIONS or r.name == "openapi", r.name  # the document describes itself apart
        assert inspect.getmodule(r.handler) is routes_module and r.handler.__qualname__ == r.handler.__name__
    assert set(REQUESTS) <= set(names)
    admin = {r.name for r in routes.routes if r.role == "admin"}
    assert {"backup", "prune", "retry_compensation", "skip_compensation", "design_saga_journey"} == admin
    assert {r.name for r in routes.routes if r.role is None} == {"healthz", "readyz", "openapi"}


async def test_openapi_parameters_and_bodies_are_generated_from_the_request_table(client):
    doc = await (await client.get("/openapi.json")).json()
    for r in routes.routes:
        op = doc["paths"][r.path][r.method.lower()]
        spec = REQUESTS.get(r.name)
        documented = sorted(p["name"] for p in op.get("parameters", []) if p["in"] == "query")
        assert documented == sorted(spec.names if spec else ()), r.name
        body = spec.body if spec else None
        if body is None:
            assert "requestBody" not in op, r.name
            continue
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{body.component}"
        assert doc["components"]["schemas"][body.component] == body.schema()
        assert op["requestBody"]["required"] is not body.optional


async def test_the_same_table_validates_query_bounds_and_body_types(client):
    for param in REQUESTS["list_sagas"].query:
        if param.kind == "int":
            too_big = param.schema["maximum"] + 1
            r = await client.get(f"/v1/sagas?{param.name}={too_big}", headers=ADMIN)
            assert r.status == 422 and param.name in (await r.json())["detail"]
    for field in REQUESTS["execute_saga_journey"].body.fields:
        wrong = 7 if field.json_type != "integer" else "seven"
        r = await client.post("/v1/sagas", json={"journey_id": "j", field.name: wrong}, headers=ADMIN)
        assert r.status == 422 and field.name in (await r.json())["detail"], field.name


def test_no_private_attributes_of_other_objects_in_the_gateway():
    """``x._y`` only on ``self``/``cls`` (and the admission slot on its own Admission)."""
    allowed = {("admission.py", "self._adm._per_saga"), ("admission.py", "self._adm._retry")}
    found = []
    for path in sorted(HTTP.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                if (path.name, ast.unparse(node)) not in allowed:
                    found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" and len(node.args) > 1:
                name = getattr(node.args[1], "value", "")
                if isinstance(name, str) and name.startswith("_"):
                    found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert not found, found


def test_serve_opens_its_runtime_in_cleanup_ctx():
    from saga_journey.http import server

    source = inspect.getsource(server.serve)
    assert "SagaOrchestrator.open" not in source and "ClientSession(" not in source
    assert "runtime=runtime_context(" in source
    assert "SagaOrchestrator.open" in inspect.getsource(server.runtime_context)
