"""Simulated KubeRay operator: reference §6 cases 13 and 14, naming, labels, env, deletion rules, status."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.sim.clock import VirtualClock
from autoscaler.sim.cluster import SimCluster
from autoscaler.sim.kuberay import (
    INT32_MAX,
    apply_crd_defaults,
    desired_worker_pods,
    parse_ray_start_command,
    pod_generate_name,
    render_labels,
    resolve_env,
)
from autoscaler.sim.nodepools import NodePool


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ({"minReplicas": 1, "maxReplicas": 5}, 1),
        ({"minReplicas": 1, "maxReplicas": 5, "replicas": 3}, 3),
        ({"minReplicas": 1, "maxReplicas": 5, "replicas": 6}, 5),
        ({"minReplicas": 1, "maxReplicas": 5, "replicas": 0}, 1),
        ({"minReplicas": 5, "maxReplicas": 1, "replicas": 3}, 1),
        ({"minReplicas": 1, "maxReplicas": 5, "replicas": 3, "suspend": True}, 0),
        ({"minReplicas": 1, "maxReplicas": 5, "replicas": 5, "numOfHosts": 4}, 20),
    ],
)
def test_case13_desired_replicas(group: dict[str, Any], expected: int) -> None:
    assert desired_worker_pods(group) == expected


def test_crd_defaults_and_generate_name() -> None:
    rc = apply_crd_defaults({"spec": {"workerGroupSpecs": [{"groupName": "g"}]}})
    g = rc["spec"]["workerGroupSpecs"][0]
    assert (g["replicas"], g["minReplicas"], g["maxReplicas"], g["numOfHosts"]) == (0, 0, INT32_MAX, 1)
    assert pod_generate_name("raycluster-ippr-small-group", "worker") == "raycluster-ippr-small-group-worker-"
    long = "c" * 40 + "-" + "g" * 20
    assert pod_generate_name(long, "worker") == long[:50] + "-worker-"
    assert render_labels({"b": "2", "a": "1"}) == "a=1,b=2"


def _raycluster(name: str = "rc", replicas: int = 2, **group_extra: Any) -> dict[str, Any]:
    container = {
        "name": "ray-worker",
        "image": "rayproject/ray:2.60.0",
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    }
    group = {
        "groupName": "cpu",
        "replicas": replicas,
        "minReplicas": 0,
        "maxReplicas": 10,
        "rayStartParams": {},
        "template": {"metadata": {"labels": {"app": "demo"}}, "spec": {"containers": [container]}},
        **group_extra,
    }
    head = {"rayStartParams": {}, "template": {"spec": {"containers": [dict(container, name="ray-head")]}}}
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"headGroupSpec": head, "workerGroupSpecs": [group]},
    }


async def _cluster() -> SimCluster:
    cluster = SimCluster(VirtualClock(), pools=[NodePool("cpu", cpu="16", memory="64Gi", initial_nodes=2)])
    await cluster.start()
    return cluster


def _workers(cluster: SimCluster) -> list[dict[str, Any]]:
    return [p for p in cluster.pods("rc") if p["metadata"]["labels"]["ray.io/node-type"] == "worker"]


async def test_case14_labels_naming_env_and_start_command() -> None:
    cluster = await _cluster()
    cluster.create_raycluster(_raycluster(labels={"b": "2", "a": "1", "app": "group-wins"}))
    await cluster.run_for(1)
    workers = _workers(cluster)
    assert len(workers) == 2
    pod = workers[0]
    name = pod["metadata"]["name"]
    assert name.startswith("rc-cpu-worker-") and len(name) == len("rc-cpu-worker-") + 5
    labels = pod["metadata"]["labels"]
    assert {k: labels[k] for k in ("a", "b", "app")} == {"a": "1", "b": "2", "app": "group-wins"}
    assert labels["ray.io/cluster"] == "rc"
    assert labels["ray.io/node-type"] == "worker"
    assert labels["ray.io/group"] == "cpu"
    assert labels["ray.io/is-ray-node"] == "yes"
    assert labels["ray.io/identifier"] == "rc-worker"
    assert labels["app.kubernetes.io/name"] == "kuberay"
    assert labels["app.kubernetes.io/created-by"] == "kuberay-operator"
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_CLOUD_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    resolved = resolve_env(pod, container)
    assert resolved["RAY_CLOUD_INSTANCE_ID"] == name
    assert resolved["RAY_NODE_TYPE_NAME"] == "cpu"
    params = parse_ray_start_command(resolved["KUBERAY_GEN_RAY_START_CMD"])
    assert params["labels"] == "a=1,app=group-wins,b=2"
    assert params["num-cpus"] == "2" and params["memory"] == str(2 * 2**30)
    head = [p for p in cluster.pods("rc") if p["metadata"]["labels"]["ray.io/node-type"] == "head"]
    assert head[0]["metadata"]["name"].startswith("rc-head-")
    assert head[0]["metadata"]["labels"]["ray.io/group"] == "headgroup"
    await cluster.stop()


async def test_case14_user_labels_in_ray_start_params_are_rejected() -> None:
    cluster = await _cluster()
    cluster.create_raycluster(_raycluster(rayStartParams={"labels": "x=y"}))
    await cluster.run_for(1)
    assert cluster.pods("rc") == []
    events = [e for e in cluster.store.list("events")[0] if e["reason"] == "InvalidRayClusterSpec"]
    assert len(events) == 1 and events[0]["type"] == "Warning"
    assert events[0]["message"] == (
        "The RayCluster spec is invalid default/rc: rayStartParams['labels'] is not supported for cpu group; "
        "please use the top-level Labels field instead"
    )
    await cluster.stop()


async def test_status_counts_and_observed_generation() -> None:
    cluster = await _cluster()
    cluster.create_raycluster(_raycluster(replicas=3))
    await cluster.run_for(30)
    status = cluster.raycluster("rc")["status"]
    assert status["desiredWorkerReplicas"] == 3
    assert status["availableWorkerReplicas"] == 3
    assert status["readyWorkerReplicas"] == 3
    assert status["observedGeneration"] == 1
    assert status["maxWorkerReplicas"] == 10
    assert status["state"] == "ready"
    await cluster.stop()


async def _scale(cluster: SimCluster, replicas: int, delete: list[str]) -> None:
    rc = cluster.raycluster("rc")
    rc["spec"]["workerGroupSpecs"][0]["replicas"] = replicas
    rc["spec"]["workerGroupSpecs"][0]["scaleStrategy"] = {"workersToDelete": delete}
    cluster.store.update("rayclusters", rc)
    await cluster.run_for(0)


async def test_workers_to_delete_honoured_and_cleared_even_with_in_tree_autoscaling() -> None:
    cluster = await _cluster()
    body = _raycluster(replicas=3)
    body["spec"]["enableInTreeAutoscaling"] = True
    cluster.create_raycluster(body)
    await cluster.run_for(30)
    victim = sorted(p["metadata"]["name"] for p in _workers(cluster))[1]
    await _scale(cluster, 2, [victim])
    gone = cluster.store.get("pods", "default", victim)
    assert gone["metadata"].get("deletionTimestamp")  # graceful: the kubelet removes it shortly
    await cluster.run_for(5)
    names = {p["metadata"]["name"] for p in _workers(cluster)}
    assert victim not in names and len(names) == 2
    group = cluster.raycluster("rc")["spec"]["workerGroupSpecs"][0]
    assert group["scaleStrategy"]["workersToDelete"] == []
    # In-tree autoscaling on: lowering replicas alone never deletes pods.
    await _scale(cluster, 1, [])
    await cluster.run_for(5)
    assert len(_workers(cluster)) == 2
    deleted = [e for e in cluster.store.list("events")[0] if e["reason"] == "DeletedWorkerPod"]
    assert [e["message"] for e in deleted] == [f"Deleted pod default/{victim}"]
    await cluster.stop()


async def test_random_deletion_when_autoscaling_off_is_seeded_and_never_twice() -> None:
    survivors = []
    for _ in range(2):
        cluster = await _cluster()
        cluster.create_raycluster(_raycluster(replicas=4))
        await cluster.run_for(30)
        await _scale(cluster, 2, [])
        await _scale(cluster, 2, [])  # a second reconcile while the first deletions are terminating
        await cluster.run_for(5)
        names = sorted(p["metadata"]["name"] for p in _workers(cluster))
        assert len(names) == 2
        deleted = [e for e in cluster.store.list("events")[0] if e["reason"] == "DeletedWorkerPod"]
        assert len(deleted) == 2
        survivors.append(names)
        await cluster.stop()
    assert survivors[0] == survivors[1]


async def test_scale_up_creates_missing_pods_and_deleted_cluster_removes_pods() -> None:
    cluster = await _cluster()
    cluster.create_raycluster(_raycluster(replicas=1))
    await cluster.run_for(10)
    await _scale(cluster, 3, [])
    await cluster.run_for(10)
    assert len(_workers(cluster)) == 3
    cluster.store.delete("rayclusters", "default", "rc")
    await cluster.run_for(10)
    assert cluster.pods("rc") == []
    await cluster.stop()


async def test_failed_worker_is_deleted_and_replaced() -> None:
    cluster = SimCluster(VirtualClock())  # no nodes: the kubelet never owns these pods' phase
    await cluster.start()
    cluster.create_raycluster(_raycluster(replicas=1))
    await cluster.run_for(10)
    pod = _workers(cluster)[0]
    pod["status"]["phase"] = "Failed"
    cluster.store.update("pods", pod, subresource="status")
    await cluster.run_for(10)
    workers = _workers(cluster)
    assert len(workers) == 1 and workers[0]["metadata"]["name"] != pod["metadata"]["name"]
    deleted = [e["message"] for e in cluster.store.list("events")[0] if e["reason"] == "DeletedWorkerPod"]
    name = pod["metadata"]["name"]
    assert deleted and deleted[0].startswith(f"Deleted worker Pod default/{name}; Pod status: Failed")
    await cluster.stop()
