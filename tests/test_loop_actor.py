"""The asyncio-backed pykka actor type against pykka's ask/tell/stop/dead-actor semantics."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterator

import pykka
import pytest

from saga_journey.actors.loop_actor import LoopActor, LoopFuture, RuntimeLoop


class Echo(LoopActor):
    def __init__(self, runtime: RuntimeLoop, log: list[Any] | None = None) -> None:
        super().__init__(runtime)
        self.log = log if log is not None else []
        self.threads: set[int] = set()

    def on_start(self) -> None:
        self.log.append("started")
        self.threads.add(threading.get_ident())

    def on_receive(self, message: Any) -> Any:
        self.threads.add(threading.get_ident())
        if message == "boom":
            raise ValueError("boom")
        if message == "threads":
            return set(self.threads)
        self.log.append(message)
        return ("echo", message)

    def on_stop(self) -> None:
        self.log.append("stopped")

    def add(self, a: int, b: int) -> int:
        return a + b


@pytest.fixture
def runtime() -> Iterator[RuntimeLoop]:
    rt = RuntimeLoop.start()
    yield rt
    rt.close()


def test_ask_and_tell_from_another_thread_run_on_the_loop_in_order(runtime: RuntimeLoop) -> None:
    log: list[Any] = []
    ref = Echo.start(runtime, log)
    for i in range(200):
        ref.tell(i)
    assert ref.ask("last", timeout=5) == ("echo", "last")
    assert log == ["started", *range(200), "last"]
    assert ref.ask("threads", timeout=5) == {runtime.thread_id}
    assert ref in pykka.ActorRegistry.get_all()
    ref.stop()


def test_ask_error_reaches_the_caller_and_the_actor_lives_on(runtime: RuntimeLoop) -> None:
    ref = Echo.start(runtime)
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=5)
    assert ref.is_alive()
    assert ref.ask("still", timeout=5) == ("echo", "still")
    ref.stop()


def test_error_in_a_tell_stops_the_actor_as_pykka_does(runtime: RuntimeLoop) -> None:
    failures: list[Any] = []

    class Failing(Echo):
        def on_failure(self, *exc_info: Any) -> None:
            failures.append(exc_info[0])

    ref = Failing.start(runtime)
    ref.tell("boom")
    ref.actor_stopped.wait(5)
    assert not ref.is_alive()
    assert failures == [ValueError]
    assert ref not in pykka.ActorRegistry.get_all()


def test_stop_runs_on_stop_unregisters_and_refuses_later_messages(runtime: RuntimeLoop) -> None:
    log: list[Any] = []
    ref = Echo.start(runtime, log)
    assert ref.stop(timeout=5) is True
    assert log[-1] == "stopped"
    assert ref not in pykka.ActorRegistry.get_all()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late", timeout=5)
    assert ref.stop(timeout=5) is False  # already stopped


def test_messages_queued_behind_a_stop_get_actor_dead_error(runtime: RuntimeLoop) -> None:
    gate = threading.Event()
    ref = Echo.start(runtime)
    runtime.call(gate.wait, 5)  # hold the loop so that the messages queue up behind the stop
    stop = ref.stop(block=False)
    behind = ref.ask("behind", block=False)
    gate.set()
    assert stop.get(timeout=5) is True
    with pytest.raises(pykka.ActorDeadError):
        behind.get(timeout=5)


def test_proxy_calls_work(runtime: RuntimeLoop) -> None:
    ref = Echo.start(runtime)
    assert ref.proxy().add(2, 3).get(timeout=5) == 5
    ref.stop()


def test_get_times_out_with_pykka_timeout(runtime: RuntimeLoop) -> None:
    fut: LoopFuture[Any] = LoopFuture()
    with pytest.raises(pykka.Timeout):
        fut.get(timeout=0.01)
    fut.set(7)
    assert fut.get(timeout=0) == 7
    with pytest.raises(Exception):  # a future is settled once (pykka raises queue.Full)
        fut.set(8)


async def test_await_on_the_runtime_loop_does_not_block_it() -> None:
    """On an attached loop: no thread is started; awaiting an ask lets other tasks run."""
    threads_before = threading.active_count()
    runtime = RuntimeLoop.attach()
    assert runtime is not None and not runtime.owns_thread
    log: list[Any] = []
    ref = Echo.start(runtime, log)
    assert log == ["started"]  # started on the loop: on_start ran at once
    ticks: list[int] = []

    async def ticker() -> None:
        for i in range(3):
            ticks.append(i)
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    answer = await ref.ask("hi", block=False)
    assert answer == ("echo", "hi")
    await task
    assert ticks == [0, 1, 2]
    with pytest.raises(ValueError):
        await ref.ask("boom", block=False)
    assert threading.active_count() == threads_before
    assert await ref.stop(block=False) is True  # a derived (get-hook) future: computed off the loop


async def test_await_from_another_loop_is_woken_threadsafe(runtime: RuntimeLoop) -> None:
    ref = Echo.start(runtime)
    assert await ref.ask("x", block=False) == ("echo", "x")
    assert await ref.stop(block=False) is True


def test_a_closed_loop_refuses_messages_as_a_dead_actor() -> None:
    rt = RuntimeLoop.start()
    ref = Echo.start(rt)
    assert ref.ask("up", timeout=5) == ("echo", "up")
    rt.close()
    fut = ref.ask("down", block=False)
    with pytest.raises(pykka.ActorDeadError):
        fut.get(timeout=5)


async def test_send_now_handles_at_once_on_the_loop_but_never_reenters_a_handler() -> None:
    runtime = RuntimeLoop.attach()
    assert runtime is not None
    order: list[Any] = []

    class Parent(LoopActor):
        def on_receive(self, message: Any) -> Any:
            order.append(("in", message))
            if message == "nested":
                self.send_now("from inside")  # inside its own handler: queued, not re-entered
                order.append(("out", message))
            return None

    parent = Parent.spawn(runtime)
    parent.send_now("direct")
    assert order == [("in", "direct")]  # handled before send_now returned
    parent.send_now("nested")
    assert order[-2:] == [("in", "nested"), ("out", "nested")]
    await asyncio.sleep(0.01)
    assert order[-1] == ("in", "from inside")
    await parent.actor_ref.stop(block=False)
    with pytest.raises(pykka.ActorDeadError):
        parent.send_now("dead")


def test_send_now_from_another_thread_is_a_tell(runtime: RuntimeLoop) -> None:
    log: list[Any] = []
    actor = Echo.spawn(runtime, log)
    actor.send_now("x")
    assert actor.actor_ref.ask("threads", timeout=5) == {runtime.thread_id}
    assert log == ["started", "x"]
    actor.actor_ref.stop()
