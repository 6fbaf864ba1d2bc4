"""Snapshot assembly: pods joined to raylets, nodes accounted, kubelet-recorded OOM kills merged."""

from __future__ import annotations

from typing import Any

from autoscaler.model import Pressure, RayNodeState, Resources
from autoscaler.observe.ray_demand import RayClusterState
from autoscaler.observe.snapshot import build_snapshot
from tests.unit.daemon.test_k8s_state import GI, raycluster, worker_pod


def _ray(*nodes: RayNodeState) -> RayClusterState:
    return RayClusterState(nodes=nodes, demands=(), gangs=(), constraints=(), truncated=False,
                           shapes_reported=0, tasks_reported=0)


def _node() -> dict[str, Any]:
    return {"metadata": {"name": "node-1"}, "status": {"allocatable": {"cpu": "8", "memory": "32Gi"}}}


def test_pods_get_their_raylet_and_nodes_their_usage() -> None:
    pod = worker_pod()
    live = RayNodeState("aa", pod["metadata"]["name"], "cpu", Resources.of(cpu=4000), Resources(), {}, 0, "RUNNING")
    dead = RayNodeState("bb", "gone-pod", "cpu", Resources.of(cpu=4000), Resources(), {}, 0, "DEAD")
    snap = build_snapshot(raycluster(), [pod], {"node-1": _node()}, {"node-1": [pod]}, _ray(live, dead), {}, {},
                          now=5.0)
    assert snap.pods[0].ray == live
    assert snap.nodes[0].used == Resources.of(cpu=2000, memory=4 * GI)
    assert [g.name for g in snap.groups] == ["cpu", "l4-spot"]


def test_kubelet_oom_kill_becomes_a_pressure_signal() -> None:
    pod = worker_pod()
    pod["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-11-25T10:05:00Z"}}
    snap = build_snapshot(raycluster(), [pod], {}, {}, None, {}, {}, now=5.0)
    p = snap.pressure[pod["metadata"]["name"]]
    assert p.oom_kills == 1 and p.peak_usage_bytes == 4 * GI and p.last_oom_at == 1795601100.0
    # an agent sample is kept and only gains the OOM
    agent = Pressure(pod["metadata"]["name"], 1.0, 12.0, 3.0, 3 * GI, 4 * GI, 3 * GI, 2)
    snap = build_snapshot(raycluster(), [pod], {}, {}, None, {agent.pod: agent}, {}, now=5.0)
    merged = snap.pressure[agent.pod]
    assert merged.consecutive_windows == 2 and merged.psi_some_avg10 == 12.0 and merged.oom_kills == 1
    # the agent saw the kill first (its restarted container's peak started over): the kill's peak is kept
    seen = Pressure(pod["metadata"]["name"], 1.0, 0.0, 0.0, GI // 2, 4 * GI, GI // 2, 0, oom_kills=1,
                    last_oom_at=1795601200.0)
    snap = build_snapshot(raycluster(), [pod], {}, {}, None, {seen.pod: seen}, {}, now=5.0)
    assert snap.pressure[seen.pod].peak_usage_bytes == 4 * GI and snap.pressure[seen.pod].oom_kills == 1
    # a container that exited for another reason is not an OOM
    pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"] = "Error"
    assert build_snapshot(raycluster(), [pod], {}, {}, None, {}, {}, now=5.0).pressure == {}
