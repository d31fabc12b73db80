"""Real client generators on the live /openapi.json: the document must drive them, not only validate.

* openapi-python-client (pinned in the ``test`` extra) generates a Python client, which is
  imported from a temp folder and runs the seed's scenario against a real gateway on 127.0.0.1;
  every response parses into the generated models, with no field left over in
  ``additional_properties`` of a model that declares all its fields, and every raw body
  validates against the document's schema. The generator must print no warning.
* openapi-typescript generates TypeScript types and ``tsc --strict`` type-checks a usage file
  that assigns the bodies the server really returned to those types (an object literal with an
  undeclared field, or a value of the wrong type, fails the check). The tools come from
  ``make setup`` (scripts/install-node-tools.sh): missing, the test skips locally and fails
  under CI=true.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pathlib
import shutil
import sys
from typing import Any

import attrs
import pytest

from .conftest import auth
from .oas import check_response

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
GENERATOR = BIN / "openapi-python-client"
NODE_BIN = ROOT / "tools" / "node" / "node_modules" / ".bin"
ORDER = ["create_order", "process_payment", "reserve_inventory", "ship_product"]
A = auth("acme-admin")
# models whose extra keys are the point: free-form objects and those that allow more members
OPEN_MODELS = {"SagaContext", "FailureResult", "JourneyRequirements", "HistoryEvent", "Problem", "StepResult",
               "DesignRequirements", "JourneyMetadata", "HandlerMap", "DesignHandlerMap", "OpenApiDocument"}


async def _run(*cmd: str | os.PathLike[str], cwd: pathlib.Path) -> tuple[int, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(
        *map(str, cmd), cwd=str(cwd), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    return proc.returncode, out.decode("utf-8", "replace")


async def _live_doc(client, tmp_path: pathlib.Path) -> tuple[dict[str, Any], pathlib.Path]:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    body = await resp.read()
    path = tmp_path / "openapi.json"
    path.write_bytes(body)
    return json.loads(body), path


def _assert_closed(value: Any, where: str = "body") -> None:
    """Every generated model that declares its fields got no undeclared ones from the server."""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _assert_closed(item, f"{where}[{i}]")
        return
    if not attrs.has(type(value)):
        return
    name = type(value).__name__
    if name not in OPEN_MODELS:
        assert getattr(value, "additional_properties", {}) == {}, f"{where} ({name}): undeclared fields"
    for field in attrs.fields(type(value)):
        if field.name != "additional_properties":
            _assert_closed(getattr(value, field.name), f"{where}.{field.name}")


class Checked:
    """Calls a generated operation, then checks the parsed model and the raw body against the document."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.methods = {op["operationId"]: (m, p) for p, ops in doc["paths"].items() for m, op in ops.items()}
        self.seen: set[str] = set()

    async def __call__(self, module: Any, code: int, model: type, /, **kwargs: Any) -> Any:
        resp = await module.asyncio_detailed(**kwargs)
        assert resp.status_code == code, resp.content[:2000]
        assert isinstance(resp.parsed, model), (type(resp.parsed), resp.content[:2000])
        operation_id = module.__name__.rsplit(".", 1)[1]
        method, path = self.methods[operation_id]
        check_response(self.doc, method, path, code, resp.headers["Content-Type"], resp.content)
        _assert_closed(resp.parsed)
        self.seen.add(operation_id)
        return resp.parsed


async def _generate_python_client(doc_path: pathlib.Path, tmp_path: pathlib.Path) -> str:
    out = tmp_path / "saga_client"
    rc, text = await _run(GENERATOR, "generate", "--path", doc_path, "--output-path", out, "--meta", "none", cwd=tmp_path)
    assert rc == 0, text
    # on success it prints only "Generating <path>"; warnings, dropped schemas and skipped
    # post-hooks (ruff) would appear here
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines == [f"Generating {out}"], text
    return "saga_client"


async def test_python_client_runs_the_seed_scenario(client, orch, calls, tmp_path):
    doc, doc_path = await _live_doc(client, tmp_path)
    package = await _generate_python_client(doc_path, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        await _scenario(importlib.import_module(package), package, client, orch, calls, doc)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]


async def _scenario(pkg: Any, package: str, client, orch, calls, doc) -> None:
    m = importlib.import_module(f"{package}.models")
    api = {name: importlib.import_module(f"{package}.api.{tag}.{name}") for tag, name in (
        ("journeys", "journey_templates"), ("journeys", "design_saga_journey"), ("journeys", "list_journeys"),
        ("journeys", "get_journey"), ("sagas", "execute_saga_journey"), ("sagas", "advance_saga_step"),
        ("sagas", "fail_saga_step"), ("sagas", "get_saga_status"), ("sagas", "get_saga_execution_history"),
        ("sagas", "list_sagas"), ("sagas", "compensate_saga"), ("operator", "retry_compensation"),
        ("operator", "skip_compensation"), ("service", "healthz"), ("service", "readyz"),
    )}
    base = str(client.make_url("")).rstrip("/")
    call = Checked(doc)
    async with pkg.AuthenticatedClient(base_url=base, token="acme-admin") as c:
        await call(api["healthz"], 200, m.Health, client=c)
        await call(api["readyz"], 200, m.Health, client=c)
        templates = await call(api["journey_templates"], 200, m.TemplateList, client=c)
        assert "order_processing" in [t.journey_type for t in templates.templates]

        # design: a template journey with a per-milestone handler timeout in its retry policy
        retry = m.RetryPolicy(max_attempts=2, initial_delay_s=0, handler_timeout_s=10)
        body = m.DesignRequest(journey_type="order_processing", journey_id="orders",
                               requirements=m.DesignRequirements(retry=retry))
        journey = await call(api["design_saga_journey"], 201, m.Journey, client=c, body=body)
        assert [ms.id for ms in journey.milestones] == ORDER
        assert journey.milestones[0].retry.handler_timeout_s == 10
        assert journey.compensation_handlers["process_payment"] == "refund_payment"
        await call(api["get_journey"], 200, m.Journey, client=c, journey_id="orders", version=1)
        listed = await call(api["list_journeys"], 200, m.JourneyList, client=c)
        assert [j.journey_id for j in listed.journeys] == ["orders"]

        # execute, advance twice, fail the third milestone
        start = m.ExecuteRequest(journey_id="orders", saga_id="order-1", context=m.SagaContext.from_dict({"order_id": "o-1"}))
        saga = await call(api["execute_saga_journey"], 201, m.SagaStatus, client=c, body=start)
        assert saga.status == m.SagaState.IN_PROGRESS and saga.failure is None
        assert saga.context.additional_properties == {"order_id": "o-1"}
        for ms in ORDER[:2]:
            step = m.AdvanceRequest(step_result=m.StepResult(status=m.StepStatus.COMPLETE, milestone_id=ms))
            saga = await call(api["advance_saga_step"], 200, m.SagaStatus, client=c, saga_id="order-1", body=step,
                              idempotency_key=f"order-1-{ms}")
        assert saga.completed_milestones == ORDER[:2]
        fail = m.FailRequest(error="out of stock", milestone_id="reserve_inventory",
                             result=m.FailureResult.from_dict({"sku": "A-7"}))
        failed = await call(api["fail_saga_step"], 200, m.SagaStatus, client=c, saga_id="order-1", body=fail)
        assert failed.status in (m.SagaState.COMPENSATING, m.SagaState.FAILED)
        await orch.wait_for_saga("order-1", {"tenant_id": "acme"}, timeout=30)

        # status with its failure, history, list with a filter
        status = await call(api["get_saga_status"], 200, m.SagaStatus, client=c, saga_id="order-1")
        assert status.status == m.SagaState.FAILED and status.compensation_status == m.CompensationStatus.SUCCEEDED
        assert isinstance(status.failure, m.Failure) and status.failure.kind == m.FailureKind.MILESTONE_FAILED
        assert status.failure.milestone_id == "reserve_inventory" and status.failure.reason == "out of stock"
        assert isinstance(status.failure.result, m.FailureResult) and status.failure.result["sku"] == "A-7"
        assert status.compensated_milestones == ["process_payment", "create_order"]
        history = await call(api["get_saga_execution_history"], 200, m.History, client=c, saga_id="order-1")
        assert [e.seq for e in history.events] == list(range(1, len(history.events) + 1))
        assert history.events[0].type_ == "saga_started" and history.events[-1].status_after == m.SagaState.FAILED
        page = await call(api["list_sagas"], 200, m.SagaPage, client=c, status=m.SagaState.FAILED,
                          journey_type="order_processing", limit=10)
        assert [s.saga_id for s in page.sagas] == ["order-1"] and page.next_cursor is None

        # errors answered as problems
        missing = await call(api["get_saga_status"], 404, m.Problem, client=c, saga_id="no-such-saga")
        assert missing.status == 404 and missing.code == "not_found"
        late = m.AdvanceRequest(step_result=m.StepResult(status=m.StepStatus.COMPLETE))
        conflict = await call(api["advance_saga_step"], 409, m.Problem, client=c, saga_id="order-1", body=late)
        assert conflict.code == "invalid_transition" and conflict.type_.endswith("invalid_transition")

        # an abort whose rollback parks, resolved by the operator actions
        calls.fail.add("cancel_order")
        saga2 = m.ExecuteRequest(journey_id="orders", saga_id="order-2")
        await call(api["execute_saga_journey"], 201, m.SagaStatus, client=c, body=saga2)
        step = m.AdvanceRequest(step_result=m.StepResult(status=m.StepStatus.COMPLETE))
        await call(api["advance_saga_step"], 200, m.SagaStatus, client=c, saga_id="order-2", body=step)
        await call(api["compensate_saga"], 200, m.SagaStatus, client=c, saga_id="order-2",
                   body=m.CompensateRequest(reason="customer cancelled"))
        await orch.wait_for_saga("order-2", {"tenant_id": "acme"}, timeout=30)
        parked = await call(api["get_saga_status"], 200, m.SagaStatus, client=c, saga_id="order-2")
        assert parked.parked is True and parked.failed_compensation == "create_order"
        assert parked.failure.kind == m.FailureKind.ABORTED and parked.failure.result is None
        retried = await call(api["retry_compensation"], 200, m.SagaStatus, client=c, saga_id="order-2",
                             body=m.RetryCompensationRequest(reason="try again"))
        assert retried.parked is False or retried.status == m.SagaState.FAILED
        await orch.wait_for_saga("order-2", {"tenant_id": "acme"}, timeout=30)
        skipped = await call(api["skip_compensation"], 200, m.SagaStatus, client=c, saga_id="order-2",
                             body=m.SkipCompensationRequest(milestone_id="create_order", reason="cancelled by hand"))
        assert skipped.manually_compensated == ["create_order"]
    assert call.seen == set(api)


# --- TypeScript ------------------------------------------------------------------------------

def _node_tools() -> tuple[pathlib.Path, pathlib.Path]:
    gen, tsc = NODE_BIN / "openapi-typescript", NODE_BIN / "tsc"
    if shutil.which("node") and gen.exists() and tsc.exists():
        return gen, tsc
    message = f"openapi-typescript/tsc not installed under {NODE_BIN} (run make setup: scripts/install-node-tools.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true, so missing tools are an error, not a skip")
    pytest.skip(message)


USAGE_TS = """\
import type { components, paths } from "./schema";

type S = components["schemas"];
type StatusResponse = paths["/v1/sagas/{saga_id}"]["get"]["responses"][200]["content"]["application/json"];
type NotFound = paths["/v1/sagas/{saga_id}"]["get"]["responses"][404]["content"]["application/problem+json"];
type DesignBody = NonNullable<paths["/v1/journeys"]["post"]["requestBody"]>["content"]["application/json"];

// bodies the live server returned in this test run, checked against the generated types
const journey: S["Journey"] = __JOURNEY__;
const started: S["SagaStatus"] = __STARTED__;
const failed: StatusResponse = __FAILED__;
const history: S["History"] = __HISTORY__;
const page: S["SagaPage"] = __PAGE__;
const notFound: NotFound = __NOT_FOUND__;
const design: DesignBody = { journey_type: "order_processing", requirements: { retry: { max_attempts: 2 } } };

function failedMilestone(s: S["SagaStatus"]): string | null {
  // failure is Failure | null: strict mode makes the null check necessary
  return s.failure === null ? null : s.failure.milestone_id;
}
const state: S["SagaState"] = failed.status;
const first: number = history.events[0].seq;
// @ts-expect-error: not a saga state, so the generated enum must reject it
const bad: S["SagaState"] = "DONE";
// @ts-expect-error: journey_type is required in a design request
const incomplete: DesignBody = { requirements: {} };
export const used = [journey, started, page, notFound, design, failedMilestone(failed), state, first, bad, incomplete];
"""


async def test_typescript_types_check_real_responses(client, orch, tmp_path):
    gen, tsc = _node_tools()
    _, doc_path = await _live_doc(client, tmp_path)
    rc, text = await _run(gen, doc_path, "--output", tmp_path / "schema.d.ts", cwd=tmp_path)
    assert rc == 0, text
    assert not any(word in text.lower() for word in ("warn", "error")), text
    bodies = await _typescript_bodies(client, orch)
    usage = USAGE_TS
    for name, body in bodies.items():
        usage = usage.replace(f"__{name}__", json.dumps(body))
    (tmp_path / "usage.ts").write_text(usage)
    rc, text = await _run(tsc, "--noEmit", "--strict", "--target", "es2020", "usage.ts", cwd=tmp_path)
    assert rc == 0, text
    # and the check has teeth: an undeclared field in a real body is an error
    (tmp_path / "usage.ts").write_text(usage.replace('"saga_id": "order-1",', '"saga_id": "order-1", "surprise": 1,', 1))
    rc, text = await _run(tsc, "--noEmit", "--strict", "--target", "es2020", "usage.ts", cwd=tmp_path)
    assert rc != 0 and "surprise" in text, text


async def _typescript_bodies(client, orch) -> dict[str, Any]:
    async def post(path: str, body: dict[str, Any], status: int) -> Any:
        resp = await client.post(path, json=body, headers=A)
        assert resp.status == status, await resp.text()
        return await resp.json()

    async def get(path: str, status: int = 200) -> Any:
        resp = await client.get(path, headers=A)
        assert resp.status == status, await resp.text()
        return await resp.json()

    journey = await post("/v1/journeys", {"journey_type": "order_processing", "journey_id": "orders"}, 201)
    started = await post("/v1/sagas", {"journey_id": "orders", "saga_id": "order-1", "context": {"k": [1, None]}}, 201)
    await post("/v1/sagas/order-1/advance", {"step_result": {"status": "complete"}}, 200)
    await post("/v1/sagas/order-1/fail", {"error": "out of stock", "result": {"sku": "A-7"}}, 200)
    await orch.wait_for_saga("order-1", {"tenant_id": "acme"}, timeout=30)
    return {
        "JOURNEY": journey,
        "STARTED": started,
        "FAILED": await get("/v1/sagas/order-1"),
        "HISTORY": await get("/v1/sagas/order-1/history"),
        "PAGE": await get("/v1/sagas?status=FAILED"),
        "NOT_FOUND": await get("/v1/sagas/nope", 404),
    }
