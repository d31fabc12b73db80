"""saga_journey.client (sync and async) against a real ``saga-journey serve`` subprocess."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from saga_journey.client import AsyncSagaClient, SagaClient
from saga_journey.runtime.errors import (
    AuthError,
    ConnectionFailedError,
    ForbiddenError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
)

from .conftest import ORDER, READER, free_port, make_saga



def test_sync_client_has_the_embedded_names_and_return_values(gateway, journey) -> None:
    with gateway.client() as c:
        assert c.get_journey(journey["journey_id"])["milestones"][0]["id"] == "create_order"
        assert journey["journey_id"] in [j["journey_id"] for j in c.list_journeys()]
        saga = c.execute_saga_journey(journey["journey_id"], "u-sync", {"order_id": "o-1"})
        assert (saga["status"], saga["current_milestone"], saga["user_id"]) == ("IN_PROGRESS", "create_order", "u-sync")
        for milestone, _ in ORDER:
            saga = c.advance_saga_step(saga["saga_id"], step_result={"status": "complete", "milestone_id": milestone})
        assert saga["status"] == "COMPLETED"
        assert c.get_saga_status(saga["saga_id"]) == {k: v for k, v in saga.items() if k != "event"}
        history = c.get_saga_execution_history(saga["saga_id"])
        assert [e["seq"] for e in history] == [1, 2, 3, 4, 5]
        assert [e["type"] for e in history] == ["saga_started"] + ["milestone_completed"] * 4
        page = c.list_sagas("COMPLETED", "order_processing", limit=1000)
        assert saga["saga_id"] in [v["saga_id"] for v in page["sagas"]]
        assert c.wait_for_saga(saga["saga_id"], timeout=5)["version"] == 5


async def test_async_client_compensates_and_waits_on_a_version(gateway, journey) -> None:
    async with AsyncSagaClient(gateway.url, "tok-ops-admin") as c:
        saga = await c.execute_saga_journey(journey["journey_id"], "u-async")
        sid = saga["saga_id"]
        saga = await c.advance_saga_step(sid, step_result={"status": "complete", "milestone_id": "create_order"})
        waiting = asyncio.ensure_future(c.wait_for_saga(sid, version=saga["version"], timeout=30))
        aborted = await c.compensate_saga(sid, "customer cancelled")
        moved = await waiting
        assert moved["version"] > saga["version"] and moved["status"] in ("COMPENSATING", "FAILED")
        final = await c.wait_for_saga(sid, timeout=30)
        assert aborted["status"] in ("COMPENSATING", "FAILED")
        assert (final["status"], final["compensated_milestones"]) == ("FAILED", ["create_order"])
        assert [v["saga_id"] async for v in c.iter_sagas(page_size=1, status="FAILED")].count(sid) == 1


def test_wait_for_saga_times_out_as_the_embedded_api(gateway, journey) -> None:
    with gateway.client() as c:
        saga = c.execute_saga_journey(journey["journey_id"], "u-wait")
        assert c.wait_for_saga(saga["saga_id"], timeout=0.2, return_on_timeout=True)["version"] == 1
        with pytest.raises(Exception, match="did not finish within 0.2s"):
            c.wait_for_saga(saga["saga_id"], timeout=0.2)


def test_problem_json_becomes_typed_errors(gateway, journey) -> None:
    with gateway.client() as c:
        with pytest.raises(NotFoundError) as missing:
            c.get_saga_status("saga_nope")
        assert missing.value.details["http_status"] == 404
        with pytest.raises(InvalidInputError):
            c.list_sagas(limit=0)
        done = make_saga(c, journey["journey_id"], "u-err", "completed")
        with pytest.raises(InvalidTransitionError):
            c.compensate_saga(done["saga_id"], "too late")
    with gateway.client("not-a-key") as c, pytest.raises(AuthError) as denied:
        c.list_journeys()
    assert not isinstance(denied.value, ForbiddenError)
    with gateway.client(READER) as c, pytest.raises(ForbiddenError):
        c.execute_saga_journey(journey["journey_id"], "u-err")


def test_an_unreachable_gateway_is_a_connection_error_after_bounded_retries() -> None:
    with SagaClient(f"http://127.0.0.1:{free_port()}", "t", retries=2, backoff_s=0.01) as c:
        with pytest.raises(ConnectionFailedError, match="127.0.0.1"):
            c.get_saga_status("saga_x")


async def test_sync_client_works_inside_a_running_event_loop(gateway, journey) -> None:
    with gateway.client() as c:  # its own loop thread: never the caller's loop
        assert c.get_journey(journey["journey_id"])["journey_id"] == journey["journey_id"]


class DroppingProxy:
    """TCP proxy in front of the gateway. The first ``drop`` requests are forwarded and answered by
    the gateway, but the answer is thrown away and the client's connection closed; the first
    ``busy`` requests are answered 503 + Retry-After without reaching the gateway."""

    def __init__(self, upstream_port: int, *, drop: int = 0, busy: int = 0) -> None:
        self.upstream_port, self.drop, self.busy = upstream_port, drop, busy
        self.keys: list[str | None] = []
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int((re.search(rb"(?i)content-length: *(\d+)", head) or [b"", b"0"])[1])
        body = await reader.readexactly(length)
        key = re.search(rb"(?i)idempotency-key: *([^\r]+)", head)
        self.keys.append(key[1].decode() if key else None)
        if self.busy:
            self.busy -= 1
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        head = re.sub(rb"(?i)connection: *[^\r]+\r\n", b"", head).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
        up_writer.write(head + body)
        await up_writer.drain()
        answer = await up_reader.read()  # the gateway closes after answering (Connection: close)
        up_writer.close()
        if self.drop:
            self.drop -= 1  # the gateway has committed and answered; the client never hears it
        else:
            writer.write(answer)
            await writer.drain()
        writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield f"http://127.0.0.1:{self.port}"


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_a_write_retried_after_a_dropped_connection_reuses_its_key_and_applies_once(gateway, journey) -> None:
    proxy = DroppingProxy(_port(gateway.url), drop=1)
    async with proxy.running() as url, AsyncSagaClient(url, "tok-ops-admin", backoff_s=0.01) as c:
        saga = await c.execute_saga_journey(journey["journey_id"], "u-dropped", {"n": 1})
    assert len(proxy.keys) == 2 and proxy.keys[0] == proxy.keys[1] and proxy.keys[0]
    with gateway.client() as c:
        mine = [v for v in c.list_sagas(limit=1000)["sagas"] if v["user_id"] == "u-dropped"]
    assert [v["saga_id"] for v in mine] == [saga["saga_id"]]  # created once, answered the same


async def test_an_advance_retried_after_503_and_a_drop_is_applied_once(gateway, journey) -> None:
    with gateway.client() as sync:
        sid = sync.execute_saga_journey(journey["journey_id"], "u-503")["saga_id"]
    proxy = DroppingProxy(_port(gateway.url), drop=1, busy=1)
    async with proxy.running() as url, AsyncSagaClient(url, "tok-ops-admin", backoff_s=0.01) as c:
        status = await c.advance_saga_step(sid, step_result={"status": "complete"})
    assert len(proxy.keys) == 3 and len(set(proxy.keys)) == 1
    assert status["completed_milestones"] == ["create_order"] and status["version"] == 2
    with gateway.client() as sync:
        assert [e["type"] for e in sync.get_saga_execution_history(sid)] == ["saga_started", "milestone_completed"]


def test_each_call_gets_its_own_key(gateway, journey) -> None:
    async def two_calls() -> list[str | None]:
        proxy = DroppingProxy(_port(gateway.url))
        async with proxy.running() as url, AsyncSagaClient(url, "tok-ops-admin") as c:
            for _ in range(2):
                await c.execute_saga_journey(journey["journey_id"], "u-keys")
            await c.get_journey(journey["journey_id"])
        return proxy.keys

    keys = asyncio.run(two_calls())
    assert keys[0] and keys[1] and keys[0] != keys[1] and keys[2] is None  # GET: no key


def test_saga_events_replays_the_history_in_order_then_follows(gateway, journey) -> None:
    with gateway.client() as c:
        saga = make_saga(c, journey["journey_id"], "u-sse", "in_progress")
        got: list[int] = []
        stream = c.saga_events(saga["saga_id"])
        for event in stream:
            got.append(int(event.id))
            assert event.data["saga_id"] == saga["saga_id"] and event.data["seq"] == int(event.id)
            if len(got) == 2:
                c.advance_saga_step(saga["saga_id"], step_result={"status": "complete"})
            if len(got) == 3:
                break
    assert got == [1, 2, 3]


def test_global_events_deliver_new_transitions_of_matching_sagas(gateway, journey) -> None:
    done, seen, errors = threading.Event(), [], []

    def follow() -> None:
        try:
            with gateway.client() as c:
                for event in c.events(journey_id=journey["journey_id"], user_id="u-live"):
                    seen.append((event.type, event.data["saga_id"], event.data["saga"]["user_id"]))
                    if event.type == "milestone_completed":
                        return
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    with gateway.client() as writer:  # the stream starts "now": write until it has seen one
        for _ in range(40):
            sid = writer.execute_saga_journey(journey["journey_id"], "u-live")["saga_id"]
            writer.advance_saga_step(sid, step_result={"status": "complete"})
            if done.wait(0.5):
                break
    thread.join(30)
    assert not errors, errors
    assert seen and seen[-1][0] == "milestone_completed" and {u for _, _, u in seen} == {"u-live"}


def test_list_sagas_sends_the_contract_filters_to_the_gateway(own_gateway) -> None:
    from .conftest import design

    journey_id = design(own_gateway)["journey_id"]
    with own_gateway.client() as c:
        parked = make_saga(c, journey_id, "u-a", "parked")
        done = make_saga(c, journey_id, "u-b", "completed")
        assert [v["saga_id"] for v in c.list_sagas(parked=True)["sagas"]] == [parked["saga_id"]]
        assert [v["saga_id"] for v in c.list_sagas(user_id="u-b")["sagas"]] == [done["saga_id"]]
        assert [v["saga_id"] for v in c.list_sagas(journey_id=journey_id, order="newest")["sagas"]] == \
            [done["saga_id"], parked["saga_id"]]
        assert c.list_sagas(updated_before=parked["started_at"])["sagas"] == []


async def _next(stream: AsyncIterator) -> object:
    return await asyncio.wait_for(stream.__anext__(), 60)  # a guard against a hang, not a timing check


async def _advance(c: AsyncSagaClient, sid: str, milestone: str) -> None:
    await c.advance_saga_step(sid, step_result={"status": "complete", "milestone_id": milestone})


async def test_events_resumed_after_a_clean_disconnect_arrive_exactly_once_in_order(gateway, journey) -> None:
    """The real client closes its stream between two events, the saga moves on while it is
    away, and a new stream with Last-Event-ID gets every event after it: none lost, none twice."""
    async with AsyncSagaClient(gateway.url, "tok-ops-admin") as c:
        sid = (await c.execute_saga_journey(journey["journey_id"], "u-resume"))["saga_id"]
        await _advance(c, sid, ORDER[0][0])
        first = c.events(saga_ids=[sid], last_event_id="0", reconnect=False)
        got = [await _next(first), await _next(first)]  # replayed: saga_started, milestone_completed
        await _advance(c, sid, ORDER[1][0])
        got.append(await _next(first))  # live
        await first.aclose()  # a clean disconnect, between two events
        await _advance(c, sid, ORDER[2][0])  # while no stream is open
        await _advance(c, sid, ORDER[3][0])
        second = c.events(saga_ids=[sid], last_event_id=got[-1].id, reconnect=False)
        got += [await _next(second), await _next(second)]  # replayed after the Last-Event-ID
        third_party = (await c.execute_saga_journey(journey["journey_id"], "u-resume"))["saga_id"]
        await _advance(c, third_party, ORDER[0][0])  # other sagas' events are not this stream's
        await second.aclose()
    assert [e.data["seq"] for e in got] == [1, 2, 3, 4, 5]
    assert {e.data["saga_id"] for e in got} == {sid}
    ids = [int(e.id) for e in got]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [e.type for e in got] == ["saga_started"] + ["milestone_completed"] * 4
    assert got[-1].data["status"] == "COMPLETED"


def test_saga_events_resume_with_the_sync_client(gateway, journey) -> None:
    with gateway.client() as c:
        sid = make_saga(c, journey["journey_id"], "u-resume-sync", "in_progress")["saga_id"]
        stream = c.saga_events(sid, reconnect=False)
        seen = [next(stream), next(stream)]
        stream.close()  # disconnect
        c.advance_saga_step(sid, step_result={"status": "complete", "milestone_id": ORDER[1][0]})
        resumed = c.saga_events(sid, last_event_id=seen[-1].id, reconnect=False)
        seen.append(next(resumed))
        resumed.close()
    assert [int(e.id) for e in seen] == [1, 2, 3] and [e.data["seq"] for e in seen] == [1, 2, 3]
