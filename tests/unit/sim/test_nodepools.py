"""Node pools and the provisioner in virtual time: labels, delay, stockouts, max nodes, empty-node removal."""

from __future__ import annotations

from autoscaler.sim.clock import VirtualClock
from autoscaler.sim.cluster import SimCluster
from autoscaler.sim.nodepools import NodePool


def _pod(name: str, cpu: str = "1", selector: dict[str, str] | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]}
    if selector:
        spec["nodeSelector"] = selector
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def test_node_labels_capacity_and_initial_nodes() -> None:
    pool = NodePool(
        "gpu-spot", instance_type="g2-standard-8", cpu="8", memory="32Gi", gpus=1, accelerator="nvidia-l4",
        spot=True, zone="us-central1-b", initial_nodes=2, reserved_cpu="500m", labels={"team": "ml"},
    )  # fmt: skip
    cluster = SimCluster(VirtualClock(), pools=[pool])
    await cluster.start()
    nodes = cluster.nodes("gpu-spot")
    assert [n["metadata"]["name"] for n in nodes] == ["gpu-spot-0001", "gpu-spot-0002"]
    labels = nodes[0]["metadata"]["labels"]
    assert labels["cloud.google.com/gke-spot"] == "true"
    assert labels["karpenter.sh/capacity-type"] == "spot"
    assert labels["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    assert labels["cloud.google.com/gke-nodepool"] == "gpu-spot"
    assert labels["node.kubernetes.io/instance-type"] == "g2-standard-8"
    assert labels["topology.kubernetes.io/zone"] == "us-central1-b"
    assert labels["topology.kubernetes.io/region"] == "us-central1"
    assert labels["team"] == "ml"
    status = nodes[0]["status"]
    assert status["capacity"]["nvidia.com/gpu"] == "1"
    assert status["allocatable"]["cpu"] == "7500m"
    await cluster.stop()


async def test_scale_up_after_provisioning_delay() -> None:
    clock = VirtualClock()
    cluster = SimCluster(clock, pools=[NodePool("cpu", cpu="4", provisioning_delay=90, max_nodes=5)])
    await cluster.start()
    t0 = clock.now()
    for i in range(6):  # 6 CPUs: two 4-CPU nodes
        cluster.store.create("pods", _pod(f"p{i}"))
    await cluster.run_for(60)
    assert cluster.nodes() == []
    assert cluster.provisioner.provisioning_count("cpu") == 2  # packed, not one node per pod
    await cluster.wait_for(lambda: len(cluster.nodes()) == 2, timeout=120)
    created = [t for t, action, _ in cluster.provisioner.log if action == "created"]
    assert all(t - t0 >= 90 for t in created)
    await cluster.run_for(10)
    assert all(p["spec"].get("nodeName") for p in cluster.store.list("pods")[0])
    assert cluster.store.list("events")[0]
    await cluster.stop()


async def test_stockout_window_blocks_provisioning_then_lets_it_through() -> None:
    clock = VirtualClock()
    pool = NodePool("spot", spot=True, provisioning_delay=30, stockouts=[(0, 300)])
    cluster = SimCluster(clock, pools=[pool])
    await cluster.start()
    cluster.store.create("pods", _pod("p"))
    await cluster.run_for(290)
    assert cluster.nodes() == []
    note = [e for e in cluster.store.list("events")[0] if e["reason"] == "NotTriggerScaleUp"]
    assert note and "1 in stockout" in note[0]["message"]
    await cluster.run_for(60)
    assert len(cluster.nodes()) == 1
    await cluster.stop()


async def test_manual_stockout_falls_back_to_next_pool() -> None:
    clock = VirtualClock()
    pools = [
        NodePool("spot", spot=True, priority=10, provisioning_delay=10),
        NodePool("ondemand", provisioning_delay=10),
    ]
    cluster = SimCluster(clock, pools=pools)
    await cluster.start()
    cluster.open_stockout("spot")
    cluster.store.create("pods", _pod("p"))
    await cluster.run_for(40)
    assert [n["metadata"]["name"] for n in cluster.nodes()] == ["ondemand-0001"]
    cluster.close_stockout("spot")
    cluster.store.create("pods", _pod("q", cpu="8"))
    await cluster.run_for(40)
    assert "spot-0001" in {n["metadata"]["name"] for n in cluster.nodes()}
    await cluster.stop()


async def test_max_nodes_is_respected() -> None:
    clock = VirtualClock()
    cluster = SimCluster(clock, pools=[NodePool("cpu", cpu="1", max_nodes=2, provisioning_delay=5)])
    await cluster.start()
    for i in range(4):
        cluster.store.create("pods", _pod(f"p{i}"))
    await cluster.run_for(120)
    assert len(cluster.nodes()) == 2
    note = [e for e in cluster.store.list("events")[0] if e["reason"] == "NotTriggerScaleUp"]
    assert note and note[-1]["message"] == "pod didn't trigger scale-up: 1 max node group size reached"
    await cluster.stop()


async def test_selector_picks_the_matching_pool() -> None:
    clock = VirtualClock()
    pools = [
        NodePool("cpu", provisioning_delay=5),
        NodePool("l4", accelerator="nvidia-l4", gpus=1, provisioning_delay=5),
    ]
    cluster = SimCluster(clock, pools=pools)
    await cluster.start()
    cluster.store.create("pods", _pod("g", selector={"cloud.google.com/gke-accelerator": "nvidia-l4"}))
    await cluster.run_for(30)
    assert [n["metadata"]["name"] for n in cluster.nodes()] == ["l4-0001"]
    await cluster.stop()


async def test_empty_node_removed_after_delay_but_not_below_min() -> None:
    clock = VirtualClock()
    pools = [NodePool("cpu", initial_nodes=3, min_nodes=1, scale_down_delay=600)]
    cluster = SimCluster(clock, pools=pools)
    await cluster.start()
    cluster.store.create("pods", _pod("p"))
    await cluster.run_for(5)
    busy = cluster.store.get("pods", "default", "p")["spec"]["nodeName"]
    await cluster.run_for(590)
    assert len(cluster.nodes()) == 3
    await cluster.run_for(20)
    assert [n["metadata"]["name"] for n in cluster.nodes()] == [busy]
    cluster.store.delete("pods", "default", "p")
    await cluster.run_for(1200)
    assert len(cluster.nodes()) == 1  # min_nodes
    removed = [d for _, action, d in cluster.provisioner.log if action == "removed"]
    assert len(removed) == 2
    await cluster.stop()


async def test_spot_preemption_removes_node_and_pods_then_pods_return() -> None:
    from tests.unit.sim.test_kuberay import _raycluster

    clock = VirtualClock()
    cluster = SimCluster(clock, pools=[NodePool("spot", cpu="16", memory="64Gi", spot=True, initial_nodes=1,
                                                provisioning_delay=60)])  # fmt: skip
    await cluster.start()
    cluster.create_raycluster(_raycluster(replicas=2))
    await cluster.run_for(20)
    assert len(cluster.pods("rc")) == 3
    cluster.preempt_node("spot-0001")
    await cluster.run_for(1)
    assert cluster.nodes() == []
    pods = cluster.pods("rc")
    assert len(pods) == 3 and not any(p["spec"].get("nodeName") for p in pods)  # re-created, Pending
    await cluster.run_for(120)
    assert [n["metadata"]["name"] for n in cluster.nodes()] == ["spot-0002"]
    assert all(p["status"]["phase"] == "Running" for p in cluster.pods("rc"))
    await cluster.stop()
