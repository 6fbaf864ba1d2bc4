"""Match raylets to pods: KubeRay sets ``RAY_CLOUD_INSTANCE_ID`` to the pod name, which the GCS reports
as the node's ``instance_id``. Pure functions over model objects."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from autoscaler.model import PodState, RayNodeState

_DEAD = "DEAD"


@dataclass(frozen=True, slots=True)
class RayPodMatch:
    #: Every input pod, with ``ray`` set to its live raylet (or None).
    pods: tuple[PodState, ...]
    #: Pods (names) whose raylet has not registered (yet): starting, crash-looping, or not Ray at all.
    unregistered: tuple[str, ...]
    #: Live raylets no pod claims (the head, or a pod rva did not list), by node id.
    unmatched_nodes: tuple[str, ...]


def _newer(a: RayNodeState, b: RayNodeState) -> RayNodeState:
    """The raylet that belongs to the pod now. A container restart registers a new node id under the
    same pod name; until the GCS marks the old one DEAD both are listed. The later start wins; without
    start times a non-draining node beats a draining one, then the choice is stable (node id)."""
    if a.started_at is not None and b.started_at is not None and a.started_at != b.started_at:
        return a if a.started_at > b.started_at else b
    if (a.status == "DRAINING") != (b.status == "DRAINING"):
        return b if a.status == "DRAINING" else a
    return a if a.node_id > b.node_id else b


def live_nodes_by_instance(nodes: Iterable[RayNodeState]) -> dict[str, RayNodeState]:
    """``instance_id`` (pod name) → its current raylet, ignoring DEAD nodes and nodes without an id."""
    out: dict[str, RayNodeState] = {}
    for node in nodes:
        if node.status == _DEAD or not node.instance_id:
            continue
        seen = out.get(node.instance_id)
        out[node.instance_id] = node if seen is None else _newer(seen, node)
    return out


def attach_ray_nodes(pods: Sequence[PodState], nodes: Iterable[RayNodeState]) -> RayPodMatch:
    """Set ``PodState.ray`` from the GCS node list and report the loose ends on both sides."""
    by_instance = live_nodes_by_instance(nodes)
    out: list[PodState] = []
    unregistered: list[str] = []
    for pod in pods:
        node = by_instance.pop(pod.name, None)
        if node is None:
            unregistered.append(pod.name)
        out.append(dataclasses.replace(pod, ray=node) if node is not pod.ray else pod)
    return RayPodMatch(tuple(out), tuple(unregistered), tuple(sorted(n.node_id for n in by_instance.values())))
