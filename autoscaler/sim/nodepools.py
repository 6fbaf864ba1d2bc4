"""Node pools and a cluster-autoscaler-like provisioner for the simulated cluster.

A ``NodePool`` describes identical nodes (labels GKE/Karpenter put on them, capacity, allocatable,
taints, kubelet settings). The ``NodeProvisioner`` scans every ``scan_interval`` seconds like the
cluster autoscaler: pods that stay ``PodScheduled=False/Unschedulable`` are first packed onto nodes that
are already being provisioned, otherwise a node of the first pool (highest ``priority``, then declaration
order) whose node would fit the pod is requested; it appears after ``provisioning_delay`` unless the pool
is in a stockout window or at ``max_nodes``. Nodes without pods for ``scale_down_delay`` are removed
(never below ``min_nodes``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoscaler.sim import podres
from autoscaler.sim.clock import Clock, TimerHandle
from autoscaler.sim.events import EventRecorder, Store, rfc3339
from autoscaler.sim.kubelet import KubeletConfig
from autoscaler.sim.podres import Vec
from autoscaler.sim.scheduler import node_matches, untolerated_taint

POOL_LABEL = "cloud.google.com/gke-nodepool"
PodKey = tuple[str, str]


@dataclass
class NodePool:
    """One pool of identical nodes. ``stockouts`` are ``(start, end)`` seconds relative to the
    provisioner's start during which the pool cannot provision."""

    name: str
    instance_type: str = "n4-standard-8"
    cpu: str | int = "8"
    memory: str | int = "32Gi"
    gpus: int = 0
    accelerator: str | None = None  # e.g. "nvidia-l4" → cloud.google.com/gke-accelerator
    max_pods: int = 110
    zone: str = "us-central1-a"
    spot: bool = False
    capacity_type: str | None = None  # karpenter.sh/capacity-type; default spot|on-demand from ``spot``
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    reserved_cpu: str | int = "0"  # capacity − reserved = allocatable
    reserved_memory: str | int = "0"
    min_nodes: int = 0
    max_nodes: int = 10
    initial_nodes: int = 0
    provisioning_delay: float = 90.0
    scale_down_delay: float = 600.0
    stockouts: list[tuple[float, float]] = field(default_factory=list)
    priority: int = 0
    kubelet: KubeletConfig | None = None

    @property
    def region(self) -> str:
        return self.zone.rsplit("-", 1)[0] if self.zone.count("-") >= 2 else self.zone

    def capacity(self) -> dict[str, str]:
        cap = {
            "cpu": str(self.cpu),
            "memory": str(self.memory),
            "pods": str(self.max_pods),
            "ephemeral-storage": "100Gi",
        }
        if self.gpus:
            cap["nvidia.com/gpu"] = str(self.gpus)
        return cap

    def allocatable(self) -> dict[str, str]:
        cap = podres.parse_list(self.capacity())
        cap["cpu"] -= podres.parse_list({"cpu": self.reserved_cpu})["cpu"]
        cap["memory"] -= podres.parse_list({"memory": self.reserved_memory})["memory"]
        return podres.format_list(cap)

    def node_labels(self, name: str) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": self.instance_type,
            "topology.kubernetes.io/zone": self.zone,
            "topology.kubernetes.io/region": self.region,
            POOL_LABEL: self.name,
            "cloud.google.com/machine-family": self.instance_type.split("-")[0],
            "karpenter.sh/capacity-type": self.capacity_type or ("spot" if self.spot else "on-demand"),
        }
        if self.spot:
            labels["cloud.google.com/gke-spot"] = "true"
        if self.accelerator:
            labels["cloud.google.com/gke-accelerator"] = self.accelerator
        labels.update(self.labels)
        return labels

    def node_object(self, name: str, now: float) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": self.node_labels(name), "annotations": {}},
            "spec": {"providerID": f"gce://sim/{self.zone}/{name}", "taints": [dict(t) for t in self.taints]},
            "status": {
                "capacity": self.capacity(),
                "allocatable": self.allocatable(),
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": rfc3339(now),
                        "lastTransitionTime": rfc3339(now),
                    },
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.34.1",
                    "containerRuntimeVersion": "containerd://2.0.4",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "Container-Optimized OS",
                    "kernelVersion": "6.6.0",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kubeProxyVersion": "",
                },
                "addresses": [{"type": "Hostname", "address": name}],
            },
        }


@dataclass
class _Provisioning:
    pool: NodePool
    free: Vec
    timer: TimerHandle | None = None


class NodeProvisioner:
    """Creates initial nodes, scales pools up for Unschedulable pods and removes empty nodes."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        pools: Sequence[NodePool],
        scan_interval: float = 10.0,
        record_events: bool = True,
        before_scan: Callable[[], None] | None = None,
    ) -> None:
        names = [p.name for p in pools]
        if len(set(names)) != len(names):
            raise ValueError("node pool names must be unique")
        self.store = store
        self.clock = clock
        self.pools = {p.name: p for p in pools}
        self._order = sorted(pools, key=lambda p: -p.priority)  # stable: declaration order within a priority
        self.scan_interval = scan_interval
        self.before_scan = before_scan
        self.recorder = EventRecorder(store, clock, "cluster-autoscaler")
        self.recorder.enabled = record_events
        self._seq: dict[str, int] = dict.fromkeys(names, 0)
        self._nodes: dict[str, str] = {}  # node → pool
        self._node_pods: dict[str, set[PodKey]] = {}
        self._pod_node: dict[PodKey, str] = {}
        self._empty_since: dict[str, float] = {}
        self._unschedulable: dict[PodKey, None] = {}
        self._provisioning: list[_Provisioning] = []
        self._manual_stockout: set[str] = set()
        self._pod_notes: dict[PodKey, str] = {}
        self._t0 = 0.0
        self._timer: TimerHandle | None = None
        self._started = False
        self.log: list[tuple[float, str, str]] = []  # (time, action, detail) for tests and the demo

    # -- public -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._t0 = self.clock.now()
        self.store.add_listener(self._on_event)
        for node in self.store.list("nodes", copy=False)[0]:
            self._on_event("ADDED", "nodes", node)
        for pod in self.store.list("pods", copy=False)[0]:
            self._on_event("ADDED", "pods", pod)
        for pool in self._order:
            for _ in range(max(pool.initial_nodes, pool.min_nodes) - self.node_count(pool.name)):
                self._create_node(pool)
        self._timer = self.clock.call_later(self.scan_interval, self._tick)

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()
        for p in self._provisioning:
            if p.timer:
                p.timer.cancel()
        self._provisioning.clear()

    def node_count(self, pool: str) -> int:
        return sum(1 for p in self._nodes.values() if p == pool)

    def provisioning_count(self, pool: str) -> int:
        return sum(1 for p in self._provisioning if p.pool.name == pool)

    def in_stockout(self, pool: str, at: float | None = None) -> bool:
        if pool in self._manual_stockout:
            return True
        t = (self.clock.now() if at is None else at) - self._t0
        return any(start <= t < end for start, end in self.pools[pool].stockouts)

    def open_stockout(self, pool: str) -> None:
        """The pool cannot provision until ``close_stockout``."""
        self._manual_stockout.add(pool)

    def close_stockout(self, pool: str) -> None:
        self._manual_stockout.discard(pool)

    def preempt(self, node: str) -> None:
        """A spot reclaim: the node's pods are deleted at once (no grace) and the node disappears."""
        for pod in self.store.list("pods", field_selector=f"spec.nodeName={node}", copy=False)[0]:
            meta = pod["metadata"]
            try:
                self.store.delete("pods", meta.get("namespace"), meta["name"], grace_period_seconds=0)
            except Exception as exc:
                if getattr(exc, "code", None) != 404:
                    raise
        self.store.delete("nodes", None, node)
        self.log.append((self.clock.now(), "preempted", node))

    def kubelet_config_for(self, node: dict[str, Any]) -> KubeletConfig | None:
        pool = self.pools.get(((node.get("metadata") or {}).get("labels") or {}).get(POOL_LABEL, ""))
        return pool.kubelet if pool else None

    def scan(self) -> None:
        """One autoscaler loop: scale up for Unschedulable pods, then remove long-empty nodes."""
        if self.before_scan is not None:
            # Like the cluster autoscaler's scheduling simulation: pods that fit on nodes that just
            # registered are placed first instead of triggering another scale-up.
            self.before_scan()
        self._scale_up()
        self._scale_down()

    # -- events -----------------------------------------------------------------------------------
    def _on_event(self, event_type: str, resource: str, obj: dict[str, Any]) -> None:
        if resource == "nodes":
            name = obj["metadata"]["name"]
            pool = ((obj["metadata"].get("labels") or {}).get(POOL_LABEL)) or ""
            if event_type == "DELETED":
                self._nodes.pop(name, None)
                self._empty_since.pop(name, None)
            elif pool in self.pools and name not in self._nodes:
                self._nodes[name] = pool
                self._node_pods.setdefault(name, set())
                if not self._node_pods[name]:
                    self._empty_since[name] = self.clock.now()
            return
        if resource != "pods":
            return
        meta = obj["metadata"]
        key = (meta.get("namespace") or "default", meta["name"])
        status = obj.get("status") or {}
        node = (obj.get("spec") or {}).get("nodeName")
        gone = event_type == "DELETED" or status.get("phase") in ("Succeeded", "Failed")
        old_node = self._pod_node.get(key)
        if old_node and (gone or old_node != node):
            self._pod_node.pop(key, None)
            pods = self._node_pods.get(old_node)
            if pods is not None:
                pods.discard(key)
                if not pods:
                    self._empty_since[old_node] = self.clock.now()
        if gone:
            self._unschedulable.pop(key, None)
            self._pod_notes.pop(key, None)
            return
        if node:
            self._unschedulable.pop(key, None)
            self._pod_node[key] = node
            self._node_pods.setdefault(node, set()).add(key)
            self._empty_since.pop(node, None)
            return
        unschedulable = any(
            c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
            for c in status.get("conditions") or ()
        )
        if unschedulable and not meta.get("deletionTimestamp"):
            self._unschedulable[key] = None
        else:
            self._unschedulable.pop(key, None)

    # -- loop -------------------------------------------------------------------------------------
    def _tick(self) -> None:
        self._timer = self.clock.call_later(self.scan_interval, self._tick)
        self.scan()

    def _fits_pool(self, pod: dict[str, Any], pool: NodePool, request: Vec) -> str:
        """'' when a fresh node of ``pool`` would take the pod, else why not."""
        name = f"{pool.name}-template"
        if not node_matches(pod, name, pool.node_labels(name)):
            return "node(s) didn't match Pod's node affinity/selector"
        if untolerated_taint(pod, pool.taints) is not None:
            return "node(s) had untolerated taint"
        if not podres.fits(request, podres.parse_list(pool.allocatable())):
            return "Insufficient resources"
        return ""

    def _scale_up(self) -> None:
        if not self._unschedulable:
            return
        for p in self._provisioning:  # re-pack every scan, as the cluster autoscaler does
            p.free = podres.parse_list(p.pool.allocatable())
        for key in list(self._unschedulable):
            try:
                pod = self.store.get("pods", key[0], key[1], copy=False)
            except Exception as exc:
                if getattr(exc, "code", None) != 404:
                    raise
                self._unschedulable.pop(key, None)
                continue
            request = podres.pod_requests(pod)
            upcoming = next(
                (
                    p
                    for p in self._provisioning
                    if not self._fits_pool(pod, p.pool, request) and podres.fits(request, p.free)
                ),
                None,
            )
            if upcoming is not None:
                upcoming.free = podres.sub(upcoming.free, request)
                continue
            reasons: dict[str, int] = {}
            chosen = None
            for pool in self._order:
                why = self._fits_pool(pod, pool, request)
                if not why and self.in_stockout(pool.name):
                    why = "in stockout"
                if not why and self.node_count(pool.name) + self.provisioning_count(pool.name) >= pool.max_nodes:
                    why = "max node group size reached"
                if why:
                    reasons[why] = reasons.get(why, 0) + 1
                    continue
                chosen = pool
                break
            if chosen is None:
                note = "pod didn't trigger scale-up: " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
                if self._pod_notes.get(key) != note:
                    self._pod_notes[key] = note
                    self.recorder.record(pod, "Normal", "NotTriggerScaleUp", note)
                continue
            before = self.node_count(chosen.name) + self.provisioning_count(chosen.name)
            prov = self._request_node(chosen)
            prov.free = podres.sub(prov.free, request)
            self._pod_notes.pop(key, None)
            self.recorder.record(
                pod,
                "Normal",
                "TriggeredScaleUp",
                f"pod triggered scale-up: [{{{chosen.name} {before}->{before + 1} (max: {chosen.max_nodes})}}]",
            )

    def _request_node(self, pool: NodePool) -> _Provisioning:
        prov = _Provisioning(pool, podres.parse_list(pool.allocatable()))
        self._provisioning.append(prov)
        self.log.append((self.clock.now(), "requested", pool.name))
        prov.timer = self.clock.call_later(pool.provisioning_delay, lambda: self._provisioned(prov))
        return prov

    def _provisioned(self, prov: _Provisioning) -> None:
        if prov in self._provisioning:
            self._provisioning.remove(prov)
        if self.in_stockout(prov.pool.name):
            self.log.append((self.clock.now(), "stockout", prov.pool.name))
            return
        self._create_node(prov.pool)

    def _create_node(self, pool: NodePool) -> str:
        self._seq[pool.name] += 1
        name = f"{pool.name}-{self._seq[pool.name]:04d}"
        self.store.create("nodes", pool.node_object(name, self.clock.now()))
        self.log.append((self.clock.now(), "created", name))
        return name

    def _scale_down(self) -> None:
        now = self.clock.now()
        for node, since in sorted(self._empty_since.items()):
            pool = self.pools.get(self._nodes.get(node, ""))
            if pool is None or now - since < pool.scale_down_delay:
                continue
            if self.node_count(pool.name) <= pool.min_nodes:
                continue
            try:
                self.store.delete("nodes", None, node)
            except Exception as exc:
                if getattr(exc, "code", None) != 404:
                    raise
            self._nodes.pop(node, None)
            self._empty_since.pop(node, None)
            self.log.append((now, "removed", node))
