"""Start and stop a real local Ray cluster (head + worker raylets) for benchmarks and tests.

Each node is a ``ray start --block`` child in its own session, with its own short temp dir and free
loopback ports, so clusters never collide with each other or with ``/tmp/ray``. Stopping signals only
the process groups started here (never ``ray stop``, which would kill every Ray on the machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from ray.core.generated import autoscaler_pb2, autoscaler_pb2_grpc

RAY = str(Path(sys.executable).with_name("ray"))


@dataclass(frozen=True, slots=True)
class NodeSpec:
    instance_id: str  # RAY_CLOUD_INSTANCE_ID: the pod name
    node_type: str  # RAY_NODE_TYPE_NAME: the worker group
    num_cpus: float = 1
    memory: int | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Driver:
    process: subprocess.Popen[str]
    output: list[str]  # what it printed up to READY


T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout_s: float = 20.0, every_s: float = 0.25
) -> T:
    """Poll ``probe`` until ``ok`` holds; return the last value either way (the caller asserts on it)."""
    deadline = time.monotonic() + timeout_s
    value = await probe()
    while not ok(value) and time.monotonic() < deadline:
        await asyncio.sleep(every_s)
        value = await probe()
    return value


def _pids_mentioning(text: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    out.append(int(entry.name))
    return out


class LocalRayCluster:
    """A head and workers on 127.0.0.1. Use as a context manager; ``stop()`` is idempotent."""

    def __init__(
        self,
        head: NodeSpec,
        workers: tuple[NodeSpec, ...] = (),
        *,
        env: Mapping[str, str] | None = None,
        object_store_bytes: int = 80 * 1024 * 1024,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.head, self.workers = head, workers
        self.root = Path(tempfile.mkdtemp(prefix="rva", dir="/tmp"))  # short: Ray's socket paths are long
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.object_store_bytes = object_store_bytes
        self.startup_timeout_s = startup_timeout_s
        self.env = self._base_env(env or {})
        self._procs: list[subprocess.Popen[bytes]] = []

    def _base_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        home = self.root / "home"
        home.mkdir()
        env.update(
            HOME=str(home),  # Ray writes ~/.ray/auth_token; keep the real home out of it
            RAY_USAGE_STATS_ENABLED="0",
            RAY_AUTH_MODE="disabled",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    # Lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> LocalRayCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._spawn(self.head, head=True)
        self._wait_for_port()  # workers can join as soon as the GCS listens
        for spec in self.workers:
            self._spawn(spec, head=False)
        self.wait_for_nodes({s.instance_id for s in (self.head, *self.workers)})

    def _spawn(self, spec: NodeSpec, *, head: bool) -> None:
        tmp = self.root / spec.instance_id[-6:]
        tmp.mkdir()
        args = [
            RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--temp-dir={tmp}",
            f"--num-cpus={spec.num_cpus}", f"--object-store-memory={self.object_store_bytes}",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
            "--disable-usage-stats", "--log-style=record", "--include-log-monitor=false",
        ]  # fmt: skip
        if head:
            args += [f"--port={self.port}", "--head", "--include-dashboard=false",
                     f"--ray-client-server-port={free_port()}"]  # fmt: skip
        else:
            args += [f"--address={self.address}"]
        if spec.memory is not None:
            args.append(f"--memory={spec.memory}")
        if spec.resources:
            args.append(f"--resources={json.dumps(dict(spec.resources))}")
        if spec.labels:
            args.append("--labels=" + ",".join(f"{k}={v}" for k, v in spec.labels.items()))
        env = dict(self.env, RAY_NODE_TYPE_NAME=spec.node_type, RAY_CLOUD_INSTANCE_ID=spec.instance_id)
        env.update(spec.env)
        log = open(tmp / "ray-start.log", "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._procs.append(proc)

    def stop(self) -> None:
        """SIGKILL every node's process group, then any process that still names this cluster's temp
        dir (a worker that left the group). A graceful ``ray start`` shutdown takes ~15 s; tests throw
        the cluster away, so there is nothing to be graceful for."""
        for proc in reversed(self._procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()
        for pid in _pids_mentioning(str(self.root)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    # Helpers ----------------------------------------------------------------------------------
    def state(self, timeout_s: float = 2.0) -> autoscaler_pb2.ClusterResourceState:
        """A synchronous read, for setup code (tests read through the code under test)."""
        metadata = [("authorization", f"Bearer {self.env['RAY_AUTH_TOKEN']}")] if "RAY_AUTH_TOKEN" in self.env else []
        with grpc.insecure_channel(self.address) as channel:
            stub = autoscaler_pb2_grpc.AutoscalerStateServiceStub(channel)
            reply = stub.GetClusterResourceState(
                autoscaler_pb2.GetClusterResourceStateRequest(), timeout=timeout_s, metadata=metadata
            )
        return reply.cluster_resource_state

    def node_ids(self) -> dict[str, str]:
        """instance id → node id hex of live raylets."""
        return {n.instance_id: n.node_id.hex() for n in self.state().node_states if n.status != 2}

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the Ray head did not listen on {self.address}; logs in {self.root}")

    def _check_alive(self) -> None:
        for proc in self._procs:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}; logs in {self.root}")

    def wait_for_nodes(self, instance_ids: set[str]) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            self._check_alive()
            with contextlib.suppress(grpc.RpcError):
                if instance_ids <= set(self.node_ids()):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Ray nodes {sorted(instance_ids)} did not register; logs in {self.root}")
            time.sleep(0.2)

    @contextlib.contextmanager
    def driver(self, script: str, *, ready_timeout_s: float = 60.0) -> Iterator[Driver]:
        """Run a Python driver connected to this cluster until the block exits. ``script`` sees
        ``ADDRESS``, must print ``READY`` once its work is submitted, then keep running."""
        code = f"ADDRESS = {self.address!r}\n" + script
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        try:
            lines: list[str] = []
            deadline = time.monotonic() + ready_timeout_s
            assert proc.stdout is not None
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("driver exited before READY:\n" + "".join(lines))
                lines.append(line)
                if line.strip() == "READY":
                    break
            else:
                raise TimeoutError("driver not READY:\n" + "".join(lines))
            # Keep draining so a chatty driver never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            yield Driver(proc, lines)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
