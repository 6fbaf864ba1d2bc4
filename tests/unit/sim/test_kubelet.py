"""Simulated kubelet: startup, resize decisions (reference §6 cases 1, 2, 5, 7), actuation, events."""

from __future__ import annotations

import json
import re

from autoscaler.sim.kubelet import Kubelet, KubeletConfig
from tests.unit.sim.harness import Harness

GI = 1024**3


def _three_pod_node(h: Harness, config: KubeletConfig | None = None) -> Kubelet:
    """Reference case 1/2 setup: node 4 CPU / 4Gi, three pods of 1 CPU / 1Gi each (pod3 has a sidecar)."""
    h.node("n1", cpu="4", memory="4Gi")
    kubelet = Kubelet(h.store, h.clock, config or KubeletConfig())
    kubelet.start()
    h.pod("pod1", requests={"cpu": "1", "memory": "1Gi"}, node="n1")
    h.pod("pod2", requests={"cpu": "1", "memory": "1Gi"}, node="n1")
    h.pod("pod3", requests={"cpu": "500m", "memory": "512Mi"}, sidecar={"cpu": "500m", "memory": "512Mi"}, node="n1")
    return kubelet


async def test_pod_starts_with_container_statuses() -> None:
    h = Harness()
    kubelet = _three_pod_node(h, KubeletConfig(startup_delay=5))
    await h.run(1)
    assert h.get("pod1")["status"]["phase"] == "Pending"
    await h.run(5)
    pod = h.get("pod1")
    st = pod["status"]
    assert st["phase"] == "Running"
    cs = st["containerStatuses"][0]
    assert cs["allocatedResources"] == {"cpu": "1", "memory": "1Gi"}
    assert cs["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}}
    assert (cs["restartCount"], cs["ready"], cs["started"]) == (0, True, True)
    assert "running" in cs["state"]
    assert st["observedGeneration"] == 1
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert h.get("pod3")["status"]["initContainerStatuses"][0]["name"] == "side"
    assert kubelet.allocated("n1") == {"cpu": 3000, "memory": 3 * GI, "pods": 3}


async def test_case1_infeasible_cpu_and_memory() -> None:
    h = Harness()
    _three_pod_node(h)
    await h.run(5)
    h.resize("pod1", requests={"cpu": "5000m"})
    await h.run(1)
    cond = h.cond("pod1", "PodResizePending")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "Infeasible")
    assert cond["message"] == "Node didn't have enough capacity: cpu, requested: 5000, capacity: 4000"
    assert cond["observedGeneration"] == 2
    assert h.get("pod1")["status"]["containerStatuses"][0]["allocatedResources"]["cpu"] == "1"

    h.resize("pod1", requests={"cpu": "1", "memory": "4500Mi"})
    await h.run(1)
    cond = h.cond("pod1", "PodResizePending")
    assert cond is not None and cond["reason"] == "Infeasible"
    assert cond["message"] == "Node didn't have enough capacity: memory, requested: 4718592000, capacity: 4294967296"
    assert cond["observedGeneration"] == 3
    events = h.events("ResizeInfeasible", "pod1")
    assert [e["type"] for e in events] == ["Warning", "Warning"]
    assert events[-1]["message"].startswith('Pod resize Infeasible: {"containers":[{"name":"main","resources":')
    assert events[-1]["message"].endswith(
        '"generation":3,"error":"Node didn\'t have enough capacity: memory, requested: 4718592000, '
        'capacity: 4294967296"}'
    )


async def test_case2_deferred_then_accepted_then_deferred_memory() -> None:
    h = Harness()
    _three_pod_node(h, KubeletConfig(actuation_delay=2))
    await h.run(5)
    h.resize("pod1", requests={"cpu": "2500m", "memory": "2500Mi"})
    await h.run(1)
    cond = h.cond("pod1", "PodResizePending")
    assert cond is not None and cond["reason"] == "Deferred"
    assert cond["message"] == "Node didn't have enough resource: cpu, requested: 2500, used: 2000, capacity: 4000"
    assert h.get("pod1")["status"]["containerStatuses"][0]["allocatedResources"] == {"cpu": "1", "memory": "1Gi"}
    deferred = h.events("ResizeDeferred", "pod1")
    assert len(deferred) == 1 and deferred[0]["type"] == "Warning"
    body = json.loads(deferred[0]["message"].removeprefix("Pod resize Deferred: "))
    assert body["containers"][0]["resources"]["requests"] == {"cpu": "2500m", "memory": "2500Mi"}
    assert body["generation"] == 2 and body["error"].startswith("Node didn't have enough resource: cpu")

    h.resize("pod1", requests={"cpu": "500m", "memory": "1500Mi"})
    await h.run(0.5)
    assert h.cond("pod1", "PodResizePending") is None
    in_progress = h.cond("pod1", "PodResizeInProgress")
    assert in_progress is not None
    assert (in_progress["status"], in_progress["reason"], in_progress["message"]) == ("True", "", "")
    assert in_progress["observedGeneration"] == 3
    st = h.get("pod1")["status"]
    assert st["observedGeneration"] == 3
    assert st["containerStatuses"][0]["allocatedResources"] == {"cpu": "500m", "memory": "1500Mi"}
    assert st["containerStatuses"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}  # not yet actuated
    started = h.events("ResizeStarted", "pod1")
    assert started[0]["type"] == "Normal" and started[0]["message"].startswith("Pod resize started: {")
    await h.run(2)
    assert h.cond("pod1", "PodResizeInProgress") is None
    assert h.get("pod1")["status"]["containerStatuses"][0]["resources"]["requests"] == {
        "cpu": "500m",
        "memory": "1500Mi",
    }

    h.resize("pod1", requests={"cpu": "500m", "memory": "2500Mi"})
    await h.run(1)
    cond = h.cond("pod1", "PodResizePending")
    assert cond is not None and cond["reason"] == "Deferred"
    assert cond["message"].startswith("Node didn't have enough resource: memory, requested: 2621440000, used: ")


async def test_case2_static_pod_infeasible() -> None:
    h = Harness()
    h.node("n1")
    Kubelet(h.store, h.clock).start()
    h.pod("static", requests={"cpu": "1"}, node="n1", annotations={"kubernetes.io/config.source": "file"})
    await h.run(5)
    h.resize("static", requests={"cpu": "1500m"})
    await h.run(1)
    cond = h.cond("static", "PodResizePending")
    assert cond is not None and cond["reason"] == "Infeasible"
    assert cond["message"] == "In-place resize of static-pods is not supported"


async def test_guaranteed_with_static_cpu_manager_infeasible() -> None:
    h = Harness()
    h.node("n1", cpu="8", memory="8Gi")
    Kubelet(h.store, h.clock, KubeletConfig(cpu_manager_policy="static")).start()
    h.pod("g", requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"}, node="n1")
    await h.run(5)
    h.resize("g", requests={"cpu": "2", "memory": "1Gi"}, limits={"cpu": "2", "memory": "1Gi"})
    await h.run(1)
    cond = h.cond("g", "PodResizePending")
    assert cond is not None
    assert cond["message"] == "Resize is infeasible for Guaranteed Pods alongside CPU Manager static policy"


async def test_deferred_resize_accepted_when_a_pod_leaves() -> None:
    h = Harness()
    kubelet = _three_pod_node(h)
    await h.run(5)
    h.resize("pod1", requests={"cpu": "2500m"})
    await h.run(1)
    assert h.cond("pod1", "PodResizePending") is not None
    h.store.delete("pods", "default", "pod2")
    await h.run(0.1)
    assert h.cond("pod1", "PodResizePending") is None
    assert h.cond("pod1", "PodResizeInProgress") is not None
    assert kubelet.retry_log("n1")[-1][1] == "pods_removed"


async def test_case5_memory_limit_decrease_below_usage_is_error_until_usage_drops() -> None:
    h = Harness()
    h.node("n1", cpu="4", memory="4Gi")
    kubelet = Kubelet(h.store, h.clock)
    kubelet.start()
    both = {"cpu": "500m", "memory": "200Mi"}
    h.pod("m", requests=both, limits=both, node="n1")
    await h.run(5)
    kubelet.set_memory_usage("default", "m", 100 * 2**20)
    h.resize("m", requests={"cpu": "500m", "memory": "150Mi"}, limits={"cpu": "500m", "memory": "150Mi"})
    await h.run(3)
    assert h.cond("m", "PodResizeInProgress") is None
    assert h.get("m")["status"]["containerStatuses"][0]["resources"]["limits"]["memory"] == "150Mi"

    h.resize("m", requests={"cpu": "500m", "memory": "10Ki"}, limits={"cpu": "500m", "memory": "10Ki"})
    await h.run(3)
    cond = h.cond("m", "PodResizeInProgress")
    assert cond is not None and cond["reason"] == "Error"
    assert re.fullmatch(r"memory limit \(\d+\) below current usage", cond["message"])
    assert cond["message"] == "memory limit (10240) below current usage"
    assert h.get("m")["status"]["containerStatuses"][0]["resources"]["limits"]["memory"] == "150Mi"

    kubelet.set_memory_usage("default", "m", 4096)
    await h.run(0.1)
    assert h.cond("m", "PodResizeInProgress") is None
    assert h.get("m")["status"]["containerStatuses"][0]["resources"]["limits"]["memory"] == "10Ki"


async def test_restart_container_policy_bumps_restart_count() -> None:
    h = Harness()
    h.node("n1")
    Kubelet(h.store, h.clock).start()
    h.pod("r", requests={"cpu": "1"}, limits={"cpu": "2"}, node="n1", policy={"cpu": "RestartContainer"})
    await h.run(5)
    h.resize("r", requests={"cpu": "1500m"}, limits={"cpu": "2"})
    await h.run(3)
    cs = h.get("r")["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["message"] == "Container main resize requires restart"
    assert cs["resources"]["requests"]["cpu"] == "1500m"


async def test_oom_kill_when_usage_exceeds_limit() -> None:
    h = Harness()
    h.node("n1")
    kubelet = Kubelet(h.store, h.clock)
    kubelet.start()
    h.pod("o", requests={"memory": "100Mi"}, limits={"memory": "200Mi"}, node="n1")
    await h.run(5)
    kubelet.set_memory_usage("default", "o", 150 * 2**20)
    assert h.get("o")["status"]["containerStatuses"][0]["restartCount"] == 0
    kubelet.set_memory_usage("default", "o", 201 * 2**20)
    await h.run(0.1)
    cs = h.get("o")["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 1
    assert cs["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert cs["lastState"]["terminated"]["exitCode"] == 137


async def test_case7_retry_order_and_timers() -> None:
    h = Harness()
    h.node("n1", cpu="10", memory="100Gi")
    kubelet = Kubelet(h.store, h.clock)
    kubelet.start()
    t0 = h.clock.now()
    assert kubelet.next_retry_at("n1") == t0 + 30  # initialRetryDelay
    g = {"cpu": "2", "memory": "1Gi"}
    h.pod("a", requests={"cpu": "4", "memory": "1Gi"}, node="n1")
    h.pod("b", requests=g, node="n1", priority=1000)
    h.pod("c", requests=g, limits=g, node="n1")
    h.pod("d", requests=g, node="n1")
    await h.run(5)
    # Shrink the node so that even A's decrease does not fit any more.
    node = h.store.get("nodes", None, "n1")
    node["status"]["allocatable"] = {"cpu": "6", "memory": "100Gi", "pods": "110"}
    h.store.update("nodes", node, subresource="status")
    up = {"cpu": "3", "memory": "1Gi"}
    h.resize("d", requests=up)  # pending 120 s at the end
    await h.run(60)
    h.resize("c", requests=up, limits=up)  # pending 60 s
    await h.run(50)
    h.resize("b", requests=up)  # pending 10 s
    await h.run(5)
    h.resize("a", requests={"cpu": "3", "memory": "1Gi"})  # a decrease that still does not fit
    await h.run(5)
    for name in "abcd":
        cond = h.cond(name, "PodResizePending")
        assert cond is not None and cond["reason"] == "Deferred", name
    assert kubelet.pending_order("n1") == ["a", "b", "c", "d"]
    last_pass = kubelet.retry_log("n1")[-1][0]
    assert kubelet.next_retry_at("n1") == last_pass + 180  # retryDelay after every pass
    await h.run(last_pass + 180 - h.clock.now())
    when, trigger, order = kubelet.retry_log("n1")[-1]
    assert (when, trigger, order) == (last_pass + 180, "periodic_retry", ["a", "b", "c", "d"])
    assert kubelet.next_retry_at("n1") == last_pass + 360


async def test_generation_bookkeeping_and_no_op_resize() -> None:
    h = Harness()
    h.node("n1")
    Kubelet(h.store, h.clock).start()
    h.pod("p", requests={"cpu": "1"}, node="n1")
    await h.run(5)
    assert h.get("p")["metadata"]["generation"] == 1
    h.resize("p", requests={"cpu": "2"})
    await h.run(0.1)
    pod = h.get("p")
    assert pod["metadata"]["generation"] == 2
    assert pod["status"]["observedGeneration"] == 2
    assert h.cond("p", "PodResizeInProgress")["observedGeneration"] == 2  # type: ignore[index]
    h.resize("p", requests={"cpu": "2"})
    await h.run(3)
    assert h.get("p")["metadata"]["generation"] == 2
    assert len(h.events("ResizeStarted", "p")) == 1
    assert len(h.events("ResizeCompleted", "p")) == 1


async def test_stalled_kubelet_never_reacts() -> None:
    h = Harness()
    h.node("n1")
    Kubelet(h.store, h.clock, KubeletConfig(stalled=True)).start()
    h.pod("p", requests={"cpu": "1"}, node="n1")
    await h.run(60)
    assert h.get("p")["status"]["phase"] == "Pending"


async def test_graceful_delete_removes_pod_after_termination_delay() -> None:
    h = Harness(graceful=True)
    h.node("n1")
    kubelet = Kubelet(h.store, h.clock, KubeletConfig(termination_delay=2))
    kubelet.start()
    h.pod("p", requests={"cpu": "1"}, node="n1")
    await h.run(5)
    h.store.delete("pods", "default", "p")
    assert h.get("p")["metadata"]["deletionTimestamp"]
    await h.run(1)
    assert h.store.list("pods")[0]
    await h.run(1.5)
    assert h.store.list("pods")[0] == []
    assert kubelet.allocated("n1") == {}


async def test_resize_before_start_is_actuated_by_the_start() -> None:
    h = Harness()
    h.node("n1")
    Kubelet(h.store, h.clock, KubeletConfig(startup_delay=10)).start()
    h.pod("p", requests={"cpu": "1"}, node="n1")
    await h.run(1)
    h.resize("p", requests={"cpu": "2"})
    await h.run(0.1)
    assert h.cond("p", "PodResizeInProgress") is not None
    await h.run(10)
    assert h.cond("p", "PodResizeInProgress") is None
    cs = h.get("p")["status"]["containerStatuses"][0]
    assert cs["resources"]["requests"]["cpu"] == "2" and cs["restartCount"] == 0


async def test_stalled_kubelet_catches_up_when_resumed() -> None:
    h = Harness()
    h.node("n1")
    kubelet = Kubelet(h.store, h.clock)
    kubelet.start()
    kubelet.set_stalled("n1", True)
    h.pod("p", requests={"cpu": "1"}, node="n1")
    await h.run(30)
    assert h.get("p")["status"]["phase"] == "Pending" and "containerStatuses" not in h.get("p")["status"]
    kubelet.set_stalled("n1", False)
    await h.run(5)
    assert h.get("p")["status"]["phase"] == "Running"
