"""``rva run``: watch opted-in RayClusters, plan, resize in place, sync Ray, scale out — reliably.

Wiring only: observers (watch caches, GCS reader, pressure scraper) feed a :class:`ClusterWorker`
per managed RayCluster; each loop builds a Snapshot, asks the pure planner for a Plan and hands it
to the :class:`PlanExecutor`. Triggers: watch events, GCS changes, and a slow resync.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from kubernetes_asyncio import client

from autoscaler import annotations as ann
from autoscaler.actions import Plan
from autoscaler.actuate.events import EventRecorder
from autoscaler.actuate.executor import ExecutionReport, PlanExecutor
from autoscaler.actuate.raylet import RayletActuator
from autoscaler.actuate.replicas import ReplicaWriter
from autoscaler.actuate.resize import PodResizer
from autoscaler.http import make_app, serve
from autoscaler.kubeclient import KubeSettings, RateLimitedApiClient, make_api_client, read_json
from autoscaler.leader import LeaderElector, LeaseSettings
from autoscaler.logs import setup_logging
from autoscaler.metrics import Metrics
from autoscaler.model import CPU, MEMORY, Pressure, Snapshot
from autoscaler.observe.k8s_state import pod_state
from autoscaler.observe.kube import Informer, key_of
from autoscaler.observe.ray_demand import RayClusterState
from autoscaler.observe.ray_gcs import GcsConnection, RayGcsError, RayGcsReader
from autoscaler.observe.snapshot import SnapshotBuilder, is_worker_of
from autoscaler.plan import plan as make_plan
from autoscaler.plan_json import plan_to_dict
from autoscaler.policies import PolicyBook
from autoscaler.policy import Policy, PolicyError
from autoscaler.stockouts import mark_stockouts

log = logging.getLogger("rva")
Obj = dict[str, Any]


class PressureSource(Protocol):
    """Scrapes the memory-pressure agents of a cluster's pods and runs the detector."""

    async def sample(self, pods: list[Obj], policy: Policy, now: float) -> Mapping[str, Pressure]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class DaemonSettings:
    kube: KubeSettings = field(default_factory=KubeSettings)
    namespaces: tuple[str, ...] = ()  # empty = all namespaces
    own_namespace: str = "default"
    identity: str = ""
    leader_election: bool = True
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 8080
    dry_run: bool = False
    gcs_poll_s: float = 1.0
    gcs_port: int = 6379
    gcs_token_file: str | None = None
    resync_s: float = 15.0
    pressure_poll_s: float = 2.0
    debounce_s: float = 0.02
    max_concurrent_writes: int = 4


def cluster_refusal(rc: Mapping[str, Any]) -> str | None:
    """Why rva must not manage this RayCluster (another autoscaler owns it), or None."""
    spec = rc.get("spec", {})
    annotations = rc.get("metadata", {}).get("annotations") or {}
    if spec.get("enableInTreeAutoscaling"):
        return "InTreeAutoscaler"
    if ann.RAY_IPPR in annotations:
        return "RayIPPR"
    return None


REFUSAL_TEXT = {
    "InTreeAutoscaler": "spec.enableInTreeAutoscaling is true: Ray's own autoscaler writes replicas, "
    "workersToDelete and pod sizes; set it to false to let rva manage this cluster",
    "RayIPPR": "annotation ray.io/ippr is set: Ray's in-place resize (autoscaler v2 IPPR) resizes these "
    "pods; remove it to let rva manage this cluster",
}


def opted_in(rc: Mapping[str, Any]) -> bool:
    return (rc.get("metadata", {}).get("annotations") or {}).get(ann.ENABLED, "").lower() == "true"


@dataclass
class ClusterView:
    """What a worker reads from the shared caches."""

    raycluster: Callable[[], Obj | None]
    worker_pods: Callable[[], list[Obj]]
    nodes: Callable[[], Mapping[str, Obj]]
    pods_by_node: Callable[[], Mapping[str, list[Obj]]]


@dataclass
class LoopRecord:
    at: float = 0.0
    trigger: str = ""
    plan: Plan = field(default_factory=Plan)
    report: ExecutionReport = field(default_factory=ExecutionReport)
    error: str = ""


class ClusterWorker:
    """One managed RayCluster: GCS poller, pressure poller and the plan/act loop."""

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        view: ClusterView,
        policy: Callable[[], Policy],
        executor: PlanExecutor,
        reader: RayGcsReader | None,
        pressure: PressureSource | None,
        metrics: Metrics,
        settings: DaemonSettings,
        server_minor: int,
        on_written: Callable[[str, Obj], None],
        may_act: Callable[[], bool],
        now: Callable[[], float] = time.time,
    ) -> None:
        self.namespace, self.name = namespace, name
        self.label = f"{namespace}/{name}"
        self.view = view
        self.policy = policy
        self.executor = executor
        self.reader = reader
        self.pressure_source = pressure
        self.metrics = metrics
        self.settings = settings
        self.server_minor = server_minor
        self.on_written = on_written
        self.may_act = may_act
        self.now = now
        self.ray: RayClusterState | None = None
        self.gcs_ok = False
        self.pressure: Mapping[str, Pressure] = {}
        self.stocked_out_until: dict[str, float] = {}
        self.demand_since: float | None = None  # when unserved pending demand was first seen
        self._pod_series: set[tuple[str, str]] = set()  # (group, pod) with per-pod series exported
        self._unserved_reasons: set[str] = {"InfeasibleDemand"}  # reasons with an exported series
        self.last = LoopRecord()
        self._snapshots = SnapshotBuilder()  # converts only the pods and nodes that changed since the last loop
        self._trigger = asyncio.Event()
        self._trigger_reason = "start"
        self._busy = asyncio.Lock()

    def trigger(self, reason: str) -> None:
        if not self._trigger.is_set():
            self._trigger_reason = reason
        self._trigger.set()

    # -- pollers -----------------------------------------------------------------------------
    async def poll_gcs(self) -> None:
        if self.reader is None:
            return
        failures = 0
        fingerprint: object = None
        while True:
            t0 = time.monotonic()
            try:
                state = await self.reader.read()
                self.metrics.gcs_latency.labels(self.label, "GetClusterResourceState").observe(time.monotonic() - t0)
                self.gcs_ok = True
                self.metrics.gcs_up.labels(self.label).set(1)
                failures = 0
                fp = (state.demands, state.gangs, state.constraints,
                      tuple((n.node_id, n.status, n.total, n.available) for n in state.nodes))
                self.ray = state
                self._update_pending(state)
                if fp != fingerprint:
                    fingerprint = fp
                    self.trigger("gcs")
            except RayGcsError as e:
                failures += 1
                self.gcs_ok = False
                self.metrics.gcs_up.labels(self.label).set(0)
                self.metrics.gcs_errors.labels(self.label, "GetClusterResourceState").inc()
                if failures in (1, 10) or failures % 60 == 0:
                    log.warning("%s: GCS read failed (%d in a row): %s", self.label, failures, e)
            poll = self.settings.gcs_poll_s
            await asyncio.sleep(poll if failures == 0 else min(30.0, poll * 2**failures))

    def _update_pending(self, state: RayClusterState) -> None:
        tasks = sum(d.count for d in state.demands) + sum(len(g.bundles) for g in state.gangs)
        cpu = sum(d.count * d.shape.get(CPU) for d in state.demands) + sum(
            b.shape.get(CPU) for g in state.gangs for b in g.bundles)
        mem = sum(d.count * d.shape.get(MEMORY) for d in state.demands) + sum(
            b.shape.get(MEMORY) for g in state.gangs for b in g.bundles)
        self.metrics.pending_tasks.labels(self.label).set(tasks)
        self.metrics.pending_cpu.labels(self.label).set(cpu / 1000)
        self.metrics.pending_memory.labels(self.label).set(mem)
        if tasks and self.demand_since is None:
            self.demand_since = self.now()
        elif not tasks:
            self.demand_since = None

    async def poll_pressure(self) -> None:
        if self.pressure_source is None:
            return
        while True:
            try:
                workers = self.view.worker_pods()
                self.pressure = await self.pressure_source.sample(workers, self.policy(), self.now())
                groups = _groups_by_pod(workers)  # once per poll: a lookup per pod would scan every pod
                for pod_name, p in self.pressure.items():
                    self.metrics.pod_pressure.labels(self.label, groups.get(pod_name, ""), pod_name).set(
                        p.psi_some_avg10 / 100)
                if any(p.consecutive_windows > 0 or p.oom_kills for p in self.pressure.values()):
                    self.trigger("pressure")
            except Exception as e:  # a scrape problem must not stop the cluster loop
                log.warning("%s: pressure scrape failed: %s", self.label, e)
            await asyncio.sleep(self.settings.pressure_poll_s)

    # -- loop ----------------------------------------------------------------------------------
    async def run(self) -> None:
        pollers = [asyncio.create_task(self.poll_gcs()), asyncio.create_task(self.poll_pressure())]
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._trigger.wait(), timeout=self.settings.resync_s)
                reason = self._trigger_reason if self._trigger.is_set() else "resync"
                await asyncio.sleep(self.settings.debounce_s)  # let a burst of watch events land
                self._trigger.clear()
                self._trigger_reason = ""
                await self.run_once(reason)
        finally:
            for t in pollers:
                t.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)

    def snapshot(self, now: float) -> Snapshot | None:
        rc = self.view.raycluster()
        if rc is None:
            return None
        return self._snapshots.build(
            rc, self.view.worker_pods(), self.view.nodes(), self.view.pods_by_node(), self.ray, self.pressure,
            {g: t for g, t in self.stocked_out_until.items() if t > now}, now, self.server_minor,
        )

    async def run_once(self, trigger: str = "manual") -> LoopRecord:
        async with self._busy:
            now = self.now()
            self.metrics.loops.labels(trigger or "event").inc()
            record = LoopRecord(at=now, trigger=trigger)
            t0 = time.perf_counter()
            snap = self.snapshot(now)
            if snap is None:
                return record
            policy = self.policy()
            snap = self._mark_stockouts(snap, policy, now)
            t1 = time.perf_counter()
            self.metrics.loop_phase.labels("observe").observe(t1 - t0)
            self._export_sizes(snap)
            acting = self.may_act() and not (self.settings.dry_run or policy.dry_run)
            if acting:
                done = await self.executor.complete_resizes(snap, now)
                if done.done:  # re-read what changed before planning on top of it
                    snap = self.snapshot(now) or snap
                    snap = self._mark_stockouts(snap, policy, now)
            t2 = time.perf_counter()
            try:
                plan = make_plan(snap, policy, now)
            except Exception as e:  # a planner bug must not take the daemon down
                log.exception("%s: planning failed", self.label)
                record.error = f"plan: {e}"
                self.last = record
                return record
            t3 = time.perf_counter()
            self.metrics.loop_phase.labels("plan").observe(t3 - t2)
            record.plan = plan
            self._export_unserved(plan)
            if plan.actions:
                log.info("%s: %d action(s) [%s]%s", self.label, len(plan.actions), trigger,
                         "" if acting else " (not acting: dry run or not leader)")
                for a in plan.actions:
                    log.info("%s:   %s %s", self.label, type(a).__name__, getattr(a, "why", ""))
            if acting and plan.actions:
                if self.demand_since is not None:
                    self.metrics.demand_to_action.labels(self.label, "any").observe(max(0.0, now - self.demand_since))
                    self.demand_since = None
                record.report = await self.executor.execute(snap, plan, now)
            self.metrics.loop_phase.labels("actuate").observe(time.perf_counter() - t3)
            self.metrics.loop_phase.labels("total").observe(time.perf_counter() - t0)
            self.last = record
            return record

    def _mark_stockouts(self, snap: Snapshot, policy: Policy, now: float) -> Snapshot:
        """New pods Unschedulable past the policy's time mark their group stocked out for a backoff."""
        snap, self.stocked_out_until, newly = mark_stockouts(snap, policy, now, self.stocked_out_until)
        for name, stuck in newly.items():
            gp = policy.resolve(name).horizontal
            self.metrics.stockouts.labels(self.label, name).inc()
            log.warning("%s: group %s stocked out: %d pod(s) Unschedulable for ≥ %.0fs; skipping it for %.0fs",
                        self.label, name, stuck, gp.stockout_time, gp.stockout_backoff)
        for g in snap.groups:
            active = self.stocked_out_until.get(g.name, 0) > now
            self.metrics.stocked_out.labels(self.label, g.name).set(1 if active else 0)
        return snap

    def _export_sizes(self, snap: Snapshot) -> None:
        counts: dict[str, int] = {g.name: 0 for g in snap.groups}
        for p in snap.pods:
            counts[p.group] = counts.get(p.group, 0) + 1
            self.metrics.pod_cpu.labels(self.label, p.group, p.name).set(p.requests.get(CPU) / 1000)
            self.metrics.pod_memory.labels(self.label, p.group, p.name).set(p.requests.get(MEMORY))
        current = {(p.group, p.name) for p in snap.pods}
        for group, pod in self._pod_series - current:  # a removed pod's series go with it
            for gauge in (self.metrics.pod_cpu, self.metrics.pod_memory, self.metrics.pod_pressure):
                gauge.remove(self.label, group, pod)
        self._pod_series = current
        for g, n in counts.items():
            self.metrics.group_pods.labels(self.label, g).set(n)
        self.metrics.in_flight.labels(self.label).set(sum(1 for p in snap.pods if p.in_flight is not None))

    def _export_unserved(self, plan: Plan) -> None:
        by_reason: dict[str, int] = {}
        for u in plan.unserved:
            by_reason[u.reason.value] = by_reason.get(u.reason.value, 0) + u.count
        self._unserved_reasons |= set(by_reason)
        for reason in self._unserved_reasons:  # a reason no longer reported goes back to 0
            self.metrics.unserved.labels(self.label, reason).set(by_reason.get(reason, 0))


def _groups_by_pod(pods: list[Obj]) -> dict[str, str]:
    """Pod name → its worker group (``ray.io/group``)."""
    return {p["metadata"]["name"]: str((p["metadata"].get("labels") or {}).get("ray.io/group", "")) for p in pods}


def trim_pod(pod: Obj) -> Obj:
    """Keep Ray pods whole; for other tenants keep only what capacity accounting reads."""
    md = pod.get("metadata", {})
    if "ray.io/cluster" in (md.get("labels") or {}):
        return pod
    spec = pod.get("spec", {})
    status = pod.get("status", {})
    return {
        "metadata": {k: md[k] for k in ("name", "namespace", "resourceVersion", "labels") if k in md},
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": [{"name": c.get("name"), "resources": c.get("resources") or {}}
                           for c in spec.get("containers") or []],
            "initContainers": [{"name": c.get("name"), "resources": c.get("resources") or {},
                                "restartPolicy": c.get("restartPolicy")} for c in spec.get("initContainers") or []],
        },
        "status": {
            "phase": status.get("phase"),
            "conditions": [c for c in status.get("conditions") or [] if c.get("type") == "PodResizePending"],
            "containerStatuses": [{k: cs[k] for k in ("name", "allocatedResources", "resources") if k in cs}
                                  for cs in status.get("containerStatuses") or []],
        },
    }


async def _close_connections(worker: ClusterWorker, conn: GcsConnection | None) -> None:
    """A stopped cluster's GCS channel and agent-scrape session (nothing left open behind it)."""
    if conn is not None:
        await conn.close()
    if worker.pressure_source is not None:
        await worker.pressure_source.close()


class Daemon:
    """Shared watches, leader election, policies, HTTP, and one worker per managed RayCluster."""

    def __init__(
        self,
        settings: DaemonSettings,
        *,
        metrics: Metrics | None = None,
        pressure_factory: Callable[[str, str], PressureSource | None] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.s = settings
        self.metrics = metrics or Metrics()
        self.now = now
        self.identity = settings.identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self._pressure_factory = pressure_factory
        self.api: RateLimitedApiClient | None = None
        self.workers: dict[tuple[str, str], tuple[ClusterWorker, asyncio.Task[None], GcsConnection | None]] = {}
        self.refused: dict[tuple[str, str], str] = {}
        self.elector: LeaderElector | None = None
        self.policies = PolicyBook(settings.own_namespace, on_error=self._policy_error)
        self._pods_by_cluster: dict[tuple[str, str], set[tuple[str | None, str]]] = {}
        self._pods_by_node: dict[str, set[tuple[str | None, str]]] = {}
        self._pod_home: dict[tuple[str | None, str], tuple[str | None, str | None]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._pending_events: list[Awaitable[None]] = []
        self.server_minor = 35
        self.started = asyncio.Event()
        self.stopping = False
        self.http_port: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self.api = await make_api_client(self.s.kube, observer=self.metrics.observe_api)
        core = client.CoreV1Api(self.api)
        custom = client.CustomObjectsApi(self.api)
        self.core, self.custom = core, custom
        self.events = EventRecorder(core, self.identity)
        self.server_minor = await self._server_minor()
        self.rc_informer = Informer("rayclusters", self._list_rayclusters, on_change=self._on_raycluster)
        self.pod_informer = Informer("pods", self._list_pods, on_change=self._on_pod, transform=trim_pod)
        self.node_informer = Informer("nodes", core.list_node)
        self.cm_informer = Informer("configmaps", self._list_configmaps, on_change=self._on_configmap)
        informers = [self.cm_informer, self.node_informer, self.pod_informer, self.rc_informer]
        self._tasks += [asyncio.create_task(i.run(), name=f"informer-{i.kind}") for i in informers]
        if self.s.leader_election:
            self.elector = LeaderElector(
                client.CoordinationV1Api(self.api), replace(self.s.lease, identity=self.identity),
                on_change=self._on_leadership,
            )
            self._tasks.append(asyncio.create_task(self.elector.run(), name="leader"))
        else:
            self.metrics.leader.set(1)
        app = make_app(self.metrics.registry, self._healthy, self._ready, self.debug_plan)
        self._runner = await serve(app, self.s.metrics_host, self.s.metrics_port)
        from autoscaler.http import bound_port

        self.http_port = bound_port(self._runner)
        await asyncio.gather(*(i.synced.wait() for i in informers))
        self.started.set()
        log.info("rva %s started: %d RayCluster(s) managed, %d refused", self.identity, len(self.workers),
                 len(self.refused))

    async def stop(self) -> None:
        """Graceful: stop loops (in-flight writes finish; state is on the pods), release the lease."""
        self.stopping = True
        for worker, task, _ in list(self.workers.values()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker._busy.acquire(), timeout=10)  # let a running loop finish
            task.cancel()
        for worker, task, conn in list(self.workers.values()):
            with contextlib.suppress(BaseException):
                await task
            await _close_connections(worker, conn)
        self.workers.clear()
        if self.elector is not None:
            await self.elector.release()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if getattr(self, "_runner", None) is not None:
            await self._runner.cleanup()
        if self.api is not None:
            await self.api.close()

    async def abort(self) -> None:
        """Stop at once, as SIGKILL would: no write is finished, the lease is not released.
        In-flight resizes stay recorded on their pods for the next daemon (failover drills, tests)."""
        self.stopping = True
        tasks = [t for _, t, _ in self.workers.values()] + self._tasks
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker, _, conn in self.workers.values():
            await _close_connections(worker, conn)
        self.workers.clear()
        if getattr(self, "_runner", None) is not None:
            await self._runner.cleanup()
        if self.api is not None:
            await self.api.close()

    def may_act(self) -> bool:
        if self.stopping:
            return False
        return self.elector.may_act() if self.elector is not None else True

    # -- API calls -------------------------------------------------------------------------------
    async def _server_minor(self) -> int:
        try:
            info = await read_json(await client.VersionApi(self.api).get_code(_preload_content=False))
            return int("".join(ch for ch in str(info.get("minor", "35")) if ch.isdigit()) or 35)
        except Exception as e:
            log.warning("could not read the server version (%s); assuming 1.35", e)
            return 35

    def _list_rayclusters(self, **kw: Any) -> Awaitable[Any]:
        if len(self.s.namespaces) == 1:
            return self.custom.list_namespaced_custom_object("ray.io", "v1", self.s.namespaces[0], "rayclusters", **kw)
        return self.custom.list_cluster_custom_object("ray.io", "v1", "rayclusters", **kw)

    def _list_pods(self, **kw: Any) -> Awaitable[Any]:
        # All pods: other tenants' pods count against node capacity (trimmed by trim_pod).
        return self.core.list_pod_for_all_namespaces(**kw)

    def _list_configmaps(self, **kw: Any) -> Awaitable[Any]:
        selector = f"{ann.POLICY_LABEL}=true"
        if len(self.s.namespaces) == 1 and self.s.namespaces[0] == self.s.own_namespace:
            return self.core.list_namespaced_config_map(self.s.own_namespace, label_selector=selector, **kw)
        return self.core.list_config_map_for_all_namespaces(label_selector=selector, **kw)

    # -- watch handlers ----------------------------------------------------------------------------
    def _in_scope(self, namespace: str | None) -> bool:
        return not self.s.namespaces or namespace in self.s.namespaces

    def _on_raycluster(self, etype: str, rc: Obj) -> None:
        ns, name = key_of(rc)
        key = (ns or "", name)
        if etype == "DELETED" or not opted_in(rc) or not self._in_scope(ns):
            self._stop_worker(key)
            self.refused.pop(key, None)
            self._export_refusals()
            return
        why = cluster_refusal(rc)
        if why is not None:
            if self.refused.get(key) != why:
                self.refused[key] = why
                log.warning("refusing to manage RayCluster %s/%s: %s", key[0], name, REFUSAL_TEXT[why])
                self._spawn_event(key[0], "RayCluster", name, "ManagementRefused", REFUSAL_TEXT[why], warning=True)
            self._stop_worker(key)
            self._export_refusals()
            return
        self.refused.pop(key, None)
        self._export_refusals()
        if key not in self.workers:
            self._start_worker(key, rc)
        self.workers[key][0].trigger("raycluster")

    def _on_pod(self, etype: str, pod: Obj) -> None:
        k = key_of(pod)
        labels = pod.get("metadata", {}).get("labels") or {}
        old_cluster, old_node = self._pod_home.pop(k, (None, None))
        if old_node:
            self._pods_by_node.get(old_node, set()).discard(k)
        if old_cluster:
            self._pods_by_cluster.get((k[0] or "", old_cluster), set()).discard(k)
        if etype != "DELETED":
            node = pod.get("spec", {}).get("nodeName")
            cluster = labels.get("ray.io/cluster") if labels.get("ray.io/node-type") == "worker" else None
            self._pod_home[k] = (cluster, node)
            if node:
                self._pods_by_node.setdefault(node, set()).add(k)
            if cluster:
                self._pods_by_cluster.setdefault((k[0] or "", cluster), set()).add(k)
        cluster = labels.get("ray.io/cluster")
        if cluster and (k[0] or "", cluster) in self.workers:
            self.workers[(k[0] or "", cluster)][0].trigger("pod")

    def _on_configmap(self, etype: str, cm: Obj) -> None:
        ns, name = key_of(cm)
        if etype == "DELETED":
            self.policies.delete(ns or "", name)
        else:
            status = self.policies.update(cm)
            self.metrics.policy_valid.labels(f"{ns}/{name}").set(1 if status.valid else 0)
        for w, _, _ in self.workers.values():
            w.trigger("policy")

    def _policy_error(self, key: tuple[str, str], e: PolicyError) -> None:
        self.metrics.policy_errors.labels(f"{key[0]}/{key[1]}").inc()
        self._spawn_event(key[0], "ConfigMap", key[1], "InvalidPolicy",
                          "kept the last good policy; " + "; ".join(e.errors), warning=True)

    def _spawn_event(self, ns: str, kind: str, name: str, reason: str, message: str, warning: bool = False) -> None:
        if not self.may_act():
            return
        task = asyncio.get_event_loop().create_task(
            self.events.emit(ns, kind, name, reason, message, self.now(), warning=warning))
        self._tasks.append(task)

    def _export_refusals(self) -> None:
        for reason in REFUSAL_TEXT:
            self.metrics.refused.labels(reason).set(sum(1 for r in self.refused.values() if r == reason))
        self.metrics.managed.set(len(self.workers))

    def _on_leadership(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        self.metrics.leader_transitions.labels("acquired" if leading else "lost").inc()
        if leading:
            for w, _, _ in self.workers.values():
                w.trigger("leader")

    # -- workers -----------------------------------------------------------------------------------
    def _gcs_address(self, rc: Obj) -> str:
        md = rc.get("metadata", {})
        explicit = (md.get("annotations") or {}).get(ann.GCS_ADDRESS)
        return explicit or f"{md['name']}-head-svc.{md.get('namespace', 'default')}.svc:{self.s.gcs_port}"

    def _start_worker(self, key: tuple[str, str], rc: Obj) -> None:
        ns, name = key
        conn = GcsConnection(self._gcs_address(rc), token_path=self.s.gcs_token_file)
        reader = RayGcsReader(conn, cluster=f"{ns}/{name}")
        view = ClusterView(
            raycluster=lambda: self.rc_informer.get(ns, name),
            worker_pods=lambda: [p for k in sorted(self._pods_by_cluster.get(key, ()), key=str)
                                 if (p := self.pod_informer.items.get(k)) is not None],
            nodes=lambda: {k[1]: v for k, v in self.node_informer.items.items()},
            pods_by_node=self._pods_on_nodes,
        )
        executor = PlanExecutor(
            cluster=name, namespace=ns, resizer=PodResizer(self.core), replicas=ReplicaWriter(self.custom),
            raylets=RayletActuator(conn), events=self.events, metrics=self.metrics, may_act=self.may_act,
            max_concurrent_writes=self.s.max_concurrent_writes, on_written=self._written,
        )
        worker = ClusterWorker(
            ns, name, view=view, policy=lambda: self.policies.for_cluster(self.rc_informer.get(ns, name) or rc)[0],
            executor=executor, reader=reader,
            pressure=self._pressure_factory(ns, name) if self._pressure_factory else None,
            metrics=self.metrics, settings=self.s, server_minor=self.server_minor, on_written=self._written,
            may_act=self.may_act, now=self.now,
        )
        task = asyncio.create_task(worker.run(), name=f"cluster-{ns}/{name}")
        self.workers[key] = (worker, task, conn)
        self._export_refusals()
        log.info("managing RayCluster %s/%s (GCS %s)", ns, name, conn.address)

    def _stop_worker(self, key: tuple[str, str]) -> None:
        entry = self.workers.pop(key, None)
        if entry is not None:
            entry[1].cancel()
            self._tasks.append(asyncio.get_event_loop().create_task(_close_connections(entry[0], entry[2])))
            log.info("stopped managing RayCluster %s/%s", *key)

    def _pods_on_nodes(self) -> Mapping[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for node, keys in self._pods_by_node.items():
            out[node] = [p for k in keys if (p := self.pod_informer.items.get(k)) is not None]
        return out

    def _written(self, resource: str, obj: Obj) -> None:
        """Write-through: rva's own successful writes show up in the next plan without waiting for the watch."""
        if resource == "pods":
            self.pod_informer.put(obj)
            self._on_pod("MODIFIED", obj)
        elif resource == "rayclusters":
            self.rc_informer.put(obj)

    # -- health --------------------------------------------------------------------------------------
    def _healthy(self) -> bool:
        return all(not t.done() for t in self._tasks if t.get_name().startswith(("informer", "leader")))

    def _ready(self) -> tuple[bool, str]:
        if not self.started.is_set():
            return False, "watch caches not synced"
        down = [f"{w.namespace}/{w.name}" for w, _, _ in self.workers.values() if not w.gcs_ok]
        if down:
            return False, "GCS unreachable: " + ", ".join(down)
        return True, "ok"

    def debug_plan(self) -> dict[str, Any]:
        out: dict[str, Any] = {"identity": self.identity, "leader": self.may_act(), "clusters": {}}
        for (ns, name), (w, _, _) in self.workers.items():
            rec = w.last
            out["clusters"][f"{ns}/{name}"] = {
                "at": rec.at, "trigger": rec.trigger, "error": rec.error, "gcsReachable": w.gcs_ok,
                "plan": plan_to_dict(rec.plan),
                "executed": {"done": rec.report.done, "skipped": rec.report.skipped, "failed": rec.report.failed},
            }
        out["refused"] = {f"{ns}/{n}": REFUSAL_TEXT[r] for (ns, n), r in self.refused.items()}
        return out

    def worker(self, namespace: str, name: str) -> ClusterWorker | None:
        entry = self.workers.get((namespace, name))
        return entry[0] if entry else None

    def pod_states(self, namespace: str, name: str) -> list[Any]:
        return [pod_state(p) for k in self._pods_by_cluster.get((namespace, name), ())
                if (p := self.pod_informer.items.get(k)) is not None and is_worker_of(p, name)]


# -- CLI ---------------------------------------------------------------------------------------------


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"RVA_{name}", default)


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--namespace", action="append", default=None,
        help="namespace to manage (repeat; default all; env RVA_NAMESPACES comma-separated)")
    add("--own-namespace", default=_env("OWN_NAMESPACE", os.environ.get("POD_NAMESPACE", "default")),
        help="rva's namespace: its lease, default policy ConfigMap (env RVA_OWN_NAMESPACE / POD_NAMESPACE)")
    add("--server", default=_env("SERVER"), help="API server URL (default: in-cluster, else kubeconfig)")
    add("--token-file", default=_env("TOKEN_FILE"), help="bearer token file for --server")
    add("--kubeconfig", default=_env("KUBECONFIG", os.environ.get("KUBECONFIG")))
    add("--in-cluster", action="store_true", default=bool(os.environ.get("KUBERNETES_SERVICE_HOST")))
    add("--qps", type=float, default=float(_env("QPS", "20") or 20), help="client-side API rate (default 20)")
    add("--burst", type=int, default=int(_env("BURST", "30") or 30), help="client-side API burst (default 30)")
    add("--metrics-port", type=int, default=int(_env("METRICS_PORT", "8080") or 8080))
    add("--metrics-host", default=_env("METRICS_HOST", "0.0.0.0"))
    add("--no-leader-election", action="store_true", help="act without a lease (single replica, tests)")
    add("--lease-name", default=_env("LEASE_NAME", "rva-leader"))
    add("--lease-duration", type=float, default=15.0)
    add("--identity", default=_env("IDENTITY", os.environ.get("POD_NAME", "")))
    add("--dry-run", action="store_true", default=_env("DRY_RUN", "") == "true", help="plan and log, never write")
    add("--gcs-poll", type=float, default=1.0, help="seconds between GCS reads per cluster (default 1)")
    add("--gcs-token-file", default=_env("GCS_TOKEN_FILE"), help="Ray auth token file (token-mode clusters)")
    add("--resync", type=float, default=15.0, help="seconds between unconditional loops (default 15)")
    add("--log-format", choices=("json", "text"), default=_env("LOG_FORMAT", "json"))
    add("--log-level", default=_env("LOG_LEVEL", "INFO"))


def settings_from_args(args: argparse.Namespace) -> DaemonSettings:
    namespaces = tuple(args.namespace or [n for n in (_env("NAMESPACES", "") or "").split(",") if n])
    token = None
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    return DaemonSettings(
        kube=KubeSettings(server=args.server, token=token, kubeconfig=args.kubeconfig,
                          in_cluster=args.in_cluster and not args.server, qps=args.qps, burst=args.burst),
        namespaces=namespaces,
        own_namespace=args.own_namespace,
        identity=args.identity,
        leader_election=not args.no_leader_election,
        lease=LeaseSettings(name=args.lease_name, namespace=args.own_namespace,
                            lease_duration_s=args.lease_duration,
                            renew_deadline_s=args.lease_duration * 2 / 3, retry_period_s=args.lease_duration / 7.5),
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        dry_run=args.dry_run,
        gcs_poll_s=args.gcs_poll,
        gcs_token_file=args.gcs_token_file,
        resync_s=args.resync,
    )


def main(args: argparse.Namespace) -> int:
    setup_logging(args.log_format, args.log_level)
    settings = settings_from_args(args)
    return asyncio.run(run_until_signalled(settings))


async def run_until_signalled(settings: DaemonSettings) -> int:
    from autoscaler.observe.pressure_source import agent_pressure_source

    daemon = Daemon(settings, pressure_factory=agent_pressure_source)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await daemon.start()
    await stop.wait()
    log.info("signal received: finishing in-flight writes and releasing the lease")
    await daemon.stop()
    return 0
