"""Assemble one cluster's :class:`Snapshot` from cached Kubernetes objects, a GCS read and pressure.

Pure: the daemon passes in what its watches and pollers hold; no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from autoscaler.model import Pressure, Snapshot
from autoscaler.observe.k8s_state import group_states, node_state, pod_state
from autoscaler.observe.ray_demand import RayClusterState
from autoscaler.observe.ray_pods import live_nodes_by_instance

Obj = Mapping[str, Any]


def is_worker_of(pod: Obj, cluster: str) -> bool:
    labels = pod.get("metadata", {}).get("labels") or {}
    return labels.get("ray.io/cluster") == cluster and labels.get("ray.io/node-type") == "worker"


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
    used_nodes: set[str] = set()
    for p in worker_pods:
        state = pod_state(p)
        ray_node = by_instance.get(state.name)
        if ray_node is not None:
            state = replace(state, ray=ray_node)
        pods.append(state)
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
        pressure={p.name: pressure[p.name] for p in pods if p.name in pressure},
        server_minor=server_minor,
        demand_truncated=bool(ray and ray.truncated),
    )
