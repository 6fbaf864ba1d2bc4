"""Rules every resize obeys, whichever pass proposed it.

* QoS class never changes (Kubernetes rejects it): Guaranteed moves requests and limits together,
  Burstable keeps each ``limit − request`` gap, keys are never added or removed.
* Only ``cpu`` and ``memory`` are resized; GPUs and extended resources are copied unchanged.
* Cooldown after a resize, startup grace before pressure reactions, hysteresis on downsizes.
* Concurrency caps: resizes in flight per node and per cluster (reverts are exempt: they undo).
* Kubernetes 1.33 rejects memory-limit decreases through ``/resize``; never plan one there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from autoscaler.model import CPU, MEMORY, PodState, QoSClass, Resources
from autoscaler.policy import GroupPolicy

RESIZABLE = (CPU, MEMORY)
#: Last API-server minor that rejects memory-limit decreases for NotRequired containers.
LAST_MINOR_WITHOUT_MEMORY_LIMIT_DECREASE = 33


@dataclass
class Budget:
    """How many more resizes may start, per node and for the whole cluster."""

    per_node: int
    per_cluster: int
    on_node: dict[int, int] = field(default_factory=dict)
    total: int = 0
    #: (N,) ``on_node`` as an array when the planner knows the nodes, so a pass can ask "which of
    #: these rows' nodes are full?" in one numpy call instead of one dict lookup per row
    counts: np.ndarray | None = None

    def count_existing(self, node: int) -> None:
        self.on_node[node] = self.on_node.get(node, 0) + 1
        self.total += 1
        if self.counts is not None and node >= 0:
            self.counts[node] += 1

    def full(self, nodes: np.ndarray) -> np.ndarray:
        """(len(nodes),) bool: no resize may start on each node (``can_take`` is False); needs ``counts``."""
        if self.total >= self.per_cluster:
            return np.ones(nodes.shape[0], dtype=bool)
        assert self.counts is not None
        return self.counts.take(nodes) >= self.per_node

    def can_take(self, node: int) -> bool:
        return self.total < self.per_cluster and self.on_node.get(node, 0) < self.per_node

    def take(self, node: int) -> bool:
        if not self.can_take(node):
            return False
        self.count_existing(node)
        return True

    def copy(self) -> Budget:
        counts = None if self.counts is None else self.counts.copy()
        return Budget(self.per_node, self.per_cluster, dict(self.on_node), self.total, counts)


def in_cooldown(pod: PodState, gp: GroupPolicy, now: float) -> bool:
    last = pod.last_resized_at
    return last is not None and now - last < gp.vertical.cooldown


def in_startup_grace(pod: PodState, gp: GroupPolicy, now: float) -> bool:
    started = pod.started_at if pod.started_at is not None else pod.created_at
    return now - started < gp.memory_pressure.startup_grace


def resized_requests(pod: PodState, cpu: int, memory: int) -> Resources:
    """The pod's requests with cpu/memory replaced — only keys it already has."""
    values = dict(pod.requests._items)
    if CPU in values:
        values[CPU] = cpu
    if MEMORY in values:
        values[MEMORY] = memory
    return Resources.of(values)


def limits_for(pod: PodState, requests: Resources) -> Resources:
    """Limits that keep the pod's QoS class for new ``requests``."""
    values = dict(pod.limits._items)
    for name in RESIZABLE:
        if name not in values or name not in pod.requests:
            continue
        if pod.qos is QoSClass.GUARANTEED:
            values[name] = requests[name]
        else:  # Burstable: keep the gap, so requests never reach limits on every resource
            values[name] = pod.limits[name] + requests[name] - pod.requests[name]
    return Resources.of(values)


def resize_problem(pod: PodState, requests: Resources, limits: Resources, server_minor: int) -> str | None:
    """Why Kubernetes (or rva's rules) would refuse this resize; None when it is fine."""
    if set(requests) != set(pod.requests) or set(limits) != set(pod.limits):
        return "resource keys would be added or removed"
    for res_new, res_old in ((requests, pod.requests), (limits, pod.limits)):
        for k in res_old:
            if k not in RESIZABLE and res_new[k] != res_old[k]:
                return f"{k} is not resizable in place"
    for k in RESIZABLE:
        if k in limits and k in requests and requests[k] > limits[k]:
            return f"{k} request would exceed its limit"
    if pod.qos is QoSClass.BURSTABLE and all(
        k in limits and k in requests and requests[k] == limits[k] for k in RESIZABLE
    ):
        return "a Burstable pod would become Guaranteed"
    if (
        server_minor <= LAST_MINOR_WITHOUT_MEMORY_LIMIT_DECREASE
        and MEMORY in limits
        and limits[MEMORY] < pod.limits.get(MEMORY)
    ):
        return "Kubernetes 1.33 rejects memory-limit decreases"
    return None


def worth_shrinking(current: int, target: int, hysteresis: float) -> bool:
    """Hysteresis: a downsize smaller than ``hysteresis × current`` is churn, not savings."""
    return target < current and current - target >= hysteresis * current
