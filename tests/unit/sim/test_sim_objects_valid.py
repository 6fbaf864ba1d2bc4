"""Every pod and RayCluster the simulated controllers write is a valid Kubernetes object."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoscaler.sim.clock import VirtualClock
from autoscaler.sim.cluster import SimCluster
from autoscaler.sim.nodepools import NodePool
from autoscaler.sim.ray_runtime import SimulatedRay
from autoscaler.sim.traces import TaskSpec, Trace
from tests.kuberay_crd import raycluster_validator

kv = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")


def _raycluster() -> dict[str, Any]:
    c = {
        "name": "ray",
        "image": "rayproject/ray:2.60.0",
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
    }
    side = {"name": "agent", "image": "rva-agent:dev", "restartPolicy": "Always",
            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}}}  # fmt: skip
    return {
        "metadata": {"name": "rc", "namespace": "default"},
        "spec": {
            "rayVersion": "2.60.0",
            "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [c]}}},
            "workerGroupSpecs": [{
                "groupName": "cpu", "replicas": 3, "minReplicas": 0, "maxReplicas": 10, "rayStartParams": {},
                "labels": {"ray.io/market-type": "spot"},
                "template": {"spec": {"containers": [c], "initContainers": [side]}},
            }],
        },
    }  # fmt: skip


def _objects() -> list[tuple[str, dict[str, Any]]]:
    """Drive the sim through startup, a resize, an OOM kill, a scale-down and keep every committed object."""
    clock = VirtualClock()
    trace = Trace.of([TaskSpec(40, {"CPU": 1.0}, 100.0, memory_used=3 * 2**30)])
    cluster = SimCluster(clock, pools=[NodePool("cpu", cpu="16", memory="64Gi", initial_nodes=1)],
                         ray=SimulatedRay(clock, trace))  # fmt: skip
    seen: list[tuple[str, dict[str, Any]]] = []
    cluster.store.add_listener(lambda t, r, o: seen.append((r, json.loads(json.dumps(o)))))

    async def run() -> None:
        await cluster.start()
        cluster.create_raycluster(_raycluster())
        await cluster.run_for(30)
        name = cluster.pods("rc", "cpu")[0]["metadata"]["name"]
        body = {"spec": {"containers": [{"name": "ray", "resources": {"requests": {"cpu": "1500m"}}}]}}
        cluster.store.patch("pods", "default", name, body, "application/strategic-merge-patch+json", "resize")
        await cluster.run_for(30)
        rc = cluster.raycluster("rc")
        rc["spec"]["workerGroupSpecs"][0]["replicas"] = 2
        rc["spec"]["workerGroupSpecs"][0]["scaleStrategy"] = {"workersToDelete": [name]}
        cluster.store.update("rayclusters", rc)
        await cluster.run_for(30)
        await cluster.stop()

    import asyncio

    asyncio.run(run())
    return seen


@pytest.fixture(scope="module")
def objects() -> list[tuple[str, dict[str, Any]]]:
    return _objects()


@pytest.mark.parametrize("version", ["1.33", "1.35"])
def test_every_pod_the_sim_writes_validates_strictly(objects: list[tuple[str, dict[str, Any]]], version: str) -> None:
    pods = [o for r, o in objects if r == "pods"]
    assert len(pods) > 20
    assert any(p["status"].get("containerStatuses", [{}])[0].get("lastState", {}).get("terminated") for p in pods)
    for pod in pods:
        kv.validate(pod, version, strict=True)


def test_every_event_the_sim_writes_validates(objects: list[tuple[str, dict[str, Any]]]) -> None:
    events = [o for r, o in objects if r == "events"]
    assert {"Scheduled", "CreatedWorkerPod", "ResizeStarted", "DeletedWorkerPod"} <= {e["reason"] for e in events}
    for event in events:
        kv.validate(event, "1.35", strict=True)


def test_every_node_validates(objects: list[tuple[str, dict[str, Any]]]) -> None:
    for node in (o for r, o in objects if r == "nodes"):
        kv.validate(node, "1.35", strict=True)


def test_raycluster_status_written_by_the_operator_matches_the_real_crd(
    objects: list[tuple[str, dict[str, Any]]],
) -> None:
    validator = raycluster_validator(strict=False)
    rcs = [o for r, o in objects if r == "rayclusters"]
    assert any(rc.get("status", {}).get("readyWorkerReplicas") for rc in rcs)
    for rc in rcs:
        assert [e.message for e in validator.iter_errors(rc)] == []
