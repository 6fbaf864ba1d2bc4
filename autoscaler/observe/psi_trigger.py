"""PSI triggers: let the kernel wake the agent when a cgroup stalls, instead of waiting for the next tick.

Protocol (Documentation/accounting/psi.rst): open ``memory.pressure`` with O_RDWR|O_NONBLOCK, write
``"some <stall µs> <window µs>"``, then wait for POLLPRI. Without CAP_SYS_RESOURCE the window must be a
multiple of 2 s (1 s gives EINVAL). asyncio's ``add_reader`` waits for POLLIN, which a PSI file never
reports, so the file sits in a private epoll set and asyncio watches that epoll fd (readable whenever
one of its members has an event).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import select
from collections.abc import Callable

log = logging.getLogger(__name__)

_SPEC = re.compile(r"^(some|full) (\d+) (\d+)$")


class TriggerError(OSError):
    """The kernel (or a read-only mount) refused the trigger; the agent falls back to interval sampling."""


def parse_spec(spec: str) -> tuple[str, int, int]:
    """``"some 150000 2000000"`` → ("some", stall µs, window µs), checked like the kernel does."""
    m = _SPEC.match(spec.strip())
    if m is None:
        raise ValueError(f"PSI trigger must be 'some|full <stall_us> <window_us>', got {spec!r}")
    kind, stall, window = m.group(1), int(m.group(2)), int(m.group(3))
    if not 500_000 <= window <= 10_000_000:
        raise ValueError("PSI trigger window must be between 500000 and 10000000 µs")
    if not 0 < stall <= window:
        raise ValueError("PSI trigger stall must be > 0 and ≤ the window")
    return kind, stall, window


class PsiTrigger:
    """One armed trigger. ``on_event`` runs in the event loop each time the kernel signals a stall."""

    def __init__(self, path: str, spec: str, on_event: Callable[[], None]) -> None:
        parse_spec(spec)
        self.path = path
        self.spec = spec
        self.events = 0
        self._on_event = on_event
        self._fd = -1
        self._epoll: select.epoll | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Raises TriggerError (EINVAL for a bad window, EROFS/EACCES on a read-only mount, ENOENT…)."""
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            os.write(self._fd, self.spec.encode() + b"\0")
            self._epoll = select.epoll()
            self._epoll.register(self._fd, select.EPOLLPRI)
        except OSError as e:
            self.close()
            raise TriggerError(e.errno, f"cannot arm PSI trigger {self.spec!r} on {self.path}: {e.strerror}") from e
        self._loop = loop
        loop.add_reader(self._epoll.fileno(), self._ready)

    def _ready(self) -> None:
        assert self._epoll is not None
        # Polling a PSI file consumes its event, and asyncio's check of our epoll fd already polled it:
        # so the set being readable is the event, even when this drain finds nothing left.
        for _, mask in self._epoll.poll(0):
            if mask & (select.EPOLLERR | select.EPOLLHUP):  # the cgroup went away
                log.warning("PSI trigger on %s closed by the kernel (cgroup removed?)", self.path)
                self.close()
                return
        self.events += 1
        self._on_event()

    @property
    def armed(self) -> bool:
        return self._fd >= 0

    def close(self) -> None:
        if self._loop is not None and self._epoll is not None:
            self._loop.remove_reader(self._epoll.fileno())
        self._loop = None
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
