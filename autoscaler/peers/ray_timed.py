"""Run Ray's scheduler in a child process that is killed after a time limit.

Ray's v2 scheduler takes minutes at 1,000 nodes, so callers that must not block (the benchmark,
the simulator) run it here. The child (``python -m autoscaler.peers.ray_timed``) reads a pickled
job on stdin and writes one line per event on stdout; the limit is counted from the moment the
child starts ``schedule()`` (not from interpreter start-up), so a killed run is an honest lower
bound on Ray's time.
"""

from __future__ import annotations

import base64
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO

from autoscaler.model import Snapshot
from autoscaler.peers.ray_request import IPPRSettings, build_request
from autoscaler.peers.ray_scheduler import RaySchedule, learn_from_kubelet, read_reply


@dataclass(frozen=True, slots=True)
class TimedRayRun:
    """Completed runs' times; when the limit hit, ``timed_out`` and ``lower_bound_s`` say so."""

    seconds: tuple[float, ...]
    timed_out: bool
    lower_bound_s: float | None
    result: RaySchedule | None  # from the last completed run

    @property
    def median_s(self) -> float | None:
        if not self.seconds:
            return None
        ordered = sorted(self.seconds)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


class RayRunError(RuntimeError):
    """The child failed (not a timeout); carries the tail of its stderr."""


def run_with_time_limit(
    snapshot: Snapshot,
    ippr: IPPRSettings | None = None,
    *,
    repeats: int = 1,
    limit_s: float = 60.0,
    now: float | None = None,
) -> TimedRayRun:
    """Schedule ``repeats`` times in a child; kill it when one run exceeds ``limit_s`` seconds."""
    job = pickle.dumps((snapshot, ippr, repeats, now), protocol=pickle.HIGHEST_PROTOCOL)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoscaler.peers.ray_timed"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        lines: queue.Queue[bytes] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc, lines), daemon=True)
        reader.start()
        try:
            assert proc.stdin is not None
            proc.stdin.write(job)
            proc.stdin.close()
            return _collect(proc, lines, repeats, limit_s, errors)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _pump(proc: subprocess.Popen[bytes], lines: queue.Queue[bytes]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.put(line)
    lines.put(b"")  # EOF


def _collect(
    proc: subprocess.Popen[bytes], lines: queue.Queue[bytes], repeats: int, limit_s: float, errors: IO[bytes]
) -> TimedRayRun:
    seconds: list[float] = []
    result = None
    deadline: float | None = None
    while len(seconds) < repeats:
        # Before a run starts only start-up time passes (importing Ray); allow it generously.
        wait = 300.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            line = lines.get(timeout=wait)
        except queue.Empty:
            if deadline is None:
                raise RayRunError("Ray scheduler child did not start within 300 s") from None
            proc.kill()
            return TimedRayRun(tuple(seconds), True, limit_s, result)
        if not line:
            raise RayRunError("Ray scheduler child exited early: " + _tail(errors))
        kind, _, payload = line.strip().partition(b" ")
        if kind == b"start":
            deadline = time.monotonic() + limit_s
        elif kind == b"done":
            result = pickle.loads(base64.b64decode(payload))
            seconds.append(result.schedule_s)
            deadline = None
    return TimedRayRun(tuple(seconds), False, None, result)


def _tail(errors: IO[bytes]) -> str:
    errors.seek(0)
    return errors.read()[-2000:].decode(errors="replace")


def _child() -> None:
    from ray.autoscaler.v2.scheduler import ResourceDemandScheduler

    snapshot, ippr, repeats, now = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer

    def once(settings: IPPRSettings | None) -> RaySchedule:
        request, index = build_request(snapshot, settings, now=now)  # fresh: schedule() mutates IPPR state
        out.write(b"start\n")  # the limit counts per scheduling pass
        out.flush()
        started = time.perf_counter()
        reply = ResourceDemandScheduler().schedule(request)
        return read_reply(reply, index, snapshot, time.perf_counter() - started)

    for _ in range(repeats):
        result = learn_from_kubelet(snapshot, ippr, once)
        out.write(b"done " + base64.b64encode(pickle.dumps(result)) + b"\n")
        out.flush()


if __name__ == "__main__":
    _child()
