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

    def count_existing(self, node: int) -> None:
        self.on_node[node] = self.on_node.get(node, 0) + 1
        self.total += 1

    def can_take(self, node: int) -> bool:
        return self.total < self.per_cluster and self.on_node.get(node, 0) < self.per_node

    def take(self, node: int) -> bool:
        if not self.can_take(node):
            return False
        self.count_existing(node)
        return True

    def give_back(self, node: int) -> None:
        """Undo one :meth:`take` (a rolled-back transaction)."""
        left = self.on_node[node] - 1
        if left:
            self.on_node[node] = left
        else:
            del self.on_node[node]
        self.total -= 1

    def copy(self) -> Budget:
        return Budget(self.per_node, self.per_cluster, dict(self.on_node), self.total)


def in_cooldown(pod: PodState, gp: GroupPolicy, now: float) -> bool:
    last = pod.last_resized_at
    return last is not None and now - last < gp.vertical.cooldown


def in_startup_grace(pod: PodState, gp: GroupPolicy, now: float) -> bool:
    started = pod.started_at if pod.started_at is not None else pod.created_at
    return now - started < gp.memory_pressure.startup_grace


def resized_requests(pod: PodState, cpu: int, memory: int) -> Resources:
    """The pod's requests with cpu/memory replaced — only keys it already has."""
    return _replaced(pod.requests, cpu, memory)


def _replaced(res: Resources, cpu: int, memory: int) -> Resources:
    # the keys stay (and stay sorted): rebuild the item tuple instead of going through Resources.of
    items = tuple((k, cpu if k == CPU else memory if k == MEMORY else v) for k, v in res._items)
    if any(v == 0 for _, v in items):
        return Resources.of(dict(items))  # a zero drops its key, as Resources.of does
    return Resources(items)


def limits_for(pod: PodState, requests: Resources) -> Resources:
    """Limits that keep the pod's QoS class for new ``requests``."""
    req = dict(requests._items)
    old = dict(pod.requests._items)
    values = dict(pod.limits._items)
    for name in RESIZABLE:
        if name not in values or name not in old:
            continue
        if pod.qos is QoSClass.GUARANTEED:
            values[name] = req.get(name, 0)
        else:  # Burstable: keep the gap, so requests never reach limits on every resource
            values[name] = values[name] + req.get(name, 0) - old[name]
    return Resources.of(values)


def resize_problem(pod: PodState, requests: Resources, limits: Resources, server_minor: int) -> str | None:
    """Why Kubernetes (or rva's rules) would refuse this resize; None when it is fine."""
    req, lim = dict(requests._items), dict(limits._items)
    old_req, old_lim = dict(pod.requests._items), dict(pod.limits._items)
    if req.keys() != old_req.keys() or lim.keys() != old_lim.keys():
        return "resource keys would be added or removed"
    for new, old in ((req, old_req), (lim, old_lim)):
        for k, v in old.items():
            if k not in RESIZABLE and new[k] != v:
                return f"{k} is not resizable in place"
    for k in RESIZABLE:
        if k in lim and k in req and req[k] > lim[k]:
            return f"{k} request would exceed its limit"
    if pod.qos is QoSClass.BURSTABLE and all(k in lim and k in req and req[k] == lim[k] for k in RESIZABLE):
        return "a Burstable pod would become Guaranteed"
    old_mem = old_lim.get(MEMORY, 0)
    if server_minor <= LAST_MINOR_WITHOUT_MEMORY_LIMIT_DECREASE and MEMORY in lim and lim[MEMORY] < old_mem:
        return "Kubernetes 1.33 rejects memory-limit decreases"
    return None


def worth_shrinking(current: int, target: int, hysteresis: float) -> bool:
    """Hysteresis: a downsize smaller than ``hysteresis × current`` is churn, not savings."""
    return target < current and current - target >= hysteresis * current
