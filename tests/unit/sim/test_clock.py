"""Virtual and real clocks."""

from __future__ import annotations

import asyncio
import time

import pytest

from autoscaler.sim.clock import RealClock, VirtualClock


async def test_timers_fire_in_time_then_schedule_order() -> None:
    clock = VirtualClock(start=1000.0)
    fired: list[tuple[float, str]] = []
    clock.call_later(5, lambda: fired.append((clock.now(), "b")))
    clock.call_later(1, lambda: fired.append((clock.now(), "a")))
    clock.call_later(5, lambda: fired.append((clock.now(), "c")))
    cancelled = clock.call_later(2, lambda: fired.append((clock.now(), "x")))
    cancelled.cancel()
    await clock.advance(4)
    assert fired == [(1001.0, "a")]
    assert clock.now() == 1004.0
    await clock.advance(10)
    assert fired == [(1001.0, "a"), (1005.0, "b"), (1005.0, "c")]
    assert clock.now() == 1014.0


async def test_sleeping_tasks_wake_in_virtual_time_without_waiting() -> None:
    clock = VirtualClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    wall = time.monotonic()
    tasks = [asyncio.create_task(sleeper("slow", 3600)), asyncio.create_task(sleeper("fast", 60))]
    await clock.advance(7200)
    assert time.monotonic() - wall < 1.0
    assert woke == [("fast", 60.0), ("fast", 120.0), ("slow", 3600.0), ("slow", 7200.0)]
    await asyncio.gather(*tasks)


async def test_run_drives_a_coroutine_to_completion() -> None:
    clock = VirtualClock(start=0.0)
    seen: list[float] = []

    async def main() -> str:
        for _ in range(3):
            await clock.sleep(30)
            seen.append(clock.now())
        return "done"

    assert await clock.run(main()) == "done"
    assert seen == [30.0, 60.0, 90.0]


async def test_run_with_limit_raises_timeout() -> None:
    clock = VirtualClock(start=0.0)

    async def forever() -> None:
        while True:
            await clock.sleep(10)

    with pytest.raises(TimeoutError):
        await clock.run(forever(), limit=100)
    assert clock.now() == 100.0


async def test_callbacks_scheduled_by_callbacks_run_at_the_same_instant() -> None:
    clock = VirtualClock(start=0.0)
    order: list[str] = []

    def first() -> None:
        order.append("first")
        clock.call_later(0, lambda: order.append("chained"))

    clock.call_later(1, first)
    clock.call_later(1, lambda: order.append("second"))
    await clock.advance(1)
    assert order == ["first", "second", "chained"]


async def test_real_clock() -> None:
    clock = RealClock()
    assert abs(clock.now() - time.time()) < 1
    fired = asyncio.Event()
    clock.call_later(0.01, fired.set)
    await asyncio.wait_for(fired.wait(), 1)
    t = time.monotonic()
    await clock.sleep(0.02)
    assert time.monotonic() - t >= 0.015


async def test_io_grace_lets_socket_io_finish_before_time_jumps() -> None:
    clock = VirtualClock(start=0.0)
    got: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        await reader.readline()
        got.append(clock.now())
        writer.close()

    clock.call_later(600, lambda: None)  # a far timer that must not be jumped to mid-request
    task = asyncio.create_task(client())
    await clock.advance(600, io_grace=0.2)
    await task
    server.close()
    assert got == [0.0]
