"""The admissible-value rule (runtime/values.py) and its use by every embedded write (issue 9)."""

from __future__ import annotations

import json
import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saga_journey.runtime import InvalidInputError
from saga_journey.runtime.values import INT_MAX, INT_MIN, MAX_DEPTH, check_value, inadmissible, readable

from .test_runtime import fail_third_milestone

UC = {"tenant_id": "acme", "user_id": "user_123"}


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


BAD = [
    b"raw",
    bytearray(b"x"),
    msgpack.ExtType(3, b"\x00"),
    msgpack.Timestamp(0, 5),
    (1, 2),
    {1, 2},
    object(),
    INT_MAX + 1,
    INT_MIN - 1,
    math.nan,
    math.inf,
    "\ud800",
    {1: "int key"},
    {("a", "b"): "tuple key"},
    {"\udfff": "surrogate key"},
    nested(MAX_DEPTH + 1),
]
GOOD = [None, True, 0, INT_MAX, INT_MIN, -0.0, 1e308, "", "é ✓ 𝄞", [], {}, {"a": [1, {"b": None}]}, nested(MAX_DEPTH)]


@pytest.mark.parametrize("value", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_inadmissible_values_are_named_with_their_path(value):
    why = inadmissible({"outer": [value]}, "context")
    assert why is not None and why.startswith("context")
    with pytest.raises(InvalidInputError):
        check_value({"outer": [value]}, "context")


@pytest.mark.parametrize("value", GOOD, ids=[f"good{i}" for i in range(len(GOOD))])
def test_admissible_values_round_trip_through_json_and_msgpack(value):
    assert check_value(value, "v") is value
    assert json.loads(json.dumps(value, allow_nan=False)) == value
    assert msgpack.unpackb(msgpack.packb(value), strict_map_key=True) == value


def test_readable_marks_only_the_bad_parts():
    data = {"ok": [1, "x"], "bad": msgpack.ExtType(1, b""), 7: b"z", "s": "\ud800"}
    out = readable(data)
    json.dumps(out, allow_nan=False)
    msgpack.packb(out)
    assert out["ok"] == [1, "x"] and out["bad"].startswith("<unreadable") and "7" in out


def test_bad_values_are_refused_by_every_embedded_write_and_nothing_is_stored(orch):
    j = orch.design_saga_journey_sync("order_processing", user_context=UC)
    sid = orch.execute_saga_journey_sync(j["journey_id"], "user_123", {}, UC)["saga_id"]
    before = (orch.list_sagas_sync(user_context=UC), orch.get_saga_execution_history_sync(sid, UC))
    for bad in (msgpack.ExtType(5, b"\x01"), msgpack.Timestamp(1, 0), b"\x00", (1,), {1: 2}, 2**64, math.nan, "\ud800"):
        with pytest.raises(InvalidInputError):
            orch.execute_saga_journey_sync(j["journey_id"], "user_123", {"v": bad}, UC)
        with pytest.raises(InvalidInputError):
            orch.design_saga_journey_sync("order_processing", {"metadata": {"v": bad}}, user_context=UC)
        with pytest.raises(InvalidInputError):
            orch.advance_saga_step_sync(sid, None, None, {"status": "complete", "v": bad}, UC)
        with pytest.raises(InvalidInputError):
            orch.advance_saga_step_sync(sid, None, None, {"status": "complete"}, UC, idempotency_key=bad if isinstance(bad, str) else "k\ud800")
    with pytest.raises(InvalidInputError):
        orch.compensate_saga_sync(sid, "why \ud800", UC)
    with pytest.raises(InvalidInputError):
        orch.compensate_saga_sync(sid, "fine", {"tenant_id": "acme", "user_id": "op\udc00"})
    with pytest.raises(InvalidInputError):
        orch.execute_saga_journey_sync(j["journey_id"], "user_123", {}, UC, journey_version=True)
    with pytest.raises(InvalidInputError):
        orch.execute_saga_journey_sync(j["journey_id"], "user_123", {}, UC, journey_version=10**600)
    assert (orch.list_sagas_sync(user_context=UC), orch.get_saga_execution_history_sync(sid, UC)) == before
    assert len(orch.list_journeys_sync(UC)) == 1


def test_unknown_requirements_keys_are_refused_embedded(orch):
    with pytest.raises(InvalidInputError) as err:
        orch.design_saga_journey_sync("order_processing", {"deadline_sec": 5}, user_context=UC)
    assert "'deadline_sec' -> 'deadline_s'" in err.value.message and "metadata" in err.value.message
    assert err.value.details["unknown"] == ["deadline_sec"]
    with pytest.raises(InvalidInputError):
        orch.design_saga_journey_sync("order_processing", {"metadata": [1]}, user_context=UC)
    assert orch.list_journeys_sync(UC) == []
    j = orch.design_saga_journey_sync("order_processing", {"metadata": {"shop": "eu-1"}, "deadline_s": 9}, user_context=UC)
    assert j["requirements"] == {"metadata": {"shop": "eu-1"}} and j["deadline_s"] == 9


@pytest.mark.parametrize("typo", [
    "deadline_sec", "max_retries", "milestone", "Milestones", "retry_policy", "timeout_s",
    "compensation_deadline", "forward_retries", "backoff", "deadlines", "retyr",
])
def test_keys_that_read_like_mistyped_policy_keys_are_refused(orch, typo):
    with pytest.raises(InvalidInputError) as err:
        orch.design_saga_journey_sync("order_processing", {typo: 5}, user_context=UC)
    assert err.value.details["unknown"] == [typo]
    assert orch.list_journeys_sync(UC) == []


def test_seed_domain_requirements_are_kept(orch):
    """The seed's own first call: requirements are domain data (source, target)."""
    req = {"source": "legacy_system", "target": "new_system"}
    j = orch.design_saga_journey_sync("enterprise_migration", req, user_context=UC)
    assert j["requirements"] == req
    assert orch.get_journey_sync(j["journey_id"], UC)["requirements"] == req


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(max_size=4),
    st.sampled_from(["\ud800", msgpack.ExtType(1, b"x"), msgpack.Timestamp(3, 4), (1, 2), frozenset({1})]),
)
_python_keys = st.one_of(st.text(max_size=5), st.integers(), st.sampled_from([b"k", None, ("t",)]))


def _python_containers(kids: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.lists(kids, max_size=3), st.dictionaries(_python_keys, kids, max_size=3))


_python_values = st.recursive(_leaf, _python_containers, max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(_python_values)
def test_admissible_means_readable_both_ways(value):
    """The rule's promise, for arbitrary Python values: admitted -> both encodings carry it unchanged."""
    if inadmissible(value) is None:
        assert json.loads(json.dumps(value, allow_nan=False)) == value
        assert msgpack.unpackb(msgpack.packb(value), strict_map_key=True) == value
    out = readable(value)
    assert inadmissible(out) is None


@pytest.fixture(scope="module")
def shared_orch(tmp_path_factory):
    from saga_journey.runtime import SagaOrchestrator
    from saga_journey.runtime.journeys import TEMPLATES

    handlers = {h: (lambda ctx: None) for steps in TEMPLATES.values() for _, h in steps}
    o = SagaOrchestrator.open(str(tmp_path_factory.mktemp("values") / "data"), handlers=handlers)
    yield o
    o.close()


_WRITES = {
    "context": lambda o, j, s, v: o.execute_saga_journey_sync(j, "u1", {"k": v}, UC),
    "requirements": lambda o, j, s, v: o.design_saga_journey_sync("order_processing", {"metadata": {"k": v}}, user_context=UC),
    "compensation_handlers": lambda o, j, s, v: o.design_saga_journey_sync("order_processing", None, {"create_order": v}, UC, allow_unregistered_handlers=True),
    "step_result": lambda o, j, s, v: o.advance_saga_step_sync(s, None, None, {"status": "complete", "k": v}, UC),
    "failed_step": lambda o, j, s, v: o.advance_saga_step_sync(s, None, None, {"status": "failed", "error": v}, UC),
    "reason": lambda o, j, s, v: o.compensate_saga_sync(s, v, UC),
    "user": lambda o, j, s, v: o.compensate_saga_sync(s, "why", {"tenant_id": "acme", "user_id": v}),
    "idempotency_key": lambda o, j, s, v: o.execute_saga_journey_sync(j, "u1", {}, UC, idempotency_key=v),
    "journey_version": lambda o, j, s, v: o.execute_saga_journey_sync(j, "u1", {}, UC, journey_version=v),
}


@settings(max_examples=120, deadline=None)
@given(target=st.sampled_from(sorted(_WRITES)), value=_python_values)
def test_embedded_writes_refuse_or_store_readable_values(shared_orch, target, value):
    """Any Python value into any embedded write: a SagaError, or stored and read back admissible."""
    from saga_journey.runtime.errors import SagaError

    o = shared_orch
    j = o.design_saga_journey_sync("order_processing", user_context=UC, journey_id="base")["journey_id"]
    s = o.execute_saga_journey_sync(j, "u1", {}, UC)["saga_id"]
    try:
        _WRITES[target](o, j, s, value)
    except SagaError:
        pass
    reads = [
        o.list_sagas_sync(user_context=UC, limit=1000), o.get_saga_status_sync(s, UC),
        o.get_saga_execution_history_sync(s, UC), o.list_journeys_sync(UC), o.get_journey_sync(j, UC),
    ]
    assert inadmissible(reads) is None


class _NastyError(Exception):
    """A handler error whose text no encoding carries (a lone surrogate) and is very long."""

    def __str__(self) -> str:
        return "ledger \ud800 locked " + "x" * 100_000


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.mark.parametrize("error", [_NastyError, _UnprintableError])
def test_handler_errors_are_recorded_as_readable_text(orch, recorder, fast_retry, error):
    """A compensation handler's error text is a value too: it is recorded readably, never strands."""
    def broken(ctx) -> None:
        raise error()

    recorder.behaviour["refund_payment"] = broken
    sid, final = fail_third_milestone(orch, fast_retry)
    assert final["status"] == "FAILED" and final["compensation_status"] == "failed"
    assert f"process_payment' failed after 3 attempt(s): {error.__name__}: " in final["compensation_error"]
    assert len(final["compensation_error"]) < 5000
    reads = [orch.get_saga_status_sync(sid, UC), orch.get_saga_execution_history_sync(sid, UC),
             orch.list_sagas_sync(user_context=UC)]
    assert inadmissible(reads) is None
