"""Simulated Ray runtime: nodes follow pods, tasks follow the trace, memory use drives OOM kills."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.sim.clock import VirtualClock
from autoscaler.sim.cluster import SimCluster
from autoscaler.sim.nodepools import NodePool
from autoscaler.sim.ray_runtime import SimulatedRay, clamp_resize, selector_matches
from autoscaler.sim.traces import TaskSpec, Trace, synthetic_trace

GI = 2**30


def _raycluster(replicas: int = 2) -> dict[str, Any]:
    c = {
        "name": "ray",
        "image": "rayproject/ray:2.60.0",
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    }
    return {
        "metadata": {"name": "rc", "namespace": "default"},
        "spec": {
            "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [c]}}},
            "workerGroupSpecs": [{
                "groupName": "cpu", "replicas": replicas, "minReplicas": 0, "maxReplicas": 10, "rayStartParams": {},
                "labels": {"ray.io/market-type": "spot"}, "template": {"spec": {"containers": [c]}},
            }],
        },
    }  # fmt: skip


async def _start(trace: Trace) -> tuple[SimCluster, SimulatedRay]:
    clock = VirtualClock()
    ray = SimulatedRay(clock, trace, baseline_memory=0)
    cluster = SimCluster(clock, pools=[NodePool("cpu", cpu="16", memory="64Gi", initial_nodes=1)], ray=ray)
    await cluster.start()
    cluster.create_raycluster(_raycluster())
    return cluster, ray


def test_selector_semantics() -> None:
    labels = {"ray.io/market-type": "spot", "disk": "ssd"}
    assert selector_matches({"disk": "ssd"}, labels)
    assert selector_matches({"disk": "in(nvme,ssd)"}, labels)
    assert not selector_matches({"disk": "!ssd"}, labels)
    assert selector_matches({"zone": "!a"}, labels)  # missing key passes a negative constraint
    assert not selector_matches({"zone": "a"}, labels)
    assert not selector_matches({"ray.io/market-type": "!in(spot,preemptible)"}, labels)


def test_clamp_resize_semantics() -> None:
    total = {"CPU": 8.0, "memory": 8.0 * GI}
    avail = {"CPU": 2.0, "memory": 8.0 * GI}
    assert clamp_resize(total, avail, {"CPU": 2})["CPU"] == 6.0  # only what is free can go
    assert clamp_resize(total, avail, {"CPU": 12, "new": 3}) == {"CPU": 12.0, "memory": 8.0 * GI, "new": 3.0}
    with pytest.raises(ValueError, match="Cannot resize unit instance resource 'GPU'"):
        clamp_resize(total, avail, {"GPU": 1})


async def test_nodes_follow_pods_and_run_the_trace() -> None:
    trace = Trace.of(
        [
            TaskSpec(60 + i, {"CPU": 1.0, "memory": GI}, 30.0, label_selector={"ray.io/market-type": "spot"})
            for i in range(6)
        ]
        + [TaskSpec(60, {"CPU": 1.0}, 10.0, label_selector={"ray.io/market-type": "on-demand"})]
    )
    cluster, ray = await _start(trace)
    await cluster.run_for(30)
    state = ray.cluster_resource_state()
    workers = [n for n in state["node_states"] if n["ray_node_type_name"] == "cpu"]
    assert len(workers) == 2
    assert workers[0]["labels"]["ray.io/market-type"] == "spot"
    assert workers[0]["labels"]["ray.io/node-group"] == "cpu"
    assert workers[0]["total_resources"] == {"CPU": 2.0, "memory": 4.0 * GI}
    assert workers[0]["instance_id"].startswith("rc-cpu-worker-")
    await cluster.run_for(40)
    assert ray.stats.started == 4  # two 2-CPU spot workers; the head has no spot label
    demand = ray.cluster_resource_state()["pending_resource_requests"]
    assert sorted(d["count"] for d in demand) == [1, 2]
    await cluster.run_for(120)
    assert ray.stats.completed == 6 and ray.pending() == 1  # nobody is on-demand
    await cluster.stop()


async def test_memory_overuse_oom_kills_the_container_and_requeues() -> None:
    trace = Trace.of([TaskSpec(60, {"CPU": 1.0, "memory": GI}, 300.0, memory_used=5 * GI)])
    cluster, ray = await _start(trace)
    await cluster.run_for(61)
    assert ray.stats.oom_kills >= 1 and ray.stats.retried >= 1
    restarted = [p for p in cluster.pods("rc") if p["status"]["containerStatuses"][0]["restartCount"] > 0]
    assert restarted
    last = restarted[0]["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["reason"] == "OOMKilled"
    await cluster.stop()


async def test_resize_raylet_changes_logical_capacity() -> None:
    trace = Trace.of([TaskSpec(60, {"CPU": 4.0}, 30.0)])
    cluster, ray = await _start(trace)
    await cluster.run_for(70)
    assert ray.stats.started == 0
    worker = next(p for p in cluster.pods("rc", "cpu"))
    node_id = ray.node_id_of("default", worker["metadata"]["name"])
    assert node_id is not None
    assert ray.resize_raylet(node_id, {"CPU": 4})["CPU"] == 4.0
    await cluster.run_for(1)
    assert ray.stats.started == 1
    await cluster.stop()


def test_synthetic_trace_is_seeded_and_round_trips(tmp_path: Any) -> None:
    shapes: list[tuple[float, dict[str, float], dict[str, str]]] = [(1.0, {"CPU": 1.0, "memory": float(GI)}, {})]
    a = synthetic_trace(7, 600, 1.0, shapes, memory_overuse=0.5)
    assert a == synthetic_trace(7, 600, 1.0, shapes, memory_overuse=0.5)
    assert 400 < len(a) < 800
    path = tmp_path / "t.jsonl"
    a.write_jsonl(path)
    assert Trace.read_jsonl(path) == a


async def test_node_versions_tell_readers_what_changed() -> None:
    """A node's version moves with its tasks and totals; the structure version with nodes coming, going or
    resized; ``node_report`` is the node's ``cluster_resource_state`` entry; memory use is a running sum."""
    trace = Trace.of([TaskSpec(60, {"CPU": 1.0, "memory": GI}, 30.0)])
    cluster, ray = await _start(trace)
    await cluster.run_for(59)
    structure = ray.structure_version
    before = {nid: v for nid, v, _ in ray.node_versions()}
    assert structure >= 3  # the head and two workers registered
    await cluster.run_for(2)  # the task starts on one worker
    after = {nid: (v, idle) for nid, v, idle in ray.node_versions()}
    busy = [nid for nid in before if after[nid][0] != before[nid]]
    assert len(busy) == 1 and after[busy[0]][1] == 0 and ray.structure_version == structure
    assert ray._nodes[busy[0]].used_bytes == GI
    state = ray.cluster_resource_state()
    assert [n["node_id"] for n in state["node_states"]] == [nid for nid, _, _ in ray.node_versions()]
    assert state["node_states"] == [ray.node_report(nid) for nid in after]
    assert state["pending_resource_requests"] == ray.pending_requests() == []
    ray.resize_raylet(busy[0], {"CPU": 3})
    assert ray.structure_version == structure + 1
    await cluster.run_for(40)  # finished: idle again, its idle time counts up
    (_, _, idle), = [t for t in ray.node_versions() if t[0] == busy[0]]
    assert idle > 0 and ray._nodes[busy[0]].used_bytes == 0
    await cluster.stop()
