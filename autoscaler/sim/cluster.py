"""``SimCluster``: store + clock + node pools + scheduler + kubelets + KubeRay (+ Ray runtime), wired.

    clock = VirtualClock()
    cluster = SimCluster(clock, pools=[NodePool("cpu", cpu="8", memory="32Gi", initial_nodes=2)])
    await cluster.start()
    cluster.create_raycluster(raycluster_dict)
    await cluster.run_for(60)          # virtual: instant; real clock: sleeps
    await cluster.stop()

Every component writes through the same ``ObjectStore`` (the API server serves the same store), so
what tests see over HTTP is what the controllers wrote.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from autoscaler.sim.clock import Clock, RealClock, VirtualClock
from autoscaler.sim.kubelet import Kubelet, KubeletConfig
from autoscaler.sim.kuberay import KubeRayOperator
from autoscaler.sim.nodepools import NodePool, NodeProvisioner
from autoscaler.sim.scheduler import Scheduler
from autoscaler.sim.store import ObjectStore


class SimCluster:
    def __init__(
        self,
        clock: Clock | None = None,
        store: ObjectStore | None = None,
        pools: Sequence[NodePool] = (),
        *,
        kubelet: KubeletConfig | None = None,
        scoring: str = "LeastAllocated",
        scan_interval: float = 10.0,
        seed: int = 0,
        record_events: bool = True,
        server_minor: int = 34,
        ray: Any | None = None,
    ) -> None:
        """``ray`` is an optional Ray runtime (``SimulatedRay`` or ``RealRayRuntime``) that backs pods."""
        self.clock: Clock = clock or RealClock()
        self.store = store or ObjectStore(
            server_minor=server_minor, clock=self.clock.now, graceful_pod_deletion=True, seed=seed
        )
        self.scheduler = Scheduler(self.store, self.clock, scoring=scoring, record_events=record_events)
        self.provisioner = NodeProvisioner(
            self.store,
            self.clock,
            pools,
            scan_interval=scan_interval,
            record_events=record_events,
            before_scan=self.scheduler.schedule_now,
        )
        self.kubelet = Kubelet(
            self.store,
            self.clock,
            kubelet or KubeletConfig(),
            config_for_node=self.provisioner.kubelet_config_for,
            record_events=record_events,
        )
        self.operator = KubeRayOperator(self.store, self.clock, seed=seed, record_events=record_events)
        self.ray = ray
        self._started = False

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the controllers (kubelet first so it sees the first nodes) and the Ray runtime."""
        if self._started:
            return
        self._started = True
        try:
            self.store.create("namespaces", {"metadata": {"name": "default"}})
        except Exception as exc:
            if getattr(exc, "code", None) != 409:
                raise
        self.kubelet.start()
        self.scheduler.start()
        self.operator.start()
        if self.ray is not None:
            await self.ray.attach(self)
        self.provisioner.start()
        await self.settle()

    async def stop(self) -> None:
        self.provisioner.stop()
        if self.ray is not None:
            await self.ray.close()
        self._started = False

    async def __aenter__(self) -> SimCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- time -------------------------------------------------------------------------------------
    async def settle(self) -> None:
        """Let every callback due now run."""
        if isinstance(self.clock, VirtualClock):
            await self.clock.advance(0)
        else:
            await asyncio.sleep(0)

    async def run_for(self, seconds: float) -> None:
        if isinstance(self.clock, VirtualClock):
            await self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 600.0, step: float = 1.0) -> bool:
        """Advance (virtual) or sleep (real) in ``step`` increments until ``predicate()`` holds."""
        deadline = self.clock.now() + timeout
        wall_deadline = time.monotonic() + timeout
        while not predicate():
            if self.clock.now() >= deadline or time.monotonic() >= wall_deadline:
                return False
            await self.run_for(step if isinstance(self.clock, VirtualClock) else min(step, 0.1))
        return True

    # -- helpers ----------------------------------------------------------------------------------
    def create_raycluster(self, obj: dict[str, Any]) -> dict[str, Any]:
        body = dict(obj)
        body.setdefault("apiVersion", "ray.io/v1")
        body.setdefault("kind", "RayCluster")
        return self.store.create("rayclusters", body)

    def raycluster(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.store.get("rayclusters", namespace, name)

    def pods(
        self, cluster: str | None = None, group: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        selector = ",".join(
            s for s in (f"ray.io/cluster={cluster}" if cluster else "", f"ray.io/group={group}" if group else "") if s
        )
        return self.store.list("pods", namespace, label_selector=selector or None)[0]

    def nodes(self, pool: str | None = None) -> list[dict[str, Any]]:
        selector = f"cloud.google.com/gke-nodepool={pool}" if pool else None
        return self.store.list("nodes", label_selector=selector)[0]

    def set_memory_usage(self, pod: str, usage: int, namespace: str = "default", container: str | None = None) -> None:
        self.kubelet.set_memory_usage(namespace, pod, usage, container)

    def open_stockout(self, pool: str) -> None:
        self.provisioner.open_stockout(pool)

    def close_stockout(self, pool: str) -> None:
        self.provisioner.close_stockout(pool)

    def preempt_node(self, node: str) -> None:
        """Spot reclaim of ``node``: its pods go at once, then the node (KubeRay re-creates workers)."""
        self.provisioner.preempt(node)

    def stall_kubelet(self, node: str, stalled: bool = True) -> None:
        self.kubelet.set_stalled(node, stalled)
