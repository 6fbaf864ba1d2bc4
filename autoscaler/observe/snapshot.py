"""Assemble one cluster's :class:`Snapshot` from cached Kubernetes objects, a GCS read and pressure.

Pure: the daemon passes in what its watches and pollers hold; no I/O here. :func:`build_snapshot`
converts every object; a :class:`SnapshotBuilder` gives the same snapshot but converts only the objects
that changed since its previous build (what a loop over a 1,000-pod cluster needs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields, replace
from operator import attrgetter, is_
from typing import Any

from autoscaler.model import (
    MEMORY,
    GroupState,
    NodeState,
    PodState,
    Pressure,
    RayNodeState,
    Resources,
    Snapshot,
)
from autoscaler.observe.k8s_state import group_states, node_state, parse_time, pod_state
from autoscaler.observe.ray_demand import RayClusterState
from autoscaler.observe.ray_pods import live_nodes_by_instance

Obj = Mapping[str, Any]


def is_worker_of(pod: Obj, cluster: str) -> bool:
    labels = pod.get("metadata", {}).get("labels") or {}
    return labels.get("ray.io/cluster") == cluster and labels.get("ray.io/node-type") == "worker"


def kube_oom_kill(pod: Obj) -> tuple[float, int] | None:
    """(when, memory limit) of the Ray container's last OOM kill as the kubelet recorded it, or None.

    An in-container agent dies with its container, so the kubelet's ``lastState`` is the record that
    always survives an OOM kill."""
    containers = pod.get("spec", {}).get("containers") or [{}]
    name = containers[0].get("name")
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if cs.get("name") != name:
            continue
        term = (cs.get("lastState") or {}).get("terminated") or {}
        if term.get("reason") != "OOMKilled":
            return None
        limit = Resources.from_k8s((containers[0].get("resources") or {}).get("limits")).get(MEMORY)
        return parse_time(term.get("finishedAt")) or 0.0, limit
    return None


def with_kube_oom(pressure: Pressure | None, pod: PodState, oom: tuple[float, int]) -> Pressure:
    """Merge a kubelet-recorded OOM kill into the agent's view (or stand in for a missing agent)."""
    at, limit = oom
    if pressure is None:
        return Pressure(pod=pod.name, sampled_at=at, psi_some_avg10=0.0, psi_full_avg10=0.0, usage_bytes=0,
                        limit_bytes=limit or None, peak_usage_bytes=limit, consecutive_windows=0, oom_kills=1,
                        last_oom_at=at)
    if pressure.last_oom_at is not None and pressure.last_oom_at >= at:  # the agent saw this kill already
        if pressure.peak_usage_bytes >= limit:
            return pressure
        return replace(pressure, peak_usage_bytes=limit)  # its new container's peak started over: keep the kill's
    return replace(pressure, oom_kills=max(1, pressure.oom_kills), last_oom_at=at,
                   peak_usage_bytes=max(pressure.peak_usage_bytes, limit))


def build_snapshot(
    raycluster: Obj,
    worker_pods: Iterable[Obj],
    nodes: Mapping[str, Obj],
    pods_by_node: Mapping[str, Iterable[Obj]],
    ray: RayClusterState | None,
    pressure: Mapping[str, Pressure],
    stocked_out_until: Mapping[str, float],
    now: float,
    server_minor: int = 35,
) -> Snapshot:
    """``nodes``: node name → Node; ``pods_by_node``: node name → every pod on it (all tenants)."""
    return SnapshotBuilder().build(raycluster, worker_pods, nodes, pods_by_node, ray, pressure, stocked_out_until,
                                   now, server_minor)


_NO_META: Obj = {}
_BY_NAME = attrgetter("name")


def _rv(obj: Obj) -> str | None:
    md = obj.get("metadata")
    return (md.get("resourceVersion") or None) if md else None


_POD_INIT = [f.name for f in fields(PodState) if f.init]
_POD_VALUES = attrgetter(*_POD_INIT[:-1])
_RAY_LAST = _POD_INIT[-1] == "ray"
_POD: Callable[..., PodState] = PodState


def _with_ray(state: PodState, ray_node: RayNodeState) -> PodState:
    """``replace(state, ray=ray_node)``, several times faster (PodState is built by the thousand per loop)."""
    if not _RAY_LAST:  # pragma: no cover - a field was added after ``ray``
        return replace(state, ray=ray_node)
    return _POD(*_POD_VALUES(state), ray_node)


class _PodEntry:
    """One worker pod object's conversion, and the last ``PodState`` with its raylet attached."""

    __slots__ = ("obj", "oom", "ray", "rv", "state", "with_ray")

    def __init__(self, obj: Obj, rv: str | None) -> None:
        self.obj = obj
        self.rv = rv
        self.state = pod_state(obj)
        self.oom = kube_oom_kill(obj)
        self.ray: RayNodeState | None = None
        self.with_ray = self.state

    def attached(self, ray_node: RayNodeState | None) -> PodState:
        if ray_node is None:
            return self.state
        if self.ray is not ray_node and self.ray != ray_node:
            self.ray, self.with_ray = ray_node, _with_ray(self.state, ray_node)
        return self.with_ray


class SnapshotBuilder:
    """:func:`build_snapshot` with memory: each pod's ``PodState`` (and kubelet OOM record, and the pod
    with its raylet attached), each node's ``NodeState`` (with its pods' accounting) and the groups are
    kept from one build to the next and reused for the very same, unchanged objects — the same object
    (identity) with the same ``metadata.resourceVersion``. Kubernetes gives every change a new
    resourceVersion and watch caches (the daemon's informers, the simulator's store) store a new object
    for each change, so only what changed is converted again; an object without a resourceVersion is
    converted on every build. Whatever a build did not see is forgotten. Same inputs → the same snapshot
    as :func:`build_snapshot`."""

    def __init__(self) -> None:
        self._pods: dict[int, _PodEntry] = {}
        self._nodes: dict[str, tuple[Obj, str, tuple[Obj, ...], tuple[str | None, ...], NodeState]] = {}
        self._groups: tuple[Obj, str | None, tuple[tuple[str, float], ...], tuple[GroupState, ...]] | None = None

    def build(
        self,
        raycluster: Obj,
        worker_pods: Iterable[Obj],
        nodes: Mapping[str, Obj],
        pods_by_node: Mapping[str, Iterable[Obj]],
        ray: RayClusterState | None,
        pressure: Mapping[str, Pressure],
        stocked_out_until: Mapping[str, float],
        now: float,
        server_minor: int = 35,
    ) -> Snapshot:
        """``nodes``: node name → Node; ``pods_by_node``: node name → every pod on it (all tenants)."""
        md = raycluster.get("metadata", {})
        by_instance = live_nodes_by_instance(ray.nodes) if ray is not None else {}
        pods = []
        merged = dict(pressure)
        used_nodes: set[str] = set()
        cache, seen = self._pods, {}
        for p in worker_pods:  # the hot loop of a 1,000-pod cluster: kept plain
            meta = p.get("metadata")
            rv = meta.get("resourceVersion") if meta else None
            entry = cache.get(id(p)) if rv else None
            if entry is None or entry.obj is not p or entry.rv != rv:
                entry = _PodEntry(p, rv)
            if rv:
                seen[id(p)] = entry
            ray_node = by_instance.get(entry.state.name)
            state = entry.with_ray if ray_node is not None and ray_node is entry.ray else entry.attached(ray_node)
            pods.append(state)
            if entry.oom is not None:
                merged[state.name] = with_kube_oom(merged.get(state.name), state, entry.oom)
            if state.node_name:
                used_nodes.add(state.node_name)
        self._pods = seen
        pods.sort(key=_BY_NAME)
        return Snapshot(
            namespace=md.get("namespace", ""),
            cluster=md["name"],
            taken_at=now,
            pods=tuple(pods),
            nodes=self._node_states(nodes, pods_by_node, used_nodes),
            groups=self._group_states(raycluster, stocked_out_until),
            demands=ray.demands if ray else (),
            gangs=ray.gangs if ray else (),
            constraints=ray.constraints if ray else (),
            pressure={p.name: merged[p.name] for p in pods if p.name in merged} if merged else {},
            server_minor=server_minor,
            demand_truncated=bool(ray and ray.truncated),
        )

    def _node_states(
        self, nodes: Mapping[str, Obj], pods_by_node: Mapping[str, Iterable[Obj]], used: set[str]
    ) -> tuple[NodeState, ...]:
        out = []
        seen: dict[str, tuple[Obj, str, tuple[Obj, ...], tuple[str | None, ...], NodeState]] = {}
        for name in sorted(used):
            node = nodes.get(name)
            if node is None:
                continue
            on_node = tuple(pods_by_node.get(name, ()))
            rvs = tuple([(q.get("metadata") or _NO_META).get("resourceVersion") for q in on_node])
            rv = _rv(node)
            hit = self._nodes.get(name)
            if (
                hit is not None and hit[0] is node and hit[1] == rv and hit[3] == rvs
                and len(hit[2]) == len(on_node) and all(map(is_, hit[2], on_node))
            ):
                state = hit[4]
            else:
                state = node_state(node, on_node)
            if rv and all(rvs):
                seen[name] = (node, rv, on_node, rvs, state)
            out.append(state)
        self._nodes = seen
        return tuple(out)

    def _group_states(self, raycluster: Obj, stocked_out_until: Mapping[str, float]) -> tuple[GroupState, ...]:
        rv = _rv(raycluster)
        stocked = tuple(stocked_out_until.items())
        hit = self._groups
        if hit is not None and rv and hit[0] is raycluster and hit[1] == rv and hit[2] == stocked:
            return hit[3]
        groups = tuple(group_states(raycluster, stocked_out_until))
        self._groups = (raycluster, rv, stocked, groups)
        return groups
