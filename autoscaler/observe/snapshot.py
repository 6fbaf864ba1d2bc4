"""Assemble one cluster's :class:`Snapshot` from cached Kubernetes objects, a GCS read and pressure.

Pure: the daemon passes in what its watches and pollers hold; no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from autoscaler.model import MEMORY, PodState, Pressure, Resources, Snapshot
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
    if pressure.last_oom_at is not None and pressure.last_oom_at >= at:
        return pressure
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
    md = raycluster.get("metadata", {})
    by_instance = live_nodes_by_instance(ray.nodes) if ray is not None else {}
    pods = []
    merged = dict(pressure)
    used_nodes: set[str] = set()
    for p in worker_pods:
        state = pod_state(p)
        ray_node = by_instance.get(state.name)
        if ray_node is not None:
            state = replace(state, ray=ray_node)
        pods.append(state)
        oom = kube_oom_kill(p)
        if oom is not None:
            merged[state.name] = with_kube_oom(merged.get(state.name), state, oom)
        if state.node_name:
            used_nodes.add(state.node_name)
    pods.sort(key=lambda s: s.name)
    node_states = tuple(
        node_state(nodes[name], pods_by_node.get(name, ())) for name in sorted(used_nodes) if name in nodes
    )
    return Snapshot(
        namespace=md.get("namespace", ""),
        cluster=md["name"],
        taken_at=now,
        pods=tuple(pods),
        nodes=node_states,
        groups=tuple(group_states(raycluster, stocked_out_until)),
        demands=ray.demands if ray else (),
        gangs=ray.gangs if ray else (),
        constraints=ray.constraints if ray else (),
        pressure={p.name: merged[p.name] for p in pods if p.name in merged},
        server_minor=server_minor,
        demand_truncated=bool(ray and ray.truncated),
    )
