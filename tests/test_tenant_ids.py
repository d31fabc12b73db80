"""Issue 9, defect 5: saga and journey ids (and idempotency keys) are scoped by tenant.

Two tenants may both own journey ``j-1`` and saga ``order-42``; neither sees the other's, and
every answer to tenant B is the same whether tenant A's records exist or not (embedded and
over HTTP). Timestamps are the only thing allowed to differ between the two runs.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from saga_journey.http.app import create_app
from saga_journey.http.auth import hash_token
from saga_journey.http.settings import ApiKey, GatewaySettings
from saga_journey.runtime import SagaError, SagaOrchestrator
from saga_journey.runtime.journeys import TEMPLATES

A = {"tenant_id": "acme", "user_id": "alice"}
B = {"tenant_id": "globex", "user_id": "bob"}
HANDLERS = {h for steps in TEMPLATES.values() for _, h in steps}
COMPLETE = {"status": "complete", "milestone_id": "create_order"}


def normalized(value: Any) -> Any:
    """``value`` with every timestamp (floats and the ``*_iso`` strings) replaced by 0.0."""
    if isinstance(value, float):
        return 0.0
    if isinstance(value, dict):
        return {k: 0.0 if k.endswith("_iso") else normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def _open(path: str, seen: list[str] | None = None) -> SagaOrchestrator:
    def handler(ctx: Any) -> None:
        if seen is not None:
            seen.append(ctx.idempotency_key)

    return SagaOrchestrator.open(path, handlers={h: handler for h in HANDLERS})


# ---- embedded ------------------------------------------------------------------------------


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", normalized(call())
    except SagaError as exc:
        return type(exc).__name__, exc.message


def _tenant_a_owns_everything(orch: SagaOrchestrator) -> None:
    orch.design_saga_journey_sync("order_processing", user_context=A, journey_id="j-1")
    orch.design_saga_journey_sync("financial_transaction", user_context=A, journey_id="a-journey")
    orch.execute_saga_journey_sync("j-1", "alice", {"a": 1}, A, saga_id="order-42", idempotency_key="k1")
    orch.execute_saga_journey_sync("j-1", "alice", {}, A, saga_id="a-only")
    orch.advance_saga_step_sync("order-42", "j-1", "alice", COMPLETE, A)


def _tenant_b_session(orch: SagaOrchestrator) -> list[tuple[str, Any]]:
    """Everything tenant B does and reads, as (outcome, normalized answer) pairs."""
    design = lambda: orch.design_saga_journey_sync(  # noqa: E731
        "order_processing", user_context=B, journey_id="j-1")
    start = lambda **kw: orch.execute_saga_journey_sync(  # noqa: E731
        "j-1", "bob", {"b": 2}, B, saga_id="order-42", **kw)
    steps: list[Callable[[], Any]] = [
        design, design,
        lambda: orch.get_journey_sync("j-1", B),
        lambda: orch.get_journey_sync("j-1", B, version=1),
        lambda: orch.list_journeys_sync(B),
        lambda: start(idempotency_key="k1"),
        lambda: start(idempotency_key="k1"),  # B's own replay
        start,  # a taken id, taken by B itself
        lambda: orch.get_saga_status_sync("order-42", B),
        lambda: orch.get_saga_execution_history_sync("order-42", B),
        lambda: orch.list_sagas_sync(user_context=B),
        lambda: orch.advance_saga_step_sync("order-42", "j-1", "bob", COMPLETE, B),
        lambda: orch.get_saga_status_sync("a-only", B),
        lambda: orch.advance_saga_step_sync("a-only", None, "bob", COMPLETE, B),
        lambda: orch.compensate_saga_sync("a-only", "no", B),
        lambda: orch.get_journey_sync("a-journey", B),
        lambda: orch.execute_saga_journey_sync("a-journey", "bob", {}, B),
        lambda: orch.compensate_saga_sync("order-42", "changed my mind", B),
        lambda: orch.wait_for_saga_sync("order-42", B, timeout=10),
        lambda: orch.get_saga_execution_history_sync("order-42", B),
        lambda: orch.list_sagas_sync("FAILED", user_context=B),
    ]
    return [_outcome(step) for step in steps]


def test_both_tenants_own_the_same_ids_embedded(tmp_path) -> None:
    keys: list[str] = []
    with _open(str(tmp_path / "alone")) as orch:
        alone = _tenant_b_session(orch)
    with _open(str(tmp_path / "shared"), keys) as orch:
        _tenant_a_owns_everything(orch)
        a_before = orch.get_saga_status_sync("order-42", A)
        shared = _tenant_b_session(orch)
        assert shared == alone
        # A's records are untouched by B's, and still A's.
        assert orch.get_saga_status_sync("order-42", A) == a_before
        assert a_before["context"] == {"a": 1} and a_before["completed_milestones"] == ["create_order"]
        assert orch.get_journey_sync("j-1", A)["version"] == 1
        assert [s["saga_id"] for s in orch.list_sagas_sync(user_context=A)["sagas"]] == ["order-42", "a-only"]  # newest first
    outcomes = [o for o, _ in shared]
    assert outcomes[:7] == ["ok"] * 7 and outcomes[7] == "ConflictError"
    assert outcomes[12:17] == ["NotFoundError"] * 5
    assert shared[-3][1]["status"] == "FAILED" and shared[-3][1]["saga_id"] == "order-42"
    # B's compensation got a handler key of its own, never A's.
    assert keys == ["globex/order-42/create_order/compensate"]


# ---- HTTP ----------------------------------------------------------------------------------

TOKENS = {"tok-a": A, "tok-b": B}


def _settings() -> GatewaySettings:
    keys = tuple(
        ApiKey(hash_token(tok), who["tenant_id"], who["user_id"], frozenset({"admin"}))
        for tok, who in TOKENS.items()
    )
    return GatewaySettings(api_keys=keys)


def _h(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def _answer(resp: Any) -> tuple[int, Any, str | None]:
    return resp.status, normalized(await resp.json()), resp.headers.get("Location")


async def _http_a(client: Any) -> None:
    a = _h("tok-a")
    for jid in ("j-1", "a-journey"):
        r = await client.post("/v1/journeys", json={"journey_type": "order_processing", "journey_id": jid}, headers=a)
        assert r.status == 201
    for sid in ("order-42", "a-only"):
        r = await client.post("/v1/sagas", json={"journey_id": "j-1", "saga_id": sid}, headers=_h("tok-a", **{"Idempotency-Key": f"k-{sid}"}))
        assert r.status == 201


async def _http_b(client: Any, orch: SagaOrchestrator) -> list[tuple[int, Any, str | None]]:
    b = _h("tok-b")
    design = {"journey_type": "order_processing", "journey_id": "j-1"}
    start = {"journey_id": "j-1", "saga_id": "order-42", "context": {"b": 2}}
    calls: list[tuple[str, str, Any, dict[str, str]]] = [
        ("post", "/v1/journeys", design, b),
        ("post", "/v1/journeys", design, b),
        ("get", "/v1/journeys/j-1", None, b),
        ("get", "/v1/journeys", None, b),
        ("post", "/v1/sagas", start, _h("tok-b", **{"Idempotency-Key": "k-order-42"})),
        ("post", "/v1/sagas", start, _h("tok-b", **{"Idempotency-Key": "k-order-42"})),
        ("post", "/v1/sagas", start, b),
        ("get", "/v1/sagas/order-42", None, b),
        ("get", "/v1/sagas/order-42/history", None, b),
        ("get", "/v1/sagas", None, b),
        ("post", "/v1/sagas/order-42/advance", {"step_result": COMPLETE}, b),
        ("get", "/v1/sagas/a-only", None, b),
        ("get", "/v1/sagas/a-only/history", None, b),
        ("post", "/v1/sagas/a-only/advance", {"step_result": COMPLETE}, b),
        ("post", "/v1/sagas/a-only/compensate", {}, b),
        ("get", "/v1/journeys/a-journey", None, b),
        ("post", "/v1/sagas", {"journey_id": "a-journey"}, b),
        ("post", "/v1/sagas/order-42/compensate", {"reason": "no"}, b),
    ]
    out = []
    for method, path, body, headers in calls:
        resp = await getattr(client, method)(path, json=body, headers=headers)
        out.append(await _answer(resp))
    await orch.wait_for_saga("order-42", B, timeout=10)
    for path in ("/v1/sagas/order-42", "/v1/sagas/order-42/history", "/v1/sagas?status=FAILED"):
        out.append(await _answer(await client.get(path, headers=b)))
    return out


async def test_both_tenants_own_the_same_ids_over_http(tmp_path, aiohttp_client) -> None:
    loop = asyncio.get_running_loop()
    answers = []
    for world in ("alone", "shared"):
        orch = _open(str(tmp_path / world))
        try:
            client = await aiohttp_client(create_app(orch, _settings()))
            if world == "shared":
                await _http_a(client)
            answers.append(await _http_b(client, orch))
            if world == "shared":
                mine = await client.get("/v1/sagas/order-42", headers=_h("tok-a"))
                body = await mine.json()
                assert body["tenant_id"] == "acme" and body["status"] == "IN_PROGRESS"
                listed = await (await client.get("/v1/journeys", headers=_h("tok-a"))).json()
                assert sorted(j["journey_id"] for j in listed["journeys"]) == ["a-journey", "j-1"]
            await client.close()
        finally:
            await loop.run_in_executor(None, orch.close)
    alone, shared = answers
    assert shared == alone
    assert [s for s, _, _ in shared[:7]] == [201, 201, 200, 200, 201, 201, 409]
    assert [s for s, _, _ in shared[11:17]] == [404] * 6
    assert shared[4][2] == "/v1/sagas/order-42" and shared[-3][1]["status"] == "FAILED"


@pytest.mark.parametrize("second", ["same", "different"])
def test_idempotency_keys_are_per_tenant(tmp_path, second) -> None:
    """A's key ``k`` never answers B: B's first use of ``k`` runs B's request."""
    with _open(str(tmp_path / "d")) as orch:
        orch.design_saga_journey_sync("order_processing", user_context=A, journey_id="j-1")
        orch.design_saga_journey_sync("order_processing", user_context=B, journey_id="j-1")
        a = orch.execute_saga_journey_sync("j-1", "alice", {}, A, saga_id="s-a", idempotency_key="k")
        sid = "s-a" if second == "same" else "s-b"
        b = orch.execute_saga_journey_sync("j-1", "bob", {}, B, saga_id=sid, idempotency_key="k")
        assert "replayed" not in b and b["tenant_id"] == "globex" and b["saga_id"] == sid
        again = orch.execute_saga_journey_sync("j-1", "bob", {}, B, saga_id=sid, idempotency_key="k")
        assert again["replayed"] is True and again["tenant_id"] == "globex"
        assert orch.get_saga_status_sync("s-a", A)["user_id"] == a["user_id"] == "alice"
