"""What a replay measures. Definitions (also in ``docs/efficiency.md``):

* **makespan** — first submission of the trace → last task finished (virtual seconds);
* **allocated core·s / byte·s** — Σ over Ray *worker* pods bound to a node of what the pod holds on
  it (the scheduler's accounting: max of spec request, allocated and actual requests), integrated over
  the makespan; a pod holds capacity from binding until it is gone, including while it starts and idles;
* **used core·s / byte·s** — Σ over running tasks and actors of the CPU they hold in Ray (logical
  ``num_cpus``), and of the memory the simulated Ray reports to the kubelet (raylet baseline plus each
  running task's memory use), integrated over the makespan;
* **CPU efficiency** = used core·s / allocated core·s; **memory efficiency** = used byte·s / allocated
  byte·s (both in (0, 1]);
* **time to capacity** — per task, submission → start (it waited for capacity: a grown pod, a new
  pod, a new node, or a free slot), p50/p95;
* **pods created**, **nodes provisioned** (beyond those at start), **OOM kills** (kubelet OOM kills of
  Ray containers).

Sampling is on the virtual clock every ``interval`` seconds (1 s by default); each sample holds until
the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoscaler.model import CPU, MEMORY
from autoscaler.observe.k8s_state import pod_accounted_requests
from autoscaler.sim.clock import Clock
from autoscaler.sim.ray_runtime import SimulatedRay, _RayNode, _Task
from autoscaler.sim.store import ObjectStore


class MeteredRay(SimulatedRay):
    """``SimulatedRay`` that also records each task's wait (submission → start) and the last finish, and
    the memory each pod's container was last reported to use (``reported``: what the kubelet — and the
    pod's cgroup — sees; 0 after an OOM kill or a restart until Ray reports again). ``usage_listeners`` are
    called with a pod's key whenever its entry may have changed."""

    def __init__(self, clock: Clock, **kw: Any) -> None:
        super().__init__(clock, **kw)
        self.waits: list[float] = []
        self.first_submit: float | None = None
        self.last_finish: float | None = None
        self.expected = 0
        self.worker_pods: set[tuple[str, str]] = set()
        self.reported: dict[tuple[str, str], int] = {}
        self.usage_listeners: list[Callable[[tuple[str, str]], None]] = []

    def _reported(self, key: tuple[str, str], usage: int | None) -> None:
        if usage is None:
            self.reported.pop(key, None)
        else:
            self.reported[key] = usage
        for fn in self.usage_listeners:
            fn(key)

    def _flush_usage(self) -> None:
        if self.cluster is not None:  # what the kubelet is about to get (an OOM kill resets it below)
            for node_id in self._usage_dirty:
                node = self._nodes.get(node_id)
                if node is not None:
                    self._reported(node.pod, self.baseline_memory + node.used_bytes)
        super()._flush_usage()

    def container_restarted(self, pod: dict[str, Any], container: str, reason: str) -> None:
        md = pod["metadata"]
        key = (md.get("namespace") or "default", md["name"])
        if container == ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name"):
            self._reported(key, 0)  # the kubelet's usage of a restarted container
        super().container_restarted(pod, container, reason)

    def pod_stopped(self, key: tuple[str, str]) -> None:
        self._reported(key, None)
        super().pod_stopped(key)

    def pod_started(self, pod: dict[str, Any]) -> None:
        md = pod.get("metadata", {})
        if (md.get("labels") or {}).get("ray.io/node-type") == "worker":
            self.worker_pods.add((md.get("namespace") or "default", md["name"]))
        super().pod_started(pod)

    def _submit_many(self, specs: list[Any]) -> None:
        if self.first_submit is None:
            self.first_submit = self.clock.now()
        super()._submit_many(specs)

    def _start(self, task: _Task, node: _RayNode, now: float) -> None:
        if task.attempts == 0:
            self.waits.append(now - task.queued_at)
        super()._start(task, node, now)

    def _finish(self, node_id: str, tid: int) -> None:
        super()._finish(node_id, tid)
        self.last_finish = self.clock.now()

    def done(self) -> bool:
        return self.expected > 0 and self.stats.completed + self.stats.failed >= self.expected

    def worker_use(self) -> tuple[float, float]:
        """(CPU cores, memory bytes) in use on worker raylets right now."""
        cpu = mem = 0.0
        for node in self._nodes.values():
            if node.pod not in self.worker_pods:
                continue
            cpu += node.total.get("CPU", 0.0) - node.available.get("CPU", 0.0)
            mem += self.baseline_memory + node.used_bytes
        return cpu, mem


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Sample:
    t: float  # seconds since the first submission
    alloc_cpu: float  # cores
    alloc_mem: float  # bytes
    used_cpu: float
    used_mem: float
    pending_cpu: float  # cores asked for by queued tasks
    pods: int
    nodes: int


@dataclass
class Meter:
    """Samples the cluster on the virtual clock; counts pods as the store creates them."""

    store: ObjectStore
    ray: MeteredRay
    cluster: str
    namespace: str = "default"
    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    pods_created: int = 0
    #: every worker pod in the store, in the store's order → what it holds on its node (cores, bytes),
    #: None while unbound; kept from the store's write events
    _held: dict[tuple[str, str], tuple[float, float] | None] = field(default_factory=dict)

    def attach(self) -> None:
        for pod in self.store.objects("pods"):
            self._track(pod)
        self.store.add_listener(self._on_write)

    def _on_write(self, event: str, resource: str, obj: Mapping[str, Any]) -> None:
        if resource != "pods":
            return
        if event == "ADDED" and self._is_worker(obj):
            self.pods_created += 1
        if event == "DELETED":
            md = obj["metadata"]
            self._held.pop((md.get("namespace") or "", md["name"]), None)
        else:
            self._track(obj)

    def _track(self, pod: Mapping[str, Any]) -> None:
        md = pod["metadata"]
        key = (md.get("namespace") or "", md["name"])
        if not self._is_worker(pod):
            self._held.pop(key, None)
        elif not pod.get("spec", {}).get("nodeName"):
            self._held[key] = None
        else:
            acc = pod_accounted_requests(pod)
            self._held[key] = (acc.get(CPU) / 1000.0, float(acc.get(MEMORY)))

    def _is_worker(self, pod: Mapping[str, Any]) -> bool:
        labels = pod.get("metadata", {}).get("labels") or {}
        return labels.get("ray.io/cluster") == self.cluster and labels.get("ray.io/node-type") == "worker"

    def allocated(self) -> tuple[float, float, int]:
        """(cores, bytes, pods): Σ over worker pods bound to a node, summed in the store's order."""
        cpu = mem = 0.0
        pods = 0
        for held in self._held.values():
            if held is not None:
                pods += 1
                cpu += held[0]
                mem += held[1]
        return cpu, mem, pods

    def sample(self, t: float) -> Sample:
        alloc_cpu, alloc_mem, pods = self.allocated()
        used_cpu, used_mem = self.ray.worker_use()
        pending = sum(len(q) * q[0].spec.resources.get("CPU", 0.0) for q in self.ray._queue.values())
        s = Sample(t, alloc_cpu, alloc_mem, used_cpu, used_mem, pending, pods, len(self.store.objects("nodes")))
        self.samples.append(s)
        return s

    def integrate(self, end: float) -> dict[str, float]:
        """Σ value × dt over samples from t=0 up to ``end`` (each sample holds until the next)."""
        acc = {"alloc_cpu": 0.0, "alloc_mem": 0.0, "used_cpu": 0.0, "used_mem": 0.0}
        pts = [s for s in self.samples if s.t >= 0]
        for i, s in enumerate(pts):
            nxt = pts[i + 1].t if i + 1 < len(pts) else end
            dt = max(0.0, min(nxt, end) - s.t)
            if dt <= 0:
                continue
            acc["alloc_cpu"] += s.alloc_cpu * dt
            acc["alloc_mem"] += s.alloc_mem * dt
            acc["used_cpu"] += s.used_cpu * dt
            acc["used_mem"] += s.used_mem * dt
        return acc
