"""Real raylets behind simulated KubeRay pods: one shared head for the module, small raylets."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from autoscaler.sim.clock import RealClock
from autoscaler.sim.cluster import SimCluster
from autoscaler.sim.kubelet import KubeletConfig
from autoscaler.sim.nodepools import NodePool
from autoscaler.sim.ray_runtime import RealRayRuntime

pytestmark = [pytest.mark.ray, pytest.mark.asyncio(loop_scope="module")]


def _node_states(address: str) -> list[Any]:
    import grpc
    from ray.core.generated import autoscaler_pb2, autoscaler_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = autoscaler_pb2_grpc.AutoscalerStateServiceStub(channel)
        reply = stub.GetClusterResourceState(autoscaler_pb2.GetClusterResourceStateRequest(), timeout=5)
    return list(reply.cluster_resource_state.node_states)


def _alive(address: str) -> dict[str, Any]:
    from ray.core.generated import autoscaler_pb2

    try:
        states = _node_states(address)
    except Exception:
        return {}
    return {n.instance_id: n for n in states if autoscaler_pb2.NodeStatus.Name(n.status) != "DEAD"}


async def _until(pred: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.get_running_loop().run_in_executor(None, pred):
            return True
        await asyncio.sleep(0.5)
    return False


def _raycluster() -> dict[str, Any]:
    container = {
        "name": "ray-worker",
        "image": "rayproject/ray:2.60.0",
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    }
    return {
        "metadata": {"name": "real", "namespace": "default"},
        "spec": {
            "headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [dict(container, name="h")]}}},
            "workerGroupSpecs": [{
                "groupName": "cpu-workers", "replicas": 1, "minReplicas": 0, "maxReplicas": 2, "rayStartParams": {},
                "labels": {"team": "ml", "disk": "ssd"}, "template": {"spec": {"containers": [container]}},
            }],
        },
    }  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[SimCluster]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    runtime = RealRayRuntime(object_store_memory=80 * 2**20, stop_grace=10)
    sim = SimCluster(
        RealClock(),
        pools=[NodePool("cpu", cpu="8", memory="16Gi", initial_nodes=1)],
        kubelet=KubeletConfig(startup_delay=0.2, actuation_delay=0.2, termination_delay=0.2),
        ray=runtime,
    )
    try:
        await sim.start()
        sim.create_raycluster(_raycluster())
        yield sim
    finally:
        await sim.stop()


def _worker(sim: SimCluster) -> dict[str, Any] | None:
    pods = [p for p in sim.pods("real", "cpu-workers") if not p["metadata"].get("deletionTimestamp")]
    return pods[0] if pods else None


async def test_operator_pod_gets_a_raylet_with_its_labels_and_node_type(cluster: SimCluster) -> None:
    runtime = cluster.ray
    assert isinstance(runtime, RealRayRuntime)
    assert await cluster.wait_for(lambda: (_worker(cluster) or {}).get("status", {}).get("phase") == "Running", 30)
    pod = _worker(cluster)
    assert pod is not None
    name = pod["metadata"]["name"]
    assert await _until(lambda: name in _alive(runtime.address), 90), f"raylet never registered; logs in {runtime.root}"
    node = _alive(runtime.address)[name]
    assert node.ray_node_type_name == "cpu-workers"
    labels = dict(node.labels)
    assert labels["team"] == "ml" and labels["disk"] == "ssd"
    assert labels["ray.io/node-group"] == "cpu-workers"
    assert dict(node.total_resources)["CPU"] == 1.0
    assert dict(node.total_resources)["memory"] == float(2**30)


async def test_raylet_stops_when_the_pod_is_deleted(cluster: SimCluster) -> None:
    runtime = cluster.ray
    assert isinstance(runtime, RealRayRuntime)
    pod = _worker(cluster)
    assert pod is not None
    name = pod["metadata"]["name"]
    proc = runtime.raylets[("default", name)]
    rc = cluster.raycluster("real")
    rc["spec"]["workerGroupSpecs"][0]["replicas"] = 0
    rc["spec"]["workerGroupSpecs"][0]["scaleStrategy"] = {"workersToDelete": [name]}
    cluster.store.update("rayclusters", rc)
    assert await cluster.wait_for(lambda: not cluster.pods("real", "cpu-workers"), 10)
    assert ("default", name) not in runtime.raylets
    assert await _until(lambda: proc.poll() is not None, 30)
    assert await _until(lambda: name not in _alive(runtime.address), 60)


async def test_head_whose_port_was_taken_restarts_on_a_fresh_port_and_serves() -> None:
    """The port is only free when picked; a head that cannot bind it must not leave a dead address."""
    import socket

    runtime = RealRayRuntime(object_store_memory=80 * 2**20)
    taken = runtime.port
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", taken))
    squatter.listen()  # something else listens there: connecting succeeds, but it is not a GCS
    try:
        await runtime.start_head()
        assert runtime.port != taken
        assert runtime.address == f"127.0.0.1:{runtime.port}"
        assert "head" in await asyncio.get_running_loop().run_in_executor(None, _alive, runtime.address)
    finally:
        squatter.close()
        await runtime.close()
