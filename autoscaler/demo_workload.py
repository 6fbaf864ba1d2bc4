"""The demo's Ray workload: one long-lived driver that submits tasks when asked and reports on them.

The demo asks for a task by dropping a JSON file into ``<dir>/submit/``; the driver (a real Ray
driver connected to the local head) submits it with the requested ``num_cpus``/``num_gpus``/
``label_selector``/``fallback_strategy``. The task, once Ray has placed it on a raylet, writes
``<dir>/<name>.started`` with its node id and start time (that is how the demo knows *where* it ran),
optionally touches ``alloc_mb`` of real memory, and holds until ``<dir>/<name>.release`` exists (or
``hold_max`` passes). The driver prints one JSON line per finished task. One driver for the whole demo
saves a ``ray.init`` per phase on a small machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

DRIVER = r"""
import json, os, sys, time
import ray

root = os.environ["RVA_DEMO_DIR"]
ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, include_dashboard=False)


@ray.remote(max_retries=0)
def work(name, root, alloc_mb, hold_max):
    import json, os, time
    import ray
    started = time.time()
    buf = bytearray(alloc_mb * 2**20) if alloc_mb else b""  # a real working set, touched
    for i in range(0, len(buf), 4096):
        buf[i] = 1
    rec = {"name": name, "started": started, "node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}
    tmp = os.path.join(root, name + ".started.tmp")
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.replace(tmp, os.path.join(root, name + ".started"))
    release = os.path.join(root, name + ".release")
    while not os.path.exists(release) and time.time() - started < hold_max:
        time.sleep(0.1)
    return {"name": name, "started": started, "node": rec["node"], "finished": time.time(), "bytes": len(buf)}


print(json.dumps({"ready": time.time()}), flush=True)
inbox = os.path.join(root, "submit")
pending = {}
seen = set()
while True:
    for fn in sorted(os.listdir(inbox)):
        if fn in seen or not fn.endswith(".json"):
            continue
        seen.add(fn)
        with open(os.path.join(inbox, fn)) as f:
            req = json.load(f)
        if req.get("stop"):
            sys.exit(0)
        opts = dict(req.get("options") or {})
        ref = work.options(num_cpus=req["cpus"], num_gpus=req.get("gpus", 0), **opts).remote(
            req["name"], root, int(req.get("alloc_mb", 0)), float(req.get("hold_max", 600)))
        pending[ref] = req["name"]
        print(json.dumps({"name": req["name"], "submitted": time.time()}), flush=True)
    if pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=0.1)
        for ref in done:
            name = pending.pop(ref)
            try:
                print(json.dumps(ray.get(ref)), flush=True)
            except Exception as e:
                print(json.dumps({"name": name, "error": f"{type(e).__name__}: {e}"[:500]}), flush=True)
    else:
        time.sleep(0.1)
"""


class Workload:
    """Talks to the driver through files; ``on_line`` gets every JSON line the driver prints."""

    def __init__(self, root: Path, on_line: Callable[[dict[str, Any]], None]) -> None:
        self.root = root
        (root / "submit").mkdir(parents=True, exist_ok=True)
        self.on_line = on_line
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = asyncio.Event()
        self.stderr_tail: list[str] = []
        self._seq = 0
        self._readers: list[asyncio.Task[None]] = []

    def attach(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._readers = [asyncio.create_task(self._read_stdout()), asyncio.create_task(self._read_stderr())]

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if not line.startswith("{"):
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "ready" in msg:
                self.ready.set()
            else:
                self.on_line(msg)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.stderr_tail = [*self.stderr_tail[-40:], raw.decode(errors="replace").rstrip()]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def submit(self, name: str, cpus: float, *, gpus: float = 0, options: dict[str, Any] | None = None,
               alloc_mb: int = 0, hold_max: float = 600.0) -> None:
        self._seq += 1
        body = {"name": name, "cpus": cpus, "gpus": gpus, "options": options or {}, "alloc_mb": alloc_mb,
                "hold_max": hold_max}
        self._drop(f"{self._seq:04d}-{name}.json", body)

    def started(self, name: str) -> dict[str, Any] | None:
        path = self.root / f"{name}.started"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return None

    def release(self, name: str) -> None:
        (self.root / f"{name}.release").touch()

    async def stop(self, timeout: float = 5.0) -> None:
        if self.alive():
            self._seq += 1
            self._drop(f"{self._seq:04d}-stop.json", {"stop": True})
            assert self.proc is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), timeout)
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        for t in self._readers:
            t.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def _drop(self, name: str, body: dict[str, Any]) -> None:
        tmp = self.root / "submit" / (name + ".tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, self.root / "submit" / name)
