"""Ray behind the simulated pods: a simulated Ray (trace replay, benchmarks) or real local raylets (demo, e2e).

Both attach to a ``SimCluster`` and follow pod lifecycle through the kubelet's observer hooks: a pod whose
Ray container starts becomes a Ray node, a deleted pod's node goes away, a restarted container (OOM kill,
``RestartContainer``) comes back as a new node with the resources baked into its ``ray start`` command
(``KUBERAY_GEN_RAY_START_CMD``), exactly as KubeRay pods do. An in-place pod resize does not change Ray's
logical resources; ``resize_raylet`` does, with ``ResizeRayletResourceInstances`` semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoscaler.sim.clock import Clock, TimerHandle
from autoscaler.sim.kuberay import parse_ray_start_command, resolve_env
from autoscaler.sim.traces import TaskSpec, Trace

PodKey = tuple[str, str]
_UNIT_RESOURCES = ("GPU", "TPU", "neuron_cores")


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Ray label selector semantics: ``v``, ``!v``, ``in(a,b)``, ``!in(a,b)``; a missing key passes
    only negative constraints."""
    for key, expr in selector.items():
        expr = expr.strip()
        negate = expr.startswith("!")
        body = expr[1:] if negate else expr
        values = [v.strip() for v in body[3:-1].split(",")] if body.startswith("in(") and body.endswith(")") else [body]
        has = key in labels and labels[key] in values
        if has == negate:
            return False
    return True


def start_params(pod: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(``ray start`` flags, resolved env) of a KubeRay pod's Ray container."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    env = resolve_env(pod, containers[0])
    return parse_ray_start_command(env.get("KUBERAY_GEN_RAY_START_CMD", "")), env


def ray_resources(params: Mapping[str, str]) -> dict[str, float]:
    out: dict[str, float] = {"CPU": float(params.get("num-cpus", 0) or 0)}
    if params.get("memory"):
        out["memory"] = float(params["memory"])
    if params.get("num-gpus"):
        out["GPU"] = float(params["num-gpus"])
    if params.get("resources"):
        import json

        out.update({k: float(v) for k, v in json.loads(params["resources"]).items()})
    return out


def ray_labels(params: Mapping[str, str], env: Mapping[str, str], node_id: str) -> dict[str, str]:
    """Ray's default labels (``ray.io/node-id``, ``ray.io/node-group`` from ``RAY_NODE_TYPE_NAME``, …)
    overridden by ``--labels``."""
    labels = {"ray.io/node-id": node_id}
    for env_name, label in (
        ("RAY_NODE_TYPE_NAME", "ray.io/node-group"),
        ("RAY_NODE_MARKET_TYPE", "ray.io/market-type"),
        ("RAY_NODE_ZONE", "ray.io/availability-zone"),
        ("RAY_NODE_REGION", "ray.io/availability-region"),
    ):
        if env.get(env_name):
            labels[label] = env[env_name]
    for pair in filter(None, (params.get("labels") or "").split(",")):
        k, _, v = pair.partition("=")
        labels[k] = v
    return labels


def clamp_resize(
    total: Mapping[str, float], available: Mapping[str, float], target: Mapping[str, float]
) -> dict[str, float]:
    """``ResizeLocalResourceInstances``: target totals; a decrease never takes ``available`` below 0;
    unit-instance resources are rejected; unknown names are created."""
    new = dict(total)
    for name, want in target.items():
        if name in _UNIT_RESOURCES:
            raise ValueError(
                f"Cannot resize unit instance resource '{name}'. Unit instance resources (e.g., GPU) cannot be "
                "resized dynamically."
            )
        cur = total.get(name, 0.0)
        delta = float(want) - cur
        if delta < 0:
            delta = max(delta, -available.get(name, 0.0))
        new[name] = cur + delta
    return new


# -- simulated Ray ----------------------------------------------------------------------------------
@dataclass
class _Task:
    spec: TaskSpec
    queued_at: float
    attempts: int = 0
    node: str = ""
    timer: TimerHandle | None = None


@dataclass
class _RayNode:
    node_id: str
    pod: PodKey
    node_type: str
    total: dict[str, float]
    available: dict[str, float]
    labels: dict[str, str]
    running: dict[int, _Task] = field(default_factory=dict)
    idle_since: float = 0.0
    used_bytes: int = 0  # Σ used_bytes() of the running tasks
    #: bumped on every change of what the GCS reports about the node but its idle time (total, available,
    #: running tasks), so a reader can keep its conversion of an unchanged node (:meth:`SimulatedRay.node_versions`)
    version: int = 0


@dataclass
class RayStats:
    submitted: int = 0
    started: int = 0
    completed: int = 0
    retried: int = 0  # tasks re-queued because their node died (pod deleted, container restarted)
    failed: int = 0  # gave up after max_retries
    queue_seconds: float = 0.0  # summed time from submission to start
    oom_kills: int = 0
    node_restarts: int = 0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class SimulatedRay:
    """Logical Ray nodes for pods, a FIFO task queue per shape fed by a ``Trace``, memory use reported to
    the kubelet (pressure, OOM kills). ``baseline_memory`` models the raylet and idle workers."""

    def __init__(
        self,
        clock: Clock,
        trace: Trace | None = None,
        max_retries: int = 3,
        baseline_memory: int = 256 * 2**20,
        sync_resize: bool = False,
    ) -> None:
        self.clock = clock
        self.trace = trace
        self.max_retries = max_retries
        self.baseline_memory = baseline_memory
        self.sync_resize = sync_resize  # apply pod resizes to Ray at once (when no daemon does it)
        self.stats = RayStats()
        self.cluster: Any = None
        self._nodes: dict[str, _RayNode] = {}  # node id → node
        self._by_pod: dict[PodKey, str] = {}
        self._by_type: dict[str, OrderedDict[str, None]] = {}
        self._queue: OrderedDict[tuple[Any, ...], deque[_Task]] = OrderedDict()
        self._ids = itertools.count(1)
        self._task_ids = itertools.count(1)
        self._timers: list[TimerHandle] = []
        self._dispatch_scheduled = False
        self._usage_dirty: set[str] = set()
        self._free: dict[str, None] = {}
        self._type_cache: dict[tuple[Any, str], bool] = {}
        self._t0 = 0.0
        #: bumped whenever a node is added or removed or its totals change: with it unchanged, only the
        #: nodes' available resources, idle times and RUNNING/IDLE status can differ between two reads
        self.structure_version = 0

    # -- wiring -----------------------------------------------------------------------------------
    async def attach(self, cluster: Any) -> None:
        self.cluster = cluster
        cluster.kubelet.observers.append(self)
        self._t0 = self.clock.now()
        if self.trace is not None:
            self.schedule_trace(self.trace)

    async def close(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()

    def schedule_trace(self, trace: Trace, offset: float = 0.0) -> None:
        """Submit every task of ``trace`` at ``offset + submit_at`` seconds from now (one timer per instant)."""
        batches: dict[float, list[TaskSpec]] = {}
        for t in trace:
            batches.setdefault(t.submit_at, []).append(t)
        for at, specs in batches.items():
            self._timers.append(self.clock.call_later(offset + at, lambda s=specs: self._submit_many(s)))  # type: ignore[misc]

    def submit(self, spec: TaskSpec) -> None:
        self._submit_many([spec])

    def _submit_many(self, specs: list[TaskSpec]) -> None:
        now = self.clock.now()
        for spec in specs:
            self.stats.submitted += 1
            self._enqueue(_Task(spec, now))
        self._kick()

    def _enqueue(self, task: _Task) -> None:
        spec = task.spec
        key = (
            tuple(sorted(spec.resources.items())),
            tuple(sorted(spec.label_selector.items())),
            tuple(tuple(sorted(f.items())) for f in spec.fallbacks),
        )
        self._queue.setdefault(key, deque()).append(task)

    # -- kubelet hooks ----------------------------------------------------------------------------
    def pod_started(self, pod: dict[str, Any]) -> None:
        if not (pod.get("metadata", {}).get("labels") or {}).get("ray.io/cluster"):
            return
        self._add_node(pod)

    def pod_stopped(self, key: PodKey) -> None:
        node_id = self._by_pod.pop(key, None)
        if node_id is not None:
            self._remove_node(node_id)
            self._kick()

    def container_restarted(self, pod: dict[str, Any], container: str, reason: str) -> None:
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        key = (pod["metadata"].get("namespace") or "default", pod["metadata"]["name"])
        if container != containers[0].get("name") or key not in self._by_pod:
            return
        self.stats.node_restarts += 1
        if reason == "OOMKilled":
            self.stats.oom_kills += 1
        self._remove_node(self._by_pod.pop(key))
        self._add_node(pod)  # a new node id with the resources baked into the start command

    def pod_resized(self, pod: dict[str, Any]) -> None:
        if not self.sync_resize:
            return
        key = (pod["metadata"].get("namespace") or "default", pod["metadata"]["name"])
        node_id = self._by_pod.get(key)
        if node_id is None:
            return
        st = ((pod.get("status") or {}).get("containerStatuses") or [{}])[0]
        res = st.get("resources") or {}
        from autoscaler.sim import podres

        lim = podres.parse_list(res.get("limits"))
        req = podres.parse_list(res.get("requests"))
        target = {"CPU": lim.get("cpu", req.get("cpu", 0)) / 1000}
        if "memory" in lim or "memory" in req:
            target["memory"] = float(lim.get("memory", req.get("memory", 0)))
        self.resize_raylet(node_id, target)

    # -- nodes ------------------------------------------------------------------------------------
    def _add_node(self, pod: dict[str, Any]) -> None:
        params, env = start_params(pod)
        key = (pod["metadata"].get("namespace") or "default", pod["metadata"]["name"])
        node_id = f"{next(self._ids):056x}"
        total = ray_resources(params)
        node = _RayNode(
            node_id=node_id,
            pod=key,
            node_type=env.get("RAY_NODE_TYPE_NAME", ""),
            total=total,
            available=dict(total),
            labels=ray_labels(params, env, node_id),
            idle_since=self.clock.now(),
        )
        self._nodes[node_id] = node
        self.structure_version += 1
        self._by_pod[key] = node_id
        self._by_type.setdefault(node.node_type, OrderedDict())[node_id] = None
        self._usage_dirty.add(node_id)
        self._refresh(node)
        self._kick()

    def _remove_node(self, node_id: str) -> None:
        node = self._nodes.pop(node_id, None)
        if node is None:
            return
        self.structure_version += 1
        self._by_type.get(node.node_type, OrderedDict()).pop(node_id, None)
        self._free.pop(node_id, None)
        for task in list(node.running.values()):
            if task.timer:
                task.timer.cancel()
            task.attempts += 1
            task.node = ""
            if task.attempts > self.max_retries:
                self.stats.failed += 1
            else:
                self.stats.retried += 1
                task.queued_at = self.clock.now()
                self._enqueue(task)

    def resize_raylet(self, node_id: str, resources: Mapping[str, float]) -> dict[str, float]:
        """``ResizeRayletResourceInstances``: returns the new totals (decreases clamped to what is free)."""
        node = self._nodes[node_id]
        new_total = clamp_resize(node.total, node.available, resources)
        for name, value in new_total.items():
            node.available[name] = node.available.get(name, 0.0) + value - node.total.get(name, 0.0)
        node.total = new_total
        node.version += 1
        self.structure_version += 1
        self._refresh(node)
        self._kick()
        return dict(new_total)

    def drain_node(self, node_id: str) -> tuple[bool, str]:
        """``DrainNode`` with the idle-termination reason: refused while tasks run; accepted → the raylet
        stops at once (its pod is about to be deleted). Returns (accepted, rejection message)."""
        node = self._nodes.get(node_id)
        if node is None:
            return False, f"node {node_id} is not alive"
        if node.running:
            return False, "The node to be idle terminated is no longer idle."
        self._by_pod.pop(node.pod, None)
        self._remove_node(node_id)
        return True, ""

    def node_id_of(self, namespace: str, pod: str) -> str | None:
        return self._by_pod.get((namespace, pod))

    # -- scheduling -------------------------------------------------------------------------------
    def _kick(self) -> None:
        if not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            self.clock.call_later(0, self._dispatch)

    def _type_ok(self, selector: Mapping[str, str], node: _RayNode) -> bool:
        """Selector check, cached per node type (labels only differ by ``ray.io/node-id`` within a type)."""
        if "ray.io/node-id" in selector:
            return selector_matches(selector, node.labels)
        key = (tuple(sorted(selector.items())), node.node_type)
        ok = self._type_cache.get(key)
        if ok is None:
            ok = self._type_cache[key] = selector_matches(selector, node.labels)
        return ok

    def _refresh(self, node: _RayNode) -> None:
        """Keep ``_free`` (nodes with CPU left) current: with a backlog only those are worth scanning."""
        if node.available.get("CPU", 0.0) > 1e-9 and node.node_id in self._nodes:
            self._free.setdefault(node.node_id, None)
        else:
            self._free.pop(node.node_id, None)

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        now = self.clock.now()
        for key in list(self._queue):
            tasks = self._queue[key]
            spec = tasks[0].spec
            selectors = (spec.label_selector, *spec.fallbacks)
            pool = self._free if spec.resources.get("CPU", 0.0) > 0 else dict.fromkeys(self._nodes)
            while tasks:
                node = None
                for selector in selectors:
                    for node_id in pool:
                        candidate = self._nodes[node_id]
                        if self._type_ok(selector, candidate) and all(
                            candidate.available.get(r, 0.0) >= v for r, v in spec.resources.items()
                        ):
                            node = candidate
                            break
                    if node is not None:
                        break
                if node is None:
                    break
                self._start(tasks.popleft(), node, now)
            if not tasks:
                del self._queue[key]
        self._flush_usage()

    def _start(self, task: _Task, node: _RayNode, now: float) -> None:
        for r, v in task.spec.resources.items():
            node.available[r] = node.available.get(r, 0.0) - v
        tid = next(self._task_ids)
        node.running[tid] = task
        node.used_bytes += task.spec.used_bytes()
        node.version += 1
        task.node = node.node_id
        self.stats.started += 1
        self.stats.queue_seconds += now - task.queued_at
        task.timer = self.clock.call_later(task.spec.duration, lambda: self._finish(node.node_id, tid))
        self._usage_dirty.add(node.node_id)
        self._refresh(node)

    def _finish(self, node_id: str, tid: int) -> None:
        node = self._nodes.get(node_id)
        if node is None:
            return
        task = node.running.pop(tid, None)
        if task is None:
            return
        node.used_bytes -= task.spec.used_bytes()
        for r, v in task.spec.resources.items():
            node.available[r] = node.available.get(r, 0.0) + v
        if not node.running:
            node.idle_since = self.clock.now()
        node.version += 1
        self.stats.completed += 1
        self._usage_dirty.add(node_id)
        self._refresh(node)
        self._kick()

    def _flush_usage(self) -> None:
        """Report each changed node's memory use to the kubelet (may OOM-kill the container)."""
        if self.cluster is None:
            return
        dirty, self._usage_dirty = self._usage_dirty, set()
        for node_id in sorted(dirty):
            node = self._nodes.get(node_id)
            if node is None:
                continue
            self.cluster.kubelet.set_memory_usage(node.pod[0], node.pod[1], self.baseline_memory + node.used_bytes)

    # -- what the GCS would report ----------------------------------------------------------------
    def memory_used(self, namespace: str, pod: str) -> int:
        node = self._nodes.get(self._by_pod.get((namespace, pod), ""))
        if node is None:
            return 0
        return self.baseline_memory + node.used_bytes

    def pending(self) -> int:
        return sum(len(q) for q in self._queue.values())

    def cluster_resource_state(self) -> dict[str, Any]:
        """Plain-dict ``ClusterResourceState``: node states and pending demand aggregated by shape."""
        now = self.clock.now()
        nodes = [self._node_report(n, now) for n in self._nodes.values()]
        return {"node_states": nodes, "pending_resource_requests": self.pending_requests()}

    @staticmethod
    def _node_report(n: _RayNode, now: float) -> dict[str, Any]:
        return {
            "node_id": n.node_id,
            "instance_id": n.pod[1],
            "ray_node_type_name": n.node_type,
            "status": "RUNNING" if n.running else "IDLE",
            "idle_duration_ms": 0 if n.running else int((now - n.idle_since) * 1000),
            "total_resources": dict(n.total),
            "available_resources": {k: v for k, v in n.available.items() if v > 0},
            "labels": dict(n.labels),
        }

    def node_versions(self) -> list[tuple[str, int, int]]:
        """(node id, version, idle duration in ms) of every node, in ``cluster_resource_state()`` order.
        A node's ``cluster_resource_state()`` entry changes only with its version or its idle duration."""
        now = self.clock.now()
        return [(n.node_id, n.version, 0 if n.running else int((now - n.idle_since) * 1000))
                for n in self._nodes.values()]

    def node_report(self, node_id: str) -> dict[str, Any]:
        """One node's ``cluster_resource_state()["node_states"]`` entry."""
        return self._node_report(self._nodes[node_id], self.clock.now())

    def pending_requests(self) -> list[dict[str, Any]]:
        """``cluster_resource_state()["pending_resource_requests"]``: the queue aggregated by shape."""
        return [
            {
                "resources_bundle": dict(q[0].spec.resources),
                "label_selectors": [dict(q[0].spec.label_selector), *(dict(f) for f in q[0].spec.fallbacks)],
                "count": len(q),
            }
            for q in self._queue.values()
        ]


# -- real raylets -----------------------------------------------------------------------------------
def _free_port(avoid: int | None = None) -> int:
    import socket

    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != avoid:
            return port


class RealRayRuntime:
    """A real Ray head on loopback plus one ``ray start --block`` raylet per running worker pod, started
    with the pod's ``ray start`` flags (``--num-cpus``, ``--memory``, ``--labels``, ``--resources``) and env
    (``RAY_CLOUD_INSTANCE_ID``, ``RAY_NODE_TYPE_NAME``), each in its own session and short temp dir, and
    stopped (its process group signalled) when the pod goes away. Never touches a Ray it did not start."""

    def __init__(self, head_cpus: float = 0, object_store_memory: int = 80 * 2**20, stop_grace: float = 5.0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rvart", dir="/tmp"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.head_cpus = head_cpus
        self.object_store_memory = object_store_memory
        self.stop_grace = stop_grace
        self.raylets: dict[PodKey, subprocess.Popen[bytes]] = {}
        self._head: subprocess.Popen[bytes] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        home = self.root / "home"
        home.mkdir()
        self.env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")

    @property
    def ray_bin(self) -> str:
        return str(Path(sys.executable).with_name("ray"))

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        tmp = self.root / name[-8:].strip("-")
        tmp.mkdir(exist_ok=True)
        base = [
            self.ray_bin, "start", "--block", "--node-ip-address=127.0.0.1", f"--temp-dir={tmp}",
            f"--object-store-memory={self.object_store_memory}",
            f"--node-manager-port={_free_port()}", f"--object-manager-port={_free_port()}",
            f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}",
            "--disable-usage-stats", "--log-style=record", "--include-log-monitor=false",
        ]  # fmt: skip
        with open(tmp / "ray-start.log", "ab") as log:
            return subprocess.Popen(
                base + args, env=dict(self.env, **env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    async def attach(self, cluster: Any) -> None:
        self.cluster = cluster
        await self.start_head()
        cluster.kubelet.observers.append(self)

    async def start_head(self, attempts: int = 3) -> None:
        """Start the head and wait until its GCS answers an RPC. The port was only free when it was picked,
        so a head that exits (port taken meanwhile) is restarted on a fresh port."""
        if self._head is not None:
            return
        for attempt in range(attempts):
            if attempt:
                self.port = _free_port()
                self.address = f"127.0.0.1:{self.port}"
            self._head = self._spawn(
                "head",
                [f"--port={self.port}", "--head", "--include-dashboard=false", f"--num-cpus={self.head_cpus}",
                 f"--ray-client-server-port={_free_port(avoid=self.port)}"],
                {"RAY_NODE_TYPE_NAME": "headgroup", "RAY_CLOUD_INSTANCE_ID": "head"},
            )  # fmt: skip
            if await self._wait_gcs_ready(self._head, timeout=60.0):
                return
            self._head = None
        raise RuntimeError(f"the Ray head did not start after {attempts} tries; logs in {self.root}")

    async def _wait_gcs_ready(self, head: subprocess.Popen[bytes], timeout: float) -> bool:
        """True once the GCS lists the head's raylet; False if the head exited first. An open port alone
        is not enough: the GCS serves before the head's raylet registers."""
        from autoscaler.observe.ray_gcs import GcsConnection, RayGcsError, RayGcsReader

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with GcsConnection(self.address, attempts=1, timeout_s=2.0, supported_versions=None) as conn:
            reader = RayGcsReader(conn, check_truncation=False)
            while loop.time() < deadline:
                if head.poll() is not None:
                    return False
                if await loop.run_in_executor(None, self._port_open):
                    with contextlib.suppress(RayGcsError):
                        state = await reader.read()
                        if any(n.instance_id == "head" and n.status != "DEAD" for n in state.nodes):
                            return True
                await asyncio.sleep(0.1)
        raise TimeoutError(f"the Ray head did not serve on {self.address} within {timeout:.0f}s; logs in {self.root}")

    def _port_open(self) -> bool:
        import socket

        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            # Connecting to a free port in the ephemeral range can connect the socket to itself.
            return bool(s.getsockname() != s.getpeername())
        return False

    def start_raylet(self, pod: dict[str, Any]) -> subprocess.Popen[bytes] | None:
        labels = pod.get("metadata", {}).get("labels") or {}
        if labels.get("ray.io/node-type") != "worker":
            return None  # the adapter's own head plays the head pod
        key = (pod["metadata"].get("namespace") or "default", pod["metadata"]["name"])
        if key in self.raylets:
            return self.raylets[key]
        params, env = start_params(pod)
        args = [f"--address={self.address}"]
        for flag in ("num-cpus", "memory", "num-gpus", "resources", "labels"):
            if params.get(flag):
                args.append(f"--{flag}={params[flag]}")
        node_env = {
            "RAY_CLOUD_INSTANCE_ID": env.get("RAY_CLOUD_INSTANCE_ID", key[1]),
            "RAY_NODE_TYPE_NAME": env.get("RAY_NODE_TYPE_NAME", labels.get("ray.io/group", "")),
        }
        proc = self._spawn(key[1], args, node_env)
        self.raylets[key] = proc
        return proc

    def stop_raylet(self, key: PodKey) -> None:
        proc = self.raylets.pop(key, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # graceful: the raylet unregisters from the GCS
        with contextlib.suppress(RuntimeError):
            task = asyncio.get_running_loop().create_task(self._reap(proc))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        for _ in range(int(self.stop_grace * 10)):
            if proc.poll() is not None:
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    # kubelet hooks
    def pod_started(self, pod: dict[str, Any]) -> None:
        self.start_raylet(pod)

    def pod_stopped(self, key: PodKey) -> None:
        self.stop_raylet(key)

    def container_restarted(self, pod: dict[str, Any], container: str, reason: str) -> None:
        key = (pod["metadata"].get("namespace") or "default", pod["metadata"]["name"])
        if key in self.raylets:
            self.stop_raylet(key)
            self.start_raylet(pod)

    def pod_resized(self, pod: dict[str, Any]) -> None:
        return None  # Ray keeps its start-time resources until someone calls resize_raylet_resource_instances

    async def close(self) -> None:
        procs = list(self.raylets.values()) + ([self._head] if self._head else [])
        self.raylets.clear()
        self._head = None
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.get_running_loop().run_in_executor(None, proc.wait, 5)
        for task in list(self._tasks):
            task.cancel()
        # A worker process that left its group still names our temp dir on its command line.
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                with contextlib.suppress(OSError):
                    if str(self.root).encode() in (entry / "cmdline").read_bytes():
                        os.kill(int(entry.name), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
