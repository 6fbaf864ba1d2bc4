"""One virtual hour of a big simulated cluster: 10,000 KubeRay pods on 1,000 nodes under a task trace.

Exercises every simulated controller at scale in virtual time: the provisioner brings up the nodes,
the operator creates the pods, the scheduler binds them, the kubelets start them, the simulated Ray
replays a Poisson task trace (with memory over-use that OOM-kills some containers), a churn of in-place
resizes goes through ``pods/resize`` (accepted, deferred and retried by the kubelets' queues), and the
RayCluster is scaled down with ``workersToDelete`` and back up, while a spot pool is in a stockout.
``virtual_trace()`` returns the numbers; the goal is the hour in under 60 s of wall time.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from autoscaler.sim.clock import VirtualClock
from autoscaler.sim.cluster import SimCluster
from autoscaler.sim.kubelet import KubeletConfig
from autoscaler.sim.nodepools import NodePool
from autoscaler.sim.ray_runtime import SimulatedRay
from autoscaler.sim.traces import synthetic_trace

GI = 2**30


def _raycluster(workers: int) -> dict[str, Any]:
    container = {
        "name": "ray-worker",
        "image": "rayproject/ray:2.60.0",
        "resources": {"requests": {"cpu": "1500m", "memory": "6Gi"}, "limits": {"cpu": "2", "memory": "6Gi"}},
    }
    head = dict(container, name="ray-head")
    return {
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "rayVersion": "2.60.0",
            "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [head]}}},
            "workerGroupSpecs": [
                {
                    "groupName": "cpu",
                    "replicas": workers,
                    "minReplicas": 0,
                    "maxReplicas": workers,
                    "rayStartParams": {},
                    "labels": {"ray.io/market-type": "on-demand"},
                    "template": {"spec": {"containers": [container]}},
                }
            ],
        },
    }


async def virtual_trace_async(
    pods: int = 10_000,
    nodes: int = 1_000,
    hours: float = 1.0,
    seed: int = 0,
    tasks_per_second: float = 10.0,
    resizes_per_minute: int = 200,
    record_events: bool = True,
) -> dict[str, Any]:
    wall0 = time.perf_counter()
    clock = VirtualClock()
    duration = hours * 3600
    per_node = max(1, -(-pods // nodes))
    pools = [
        NodePool(
            "cpu",
            instance_type="n4-standard-16",
            cpu=str(2 * per_node),
            memory=f"{6 * per_node + 4}Gi",
            initial_nodes=nodes,
            max_nodes=nodes + nodes // 10,
            scale_down_delay=duration * 2,  # keep the fleet for the whole run
            kubelet=KubeletConfig(actuation_delay=2.0, startup_delay=8.0),
        ),
        NodePool(
            "spot",
            instance_type="n4-standard-16",
            cpu=str(2 * per_node),
            memory=f"{6 * per_node + 4}Gi",
            spot=True,
            max_nodes=max(1, nodes // 10),
            stockouts=[(0.0, duration / 2)],
            priority=10,  # preferred, but out of capacity for the first half: the on-demand pool steps in
        ),
    ]
    trace = synthetic_trace(
        seed,
        duration,
        tasks_per_second,
        [(3.0, {"CPU": 1.0, "memory": 2 * GI}, {}), (1.0, {"CPU": 2.0, "memory": 4 * GI}, {})],
        mean_task_seconds=120.0,
        memory_overuse=0.02,
    )
    ray = SimulatedRay(clock, trace)
    cluster = SimCluster(clock, pools=pools, seed=seed, record_events=record_events, ray=ray)
    rng = random.Random(seed)
    counters = {"resize_requests": 0, "resize_rejected": 0, "scale_down": 0, "scale_up": 0, "pods_peak": 0}

    def resize_churn() -> None:
        names = [p["metadata"]["name"] for p in cluster.store.objects("pods") if p["spec"].get("nodeName")]
        for name in rng.sample(names, min(len(names), resizes_per_minute)):
            cpu = rng.choice(["1", "1250m", "1500m", "2"])  # ≤ the 2-CPU limit
            body = {"spec": {"containers": [{"name": "ray-worker", "resources": {"requests": {"cpu": cpu}}}]}}
            counters["resize_requests"] += 1
            try:
                cluster.store.patch(
                    "pods", "default", name, body, "application/strategic-merge-patch+json", subresource="resize"
                )
            except Exception as exc:
                if getattr(exc, "code", None) not in (404, 422):
                    raise
                counters["resize_rejected"] += 1
        clock.call_later(60, resize_churn)

    def scale(replicas: int, delete: int) -> None:
        rc = cluster.store.get("rayclusters", "default", "bench")
        group = rc["spec"]["workerGroupSpecs"][0]
        workers = sorted(
            p["metadata"]["name"] for p in cluster.store.objects("pods")
            if p["metadata"].get("labels", {}).get("ray.io/group") == "cpu"
        )  # fmt: skip
        group["replicas"] = replicas
        group["maxReplicas"] = max(group["maxReplicas"], replicas)
        group["scaleStrategy"] = {"workersToDelete": rng.sample(workers, min(delete, len(workers)))}
        cluster.store.update("rayclusters", rc)
        counters["scale_down" if delete else "scale_up"] += 1

    def peak() -> None:
        counters["pods_peak"] = max(counters["pods_peak"], len(cluster.store.objects("pods")))
        clock.call_later(60, peak)

    await cluster.start()
    cluster.create_raycluster(_raycluster(pods - 1))
    clock.call_later(60, resize_churn)
    clock.call_later(60, peak)
    surge = max(1, pods // 50)
    clock.call_later(duration / 4, lambda: scale(pods - 1 - pods // 20, pods // 20))
    clock.call_later(duration / 3, lambda: scale(pods - 1, 0))
    clock.call_later(duration * 0.4, lambda: scale(pods - 1 + surge, 0))  # needs new nodes, spot in stockout
    clock.call_later(duration * 0.75, lambda: scale(pods - 1, surge))
    await clock.advance(duration)
    wall = time.perf_counter() - wall0

    all_pods = list(cluster.store.objects("pods"))
    running = sum(1 for p in all_pods if p.get("status", {}).get("phase") == "Running")
    conditions = [c for p in all_pods for c in p.get("status", {}).get("conditions") or ()]
    result = {
        "wall_seconds": round(wall, 2),
        "virtual_seconds": duration,
        "speedup": round(duration / wall, 1) if wall else None,
        "nodes": len(cluster.store.objects("nodes")),
        "pods": len(all_pods),
        "pods_running": running,
        "ray": ray.stats.as_dict(),
        "ray_pending_tasks": ray.pending(),
        "tasks_in_trace": len(trace),
        **counters,
        "resizes_deferred_now": sum(1 for c in conditions if c["type"] == "PodResizePending"),
        "resize_in_progress_now": sum(1 for c in conditions if c["type"] == "PodResizeInProgress"),
        "kubelet_status_writes": cluster.kubelet.status_writes,
        "scheduler_passes": cluster.scheduler.passes,
        "operator_reconciles": cluster.operator.reconciles,
        "store_writes": cluster.store.resource_version,
        "events": len(cluster.store.objects("events")),
        "timers_fired": clock.timers_fired,
        "provisioner": {a: sum(1 for _, act, _ in cluster.provisioner.log if act == a)
                        for a in ("created", "requested", "stockout", "removed")},
        "nodes_by_pool": {p.name: cluster.provisioner.node_count(p.name) for p in pools},
    }  # fmt: skip
    await cluster.stop()
    return result


def virtual_trace(
    pods: int = 10_000,
    nodes: int = 1_000,
    hours: float = 1.0,
    seed: int = 0,
    tasks_per_second: float = 10.0,
    resizes_per_minute: int = 200,
    record_events: bool = True,
) -> dict[str, Any]:
    """Run the virtual trace on a fresh event loop and return its numbers (``wall_seconds`` is the goal:
    under 60 s for 10,000 pods / 1,000 nodes / 1 hour)."""
    return asyncio.run(
        virtual_trace_async(pods, nodes, hours, seed, tasks_per_second, resizes_per_minute, record_events)
    )


if __name__ == "__main__":
    import json
    import sys

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    print(json.dumps(virtual_trace(pods=size, nodes=max(1, size // 10)), indent=1))
