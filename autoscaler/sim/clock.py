"""Clocks for the simulator: every timer in the sim goes through one of these.

``RealClock`` follows wall time on the running asyncio loop (demo, e2e). ``VirtualClock`` keeps its own
time and timer heap and jumps straight to the next timer once every asyncio task is idle, so a simulated
hour passes in as long as the work in it takes. Timers at the same instant fire in the order they were
scheduled, which makes virtual runs deterministic.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

__all__ = ["Clock", "RealClock", "TimerHandle", "VirtualClock"]


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (virtual or real)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, delay: float, fn: Callable[[], Any]) -> TimerHandle: ...


class RealClock:
    """Wall time; timers are asyncio loop timers (needs a running loop when scheduling)."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def call_later(self, delay: float, fn: Callable[[], Any]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), fn)


class _VirtualTimer:
    __slots__ = ("cancelled", "fn", "seq", "when")

    def __init__(self, when: float, seq: int, fn: Callable[[], Any]) -> None:
        self.when = when
        self.seq = seq
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """Virtual time that advances only when told to (``advance``/``run_until``) or while driving a
    coroutine (``run``), always to the next due timer, after letting every ready asyncio task run."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        # (when, seq, timer): tuples order in C, and seq is unique, so timers never compare themselves
        self._heap: list[tuple[float, int, _VirtualTimer]] = []
        self._seq = itertools.count()
        self.timers_fired = 0

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, fn: Callable[[], Any]) -> _VirtualTimer:
        timer = _VirtualTimer(self._now + max(0.0, delay), next(self._seq), fn)
        heapq.heappush(self._heap, (timer.when, timer.seq, timer))
        return timer

    def call_at(self, when: float, fn: Callable[[], Any]) -> _VirtualTimer:
        return self.call_later(when - self._now, fn)

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await fut
        finally:
            timer.cancel()

    def next_due(self) -> float | None:
        """When the next live timer fires, or None."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire_due(self, until: float) -> int:
        """Fire every timer due at or before ``until`` without yielding to asyncio (pure callbacks)."""
        fired = 0
        while True:
            due = self.next_due()
            if due is None or due > until:
                break
            timer = heapq.heappop(self._heap)[2]
            self._now = max(self._now, timer.when)
            timer.fn()
            fired += 1
        self.timers_fired += fired
        return fired

    async def settle(self, max_rounds: int = 10_000) -> None:
        """Yield until no asyncio callback is ready (every task waits on a timer, future or I/O)."""
        loop = asyncio.get_running_loop()
        for _ in range(max_rounds):
            await asyncio.sleep(0)
            # CPython's loop keeps ready callbacks in ``_ready``; other loops just get a few yields.
            ready = getattr(loop, "_ready", None)
            if ready is not None and not ready:
                return

    async def _quiesce(self, io_grace: float) -> None:
        await self.settle()
        if io_grace > 0:
            # Idle tasks may be waiting on real sockets (HTTP to the simulated API server): give the
            # loopback a moment before time jumps, so requests in flight land at the instant they were sent.
            await asyncio.sleep(io_grace)
            await self.settle()

    async def run_until(self, when: float, io_grace: float = 0.0) -> None:
        """Advance to ``when``, firing timers in order and letting tasks react after each instant."""
        await self._quiesce(io_grace)
        while True:
            due = self.next_due()
            if due is None or due > when:
                break
            self.fire_due(due)
            await self._quiesce(io_grace)
        self._now = max(self._now, when)
        await self.settle()

    async def advance(self, seconds: float, io_grace: float = 0.0) -> None:
        await self.run_until(self._now + seconds, io_grace)

    async def run(
        self, main: Awaitable[T], *, limit: float | None = None, io_wait: float = 0.001, io_grace: float = 0.0
    ) -> T:
        """Drive ``main`` to completion, jumping virtual time to the next timer whenever all tasks are
        idle (after ``io_grace`` real seconds, when tasks talk over real sockets). With no timer left the
        loop waits ``io_wait`` real seconds for I/O. ``limit`` caps the virtual seconds (``TimeoutError``)."""
        task = asyncio.ensure_future(main)
        deadline = None if limit is None else self._now + limit
        try:
            while not task.done():
                await self._quiesce(io_grace)
                if task.done():
                    break
                due = self.next_due()
                if due is None:
                    await asyncio.wait({task}, timeout=io_wait)
                    continue
                if deadline is not None and due > deadline:
                    self._now = deadline
                    raise TimeoutError(f"virtual time limit of {limit} s reached")
                self.fire_due(due)
            return task.result()
        finally:
            if not task.done():
                task.cancel()
