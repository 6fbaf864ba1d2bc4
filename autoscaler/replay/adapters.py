"""In-process stand-ins for what the daemon talks to, so the real executor runs on the simulator.

* :class:`StoreApi` implements the four ``kubernetes_asyncio`` calls the executor makes
  (``patch_namespaced_pod_resize``, ``patch_namespaced_pod``, ``patch_namespaced_custom_object``,
  ``create_namespaced_event``) as ``ObjectStore`` writes; store errors become ``ApiException`` with the
  Kubernetes ``Status`` body, exactly what the HTTP client would raise.
* :class:`SimRaylets` implements the executor's ``Raylets`` protocol over ``SimulatedRay``
  (``ResizeRayletResourceInstances`` clamping, idle-only drain).
* :func:`ray_state` converts ``SimulatedRay.cluster_resource_state()`` into the ``RayClusterState`` the
  GCS reader produces; :class:`RayStateReader` gives the same result, converting only the nodes that
  changed since its last read.
* :class:`StoreIndex` keeps, from the store's write events, what the daemon's watch caches keep: the
  cluster's worker pods, every pod by node, the nodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.actuate.raylet import DrainOutcome, DrainResult
from autoscaler.model import Demand, LabelSelector, RayNodeState, Resources
from autoscaler.observe.ray_demand import RayClusterState
from autoscaler.observe.snapshot import is_worker_of
from autoscaler.sim.apierrors import ApiError
from autoscaler.sim.ray_runtime import SimulatedRay
from autoscaler.sim.store import ObjectStore

SMP = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
NOT_IDLE = "The node to be idle terminated is no longer idle."


class _Response:
    """What ``_preload_content=False`` returns: ``await read()`` gives the body bytes."""

    __slots__ = ("_body",)

    def __init__(self, obj: Any) -> None:
        self._body = json.dumps(obj).encode()

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        return None


def _api_exception(e: ApiError) -> ApiException:
    exc = ApiException(status=e.code, reason=e.reason)
    exc.body = json.dumps(e.to_status()).encode()
    return exc


@dataclass
class WriteLog:
    """Every write an autoscaler made, in order (for tests, the table and the PNG's action marks)."""

    entries: list[tuple[float, str, str, str]] = field(default_factory=list)  # (t, kind, target, detail)

    def add(self, t: float, kind: str, target: str, detail: str) -> None:
        self.entries.append((t, kind, target, detail))

    def count(self, kind: str) -> int:
        return sum(1 for e in self.entries if e[1] == kind)


class StoreApi:
    """``CoreV1Api``/``CustomObjectsApi`` subset over an ``ObjectStore``. Events are logged, not stored
    (the simulated cluster's own components already record theirs; this keeps long replays lean)."""

    def __init__(self, store: ObjectStore, now: Callable[[], float], log: WriteLog | None = None) -> None:
        self.store = store
        self.now = now
        self.log = log or WriteLog()
        self.events: list[dict[str, Any]] = []

    def _do(self, kind: str, target: str, detail: str, fn: Callable[[], dict[str, Any]]) -> _Response:
        try:
            obj = fn()
        except ApiError as e:
            self.log.add(self.now(), f"{kind}-failed", target, f"HTTP {e.code}: {e.message}")
            raise _api_exception(e) from None
        self.log.add(self.now(), kind, target, detail)
        return _Response(obj)

    async def patch_namespaced_pod_resize(self, name: str, namespace: str, body: Any, **kw: Any) -> _Response:
        ctype = kw.get("_content_type", SMP)
        return self._do("resize", name, json.dumps(body, sort_keys=True), lambda: self.store.patch(
            "pods", namespace, name, body, ctype, subresource="resize", copy=False))

    async def patch_namespaced_pod(self, name: str, namespace: str, body: Any, **kw: Any) -> _Response:
        ctype = kw.get("_content_type", SMP)
        return self._do("annotate", name, json.dumps(body, sort_keys=True), lambda: self.store.patch(
            "pods", namespace, name, body, ctype, copy=False))

    async def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any, **kw: Any
    ) -> _Response:
        ctype = kw.get("_content_type", JSON_PATCH)
        return self._do("replicas", name, json.dumps(body, sort_keys=True), lambda: self.store.patch(
            plural, namespace, name, body, ctype, copy=False))

    async def create_namespaced_event(self, namespace: str, body: Any, **kw: Any) -> _Response:
        self.events.append(body)
        return _Response({"kind": "Event"})


class SimRaylets:
    """The executor's ``Raylets`` over ``SimulatedRay``: resize with Ray's clamping, drain only idle nodes
    (an accepted drain stops the raylet at once, as Ray does before the pod is deleted)."""

    def __init__(self, ray: SimulatedRay, now: Callable[[], float], log: WriteLog | None = None) -> None:
        self.ray = ray
        self.now = now
        self.log = log or WriteLog()

    async def resize(self, node_id: str, target: Resources) -> Resources:
        totals = self.ray.resize_raylet(node_id, target.to_ray())
        self.log.add(self.now(), "raylet-resize", node_id[:12], json.dumps(target.to_ray(), sort_keys=True))
        return Resources.from_ray(totals)

    async def drain_idle(self, node_id: str, reason: str, deadline_ms: int = 0) -> DrainResult:
        return self.drain_now(node_id, reason)

    def drain_now(self, node_id: str, reason: str) -> DrainResult:
        ok, message = self.ray.drain_node(node_id)
        self.log.add(self.now(), "drain" if ok else "drain-refused", node_id[:12], reason)
        if ok:
            return DrainResult(DrainOutcome.ACCEPTED)
        return DrainResult(DrainOutcome.NOT_IDLE if "no longer idle" in message else DrainOutcome.REJECTED, message)


def _selectors(raw: list[Mapping[str, str]]) -> tuple[LabelSelector, ...]:
    out = tuple(LabelSelector.parse(s) for s in raw)
    return () if all(not s.constraints for s in out) else out


def _ray_node(n: Mapping[str, Any]) -> RayNodeState:
    return RayNodeState(
        node_id=n["node_id"], instance_id=n["instance_id"], node_type=n["ray_node_type_name"],
        total=Resources.from_ray(n["total_resources"]), available=Resources.from_ray(n["available_resources"]),
        labels=n["labels"], idle_duration_s=n["idle_duration_ms"] / 1000.0, status=n["status"],
    )


def _cluster_state(nodes: tuple[RayNodeState, ...], pending: Sequence[Mapping[str, Any]]) -> RayClusterState:
    merged: dict[tuple[Resources, tuple[LabelSelector, ...]], int] = {}
    for d in pending:
        key = (Resources.from_ray(d["resources_bundle"]), _selectors(d["label_selectors"]))
        merged[key] = merged.get(key, 0) + int(d["count"])
    demands = tuple(Demand(shape, n, sel) for (shape, sel), n in merged.items())
    tasks = sum(merged.values())
    return RayClusterState(nodes=nodes, demands=demands, gangs=(), constraints=(), truncated=False,
                           shapes_reported=len(pending), tasks_reported=tasks)


def ray_state(state: Mapping[str, Any]) -> RayClusterState:
    """``SimulatedRay.cluster_resource_state()`` (plain dicts) → the reader's ``RayClusterState``."""
    return _cluster_state(tuple(_ray_node(n) for n in state["node_states"]), state["pending_resource_requests"])


class RayStateReader:
    """``ray_state(ray.cluster_resource_state())``, converting only nodes whose report changed: a node's
    ``RayNodeState`` is kept while its version (:meth:`SimulatedRay.node_versions`) and idle duration stay
    the same, so an unchanged node is the same object from one read to the next."""

    def __init__(self, ray: SimulatedRay) -> None:
        self.ray = ray
        self._nodes: dict[str, tuple[int, int, RayNodeState]] = {}

    def read(self) -> RayClusterState:
        cache, seen = self._nodes, {}
        nodes = []
        for node_id, version, idle_ms in self.ray.node_versions():
            hit = cache.get(node_id)
            if hit is None or hit[0] != version:
                hit = (version, idle_ms, _ray_node(self.ray.node_report(node_id)))
            elif hit[1] != idle_ms:  # only the idle time moved on
                b = hit[2]
                hit = (version, idle_ms, RayNodeState(
                    node_id=b.node_id, instance_id=b.instance_id, node_type=b.node_type, total=b.total,
                    available=b.available, labels=b.labels, idle_duration_s=idle_ms / 1000.0, status=b.status,
                    started_at=b.started_at))
            seen[node_id] = hit
            nodes.append(hit[2])
        self._nodes = seen
        return _cluster_state(tuple(nodes), self.ray.pending_requests())


class StoreIndex:
    """What the daemon's informers hold, kept current from the store's write events (``add_listener``):
    the worker pods of one RayCluster, every pod by node (all tenants), the nodes. Objects are the
    store's own (read-only). ``writes`` counts the pod and node writes seen."""

    def __init__(self, store: ObjectStore, cluster: str) -> None:
        self.cluster = cluster
        self.writes = 0
        self.workers: dict[tuple[str, str], dict[str, Any]] = {}
        self.by_node: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self._home: dict[tuple[str, str], str] = {}
        for node in store.objects("nodes"):
            self._on_write("ADDED", "nodes", node)
        for pod in store.objects("pods"):
            self._on_write("ADDED", "pods", pod)
        store.add_listener(self._on_write)

    def _on_write(self, event: str, resource: str, obj: dict[str, Any]) -> None:
        if resource not in ("pods", "nodes"):
            return
        self.writes += 1
        md = obj["metadata"]
        if resource == "nodes":
            if event == "DELETED":
                self.nodes.pop(md["name"], None)
            else:
                self.nodes[md["name"]] = obj
            return
        if resource != "pods":
            return
        key = (md.get("namespace") or "", md["name"])
        old_node = self._home.pop(key, None)
        if old_node is not None:
            self.by_node[old_node].pop(key, None)
            if not self.by_node[old_node]:
                del self.by_node[old_node]
        self.workers.pop(key, None)
        if event == "DELETED":
            return
        node = (obj.get("spec") or {}).get("nodeName")
        if node:
            self._home[key] = node
            self.by_node.setdefault(node, {})[key] = obj
        if is_worker_of(obj, self.cluster):
            self.workers[key] = obj
