"""``rva trace record -- python workload.py [args]``: run a workload on a local Ray this command starts
and write what it submitted as a trace (``docs/traces.md``).

The Ray head runs on loopback in its own temp dir with usage stats off and is stopped afterwards (its
process group; nothing else is touched). The workload gets ``RAY_ADDRESS`` so a plain ``ray.init()``
joins it. Tasks are read back through Ray's state API (``ray.util.state.list_tasks`` with details:
creation/start/end times, required resources, label selectors, fallbacks):

* a normal task → ``task`` (submitted at its creation time, lasting from start to end);
* an actor creation task → ``actor`` holding its resources from its start until its last method ends;
* actor method calls and the driver are not separate submissions (they use the actor's resources).

``rva trace show FILE`` prints a summary of a trace and checks its format.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autoscaler.sim.traces import TaskSpec, Trace, TraceFormatError

_SKIP_RESOURCES = ("node:", "accelerator_type:")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Selector keys that pin work to the recording machine's Ray node ids; meaningless on replay.
_RECORDING_ONLY_LABELS = ("ray.io/node-id",)


def _selector(raw: Any) -> dict[str, str]:
    """A state-API label selector (``{"key": "value"}`` or ``{"key": "in(a,b)"}``) as trace selector."""
    if not raw or not isinstance(raw, Mapping):
        return {}
    return {str(k): str(v) for k, v in raw.items() if k not in _RECORDING_ONLY_LABELS}


def _fallbacks(raw: Any) -> tuple[dict[str, str], ...]:
    if not raw:
        return ()
    items = raw.get("options") if isinstance(raw, Mapping) else raw
    out = []
    for item in items or ():
        sel = item.get("label_selector", item) if isinstance(item, Mapping) else None
        if isinstance(sel, Mapping):
            out.append(_selector(sel))
    return tuple(out)


def _resources(raw: Mapping[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (raw or {}).items() if not k.startswith(_SKIP_RESOURCES)}


def tasks_to_trace(tasks: Iterable[Mapping[str, Any]], meta: Mapping[str, Any] | None = None) -> Trace:
    """State-API task records (dicts) → a trace. Times are relative to the first submission."""
    rows = [t for t in tasks if t.get("type") in ("NORMAL_TASK", "ACTOR_CREATION_TASK", "ACTOR_TASK")]
    # Only the last attempt of a retried task counts.
    latest: dict[str, Mapping[str, Any]] = {}
    for t in rows:
        key = str(t.get("task_id"))
        if key not in latest or int(t.get("attempt_number") or 0) >= int(latest[key].get("attempt_number") or 0):
            latest[key] = t
    actor_end: dict[str, int] = {}
    for t in latest.values():
        if t.get("actor_id") and t.get("end_time_ms"):
            actor_end[t["actor_id"]] = max(actor_end.get(t["actor_id"], 0), int(t["end_time_ms"]))
    submits = [int(t["creation_time_ms"]) for t in latest.values()
               if t.get("type") != "ACTOR_TASK" and t.get("creation_time_ms")]
    if not submits:
        return Trace((), dict(meta or {}))
    t0 = min(submits)
    last_end = max((int(t.get("end_time_ms") or 0) for t in latest.values()), default=0)
    specs = []
    for t in latest.values():
        kind = t.get("type")
        start, end, created = t.get("start_time_ms"), t.get("end_time_ms"), t.get("creation_time_ms")
        if kind == "ACTOR_TASK" or not created:
            continue
        start = start or created  # the RUNNING event can be missing from a finished task's record
        if kind == "ACTOR_CREATION_TASK":
            # An actor lives until its last method ended; one still alive at the end lasts until the workload ended.
            end = max(int(end or 0), actor_end.get(str(t.get("actor_id")), 0)) or last_end
        if not end or end < start:
            continue
        specs.append(TaskSpec(
            submit_at=round((int(created) - t0) / 1000, 3),
            resources=_resources(t.get("required_resources")),
            duration=round(max(int(end) - int(start), 1) / 1000, 3),
            label_selector=_selector(t.get("label_selector")),
            fallbacks=_fallbacks(t.get("fallback_strategy")),
            name=str(t.get("func_or_class_name") or t.get("name") or ""),
            kind="actor" if kind == "ACTOR_CREATION_TASK" else "task",
        ))
    return Trace.of(specs, meta)


class LocalRayHead:
    """A Ray head on loopback in its own temp dir (usage stats off); ``stop()`` ends its process group."""

    def __init__(self, num_cpus: int | None = None, object_store_memory: int = 512 * 2**20) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rvatr", dir="/tmp"))
        self.port = _free_port()
        self.dashboard_port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.num_cpus = num_cpus or os.cpu_count() or 2
        self.object_store_memory = object_store_memory
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self.env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1",
                        RAY_MAX_LIMIT_FROM_API_SERVER="200000")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        ray_bin = str(Path(sys.executable).with_name("ray"))
        args = [
            ray_bin, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={self.port}",
            f"--temp-dir={self.root}", f"--num-cpus={self.num_cpus}",
            f"--object-store-memory={self.object_store_memory}", "--include-dashboard=true",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={_free_port()}", f"--node-manager-port={_free_port()}",
            f"--object-manager-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}", "--disable-usage-stats",
        ]
        log = open(self.root / "ray-start.log", "ab")  # noqa: SIM115 — closed with the process
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray head exited with {self.proc.returncode}; see {self.root}/ray-start.log")
            if self._listening(self.port) and self._listening(self.dashboard_port):
                return
            time.sleep(0.2)
        raise TimeoutError(f"Ray head did not come up in {timeout:.0f} s; see {self.root}/ray-start.log")

    @staticmethod
    def _listening(port: int) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        return False

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def list_tasks(self, limit: int = 100_000) -> list[dict[str, Any]]:
        from ray.util.state import list_tasks

        out = list_tasks(address=self.dashboard, detail=True, limit=limit, raise_on_missing_output=False,
                         timeout=120)
        return [dict(t) if isinstance(t, Mapping) else dict(t.__dict__) for t in out]

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            self.proc = None
        # Workers that left the head's process group still carry our temp dir on their command line.
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if str(self.root).encode() in (entry / "cmdline").read_bytes():
                        os.kill(int(entry.name), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def record(
    command: Sequence[str], out: str | Path, *, num_cpus: int | None = None, name: str = "",
    description: str = "", settle_s: float = 2.0, object_store_memory: int = 512 * 2**20,
) -> tuple[Trace, int]:
    """Run ``command`` against a fresh local Ray, write the trace to ``out``; (trace, workload exit code)."""
    head = LocalRayHead(num_cpus=num_cpus, object_store_memory=object_store_memory)
    try:
        head.start()
        env = dict(head.env, RAY_ADDRESS=head.address)
        started = time.time()
        rc = subprocess.call(list(command), env=env)
        wall = time.time() - started
        # Task events reach the GCS about once a second: read until two reads agree.
        time.sleep(settle_s)
        tasks = head.list_tasks()
        for _ in range(10):
            time.sleep(settle_s)
            again = head.list_tasks()
            if _fingerprint(again) == _fingerprint(tasks):
                break
            tasks = again
    finally:
        head.stop()
    meta = {
        "name": name or Path(str(out)).stem,
        "description": description,
        "recorded_with": "rva trace record (ray.util.state.list_tasks)",
        "command": " ".join(command),
        "ray_cpus": head.num_cpus,
        "wall_seconds": round(wall, 2),
    }
    trace = tasks_to_trace(tasks, meta)
    trace.write_jsonl(out)
    return trace, rc


def _fingerprint(tasks: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    return len(tasks), sum(1 for t in tasks if t.get("end_time_ms"))


def summary(trace: Trace) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for t in trace:
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    return {
        "name": trace.meta.get("name", ""),
        "submissions": len(trace),
        "by_kind": kinds,
        "span_seconds": round(trace.duration, 3),
        "cpu_seconds": round(trace.cpu_seconds(), 3),
        "peak_task_cpu": max((t.resources.get("CPU", 0.0) for t in trace), default=0.0),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="trace_command", metavar="SUBCOMMAND")
    rec = sub.add_parser("record", help="run a workload on a fresh local Ray and write its trace",
                         description="rva trace record [-o FILE] -- python workload.py [args]")
    rec.add_argument("-o", "--output", default="trace.jsonl", help="trace file to write (default trace.jsonl)")
    rec.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray head (default: all)")
    rec.add_argument("--object-store-memory", default="512Mi", help="object store of the local Ray (default 512Mi)")
    rec.add_argument("--name", default="", help="trace name in the header (default: the file's stem)")
    rec.add_argument("--description", default="")
    rec.add_argument("--json", action="store_true", help="print the summary as JSON")
    rec.add_argument("workload", nargs=argparse.REMAINDER, help="-- command to run (e.g. python workload.py)")
    show = sub.add_parser("show", help="check a trace file and print its summary")
    show.add_argument("file")
    show.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    if args.trace_command == "show":
        try:
            trace = Trace.read_jsonl(args.file)
        except TraceFormatError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        _print(summary(trace), args.json)
        return 0
    if args.trace_command != "record":
        print("usage: rva trace record [-o FILE] -- python workload.py [args] | rva trace show FILE", file=sys.stderr)
        return 2
    command = list(args.workload)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("error: give the workload after --, e.g. rva trace record -- python workload.py", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in record()'s finally
    from autoscaler.quantity import to_bytes

    trace, rc = record(command, args.output, num_cpus=args.num_cpus, name=args.name, description=args.description,
                       object_store_memory=to_bytes(args.object_store_memory))
    info = dict(summary(trace), output=str(args.output), workload_exit_code=rc)
    _print(info, args.json)
    return 0 if rc == 0 else rc


def _print(info: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=1))
        return
    for k, v in info.items():
        print(f"{k:>18}: {v}")
