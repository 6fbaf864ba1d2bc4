"""Simulated scheduler: binding, selectors/affinity/taints, Unschedulable messages, resize-aware accounting."""

from __future__ import annotations

from autoscaler.sim.kubelet import Kubelet
from autoscaler.sim.scheduler import Scheduler, accounted_requests, node_matches, untolerated_taint
from tests.unit.sim.harness import Harness


async def test_binds_pending_pod_and_sets_pod_scheduled() -> None:
    h = Harness()
    h.node("n1")
    Scheduler(h.store, h.clock).start()
    h.pod("p", requests={"cpu": "1", "memory": "1Gi"})
    await h.run(0)
    pod = h.get("p")
    assert pod["spec"]["nodeName"] == "n1"
    assert h.cond("p", "PodScheduled")["status"] == "True"  # type: ignore[index]
    assert h.events("Scheduled", "p")[0]["message"] == "Successfully assigned default/p to n1"


async def test_unschedulable_message_counts_nodes_per_reason() -> None:
    h = Harness()
    for n in ("n1", "n2", "n3"):
        h.node(n, cpu="2", memory="8Gi")
    Scheduler(h.store, h.clock).start()
    h.pod("big", requests={"cpu": "3"})
    await h.run(0)
    cond = h.cond("big", "PodScheduled")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert cond["message"] == "0/3 nodes are available: 3 Insufficient cpu."
    assert h.events("FailedScheduling", "big")[0]["type"] == "Warning"


async def test_unschedulable_reasons_sorted_like_the_scheduler() -> None:
    h = Harness()
    h.node("a", cpu="1", memory="1Gi", labels={"pool": "x"})
    h.node("b", cpu="8", memory="1Gi", labels={"pool": "y"})
    h.node(
        "c",
        cpu="8",
        memory="64Gi",
        labels={"pool": "y"},
        taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}],
    )
    Scheduler(h.store, h.clock).start()
    h.pod("p", requests={"cpu": "2", "memory": "2Gi"}, spec={"nodeSelector": {"pool": "y"}})
    await h.run(0)
    cond = h.cond("p", "PodScheduled")
    assert cond is not None
    assert cond["message"] == (
        "0/3 nodes are available: 1 Insufficient memory, 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {gpu: true}."
    )


async def test_pod_waits_then_binds_when_a_node_appears() -> None:
    h = Harness()
    scheduler = Scheduler(h.store, h.clock)
    scheduler.start()
    h.pod("p", requests={"cpu": "1"})
    await h.run(0)
    assert h.cond("p", "PodScheduled")["message"] == "no nodes available to schedule pods"  # type: ignore[index]
    h.node("n1")
    await h.run(0)
    assert h.get("p")["spec"]["nodeName"] == "n1"


async def test_least_and_most_allocated_scoring() -> None:
    for scoring, expected in (("LeastAllocated", "n2"), ("MostAllocated", "n1")):
        h = Harness()
        h.node("n1", cpu="4")
        h.node("n2", cpu="4")
        Scheduler(h.store, h.clock, scoring=scoring).start()
        h.pod("first", requests={"cpu": "1"}, node="n1")
        h.pod("second", requests={"cpu": "1"})
        await h.run(0)
        assert h.get("second")["spec"]["nodeName"] == expected, scoring


async def test_accounting_uses_max_of_desired_allocated_actual() -> None:
    h = Harness()
    h.node("n1", cpu="4", memory="8Gi")
    Kubelet(h.store, h.clock).start()
    scheduler = Scheduler(h.store, h.clock)
    scheduler.start()
    h.pod("a", requests={"cpu": "2"}, node="n1")
    await h.run(5)
    h.resize("a", requests={"cpu": "3"})  # accepted, actuation pending: desired 3 counts
    await h.run(0.1)
    assert scheduler.used("n1")["cpu"] == 3000
    h.pod("b", requests={"cpu": "1500m"})
    await h.run(0)
    assert h.cond("b", "PodScheduled")["reason"] == "Unschedulable"  # type: ignore[index]
    # An Infeasible resize does not count its desired value.
    h.resize("a", requests={"cpu": "64"})
    await h.run(1)
    assert h.cond("a", "PodResizePending")["reason"] == "Infeasible"  # type: ignore[index]
    assert accounted_requests(h.get("a"))["cpu"] == 3000


def test_node_affinity_operators_and_tolerations() -> None:
    labels = {"zone": "a", "gpu": "l4", "cores": "16"}

    def pod(expr: list[dict[str, object]]) -> dict[str, object]:
        terms = [{"matchExpressions": expr}]
        return {"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": terms}}}}}  # fmt: skip

    assert node_matches(pod([{"key": "zone", "operator": "In", "values": ["a", "b"]}]), "n", labels)
    assert not node_matches(pod([{"key": "zone", "operator": "NotIn", "values": ["a"]}]), "n", labels)
    assert node_matches(pod([{"key": "gpu", "operator": "Exists"}]), "n", labels)
    assert not node_matches(pod([{"key": "spot", "operator": "Exists"}]), "n", labels)
    assert node_matches(pod([{"key": "spot", "operator": "DoesNotExist"}]), "n", labels)
    assert node_matches(pod([{"key": "cores", "operator": "Gt", "values": ["8"]}]), "n", labels)
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    assert untolerated_taint({"spec": {}}, [taint]) == taint
    tolerating = {"spec": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}}
    assert untolerated_taint(tolerating, [taint]) is None
    assert untolerated_taint({"spec": {}}, [dict(taint, effect="PreferNoSchedule")]) is None
