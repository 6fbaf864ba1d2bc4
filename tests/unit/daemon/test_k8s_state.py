"""Kubernetes dicts → model: resize conditions, accounting rule, groups, QoS."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from autoscaler import annotations as ann
from autoscaler.model import CPU, GPU, MEMORY, InFlightResize, QoSClass, ResizeState, Resources
from autoscaler.observe.k8s_state import (
    compute_qos,
    desired_replicas,
    group_states,
    node_state,
    pod_accounted_requests,
    pod_state,
)

GI = 2**30


def worker_pod(**over: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {
            "name": "rc-cpu-worker-abcde", "namespace": "ray", "generation": 2,
            "labels": {"ray.io/cluster": "rc", "ray.io/group": "cpu", "ray.io/node-type": "worker"},
            "creationTimestamp": "2026-11-25T10:00:00Z",
            "annotations": {},
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{
                "name": "ray-worker", "image": "rayproject/ray:2.60.0",
                "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
                "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                                 {"resourceName": "memory", "restartPolicy": "NotRequired"}],
            }],
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable", "observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-25T10:00:30Z"}],
            "containerStatuses": [{
                "name": "ray-worker", "restartCount": 1,
                "allocatedResources": {"cpu": "2", "memory": "4Gi"},
                "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
            }],
        },
    }
    for k, v in over.items():
        pod[k] = v
    return pod


def test_pod_state_reads_sizes_and_identity() -> None:
    s = pod_state(worker_pod())
    assert s.name == "rc-cpu-worker-abcde" and s.group == "cpu" and s.node_name == "node-1"
    assert s.requests == Resources.of(cpu=2000, memory=4 * GI)
    assert s.limits == Resources.of(cpu=4000, memory=4 * GI)
    assert s.allocated == s.requests and s.actual_limits == s.limits
    assert s.qos is QoSClass.BURSTABLE and s.resizable and s.restart_count == 1
    assert s.generation == 2 and s.observed_generation == 2
    assert s.resize_state is ResizeState.NONE and s.in_flight is None
    assert s.started_at == pytest.approx(1795600830.0)


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ([{"type": "PodResizePending", "status": "True", "reason": "Deferred", "message": "m"}], ResizeState.DEFERRED),
        ([{"type": "PodResizePending", "status": "True", "reason": "Infeasible", "message": "m"}],
         ResizeState.INFEASIBLE),
        ([{"type": "PodResizeInProgress", "status": "True", "reason": "", "message": ""}], ResizeState.IN_PROGRESS),
        ([{"type": "PodResizeInProgress", "status": "True", "reason": "Error", "message": "memory limit (1) below"}],
         ResizeState.ERROR),
        # Both may coexist: the pending (newer desired state) is what needs handling first.
        ([{"type": "PodResizeInProgress", "status": "True", "reason": "Error"},
          {"type": "PodResizePending", "status": "True", "reason": "Deferred"}], ResizeState.DEFERRED),
    ],
)
def test_resize_state_from_conditions(conditions: list[dict[str, str]], state: ResizeState) -> None:
    pod = worker_pod()
    pod["status"]["conditions"] = conditions
    assert pod_state(pod).resize_state is state


def test_restart_container_policy_is_not_resizable() -> None:
    pod = worker_pod()
    pod["spec"]["containers"][0]["resizePolicy"][1]["restartPolicy"] = "RestartContainer"
    assert pod_state(pod).resizable is False


def test_in_flight_record_round_trips_through_the_annotation() -> None:
    rec = InFlightResize(
        target_requests=Resources.of(cpu=3000, memory=4 * GI), target_limits=Resources.of(cpu=5000, memory=4 * GI),
        previous_requests=Resources.of(cpu=2000, memory=4 * GI), previous_limits=Resources.of(cpu=4000, memory=4 * GI),
        started_at=123.5, generation=3, reason="DemandFitsInPlace",
    )
    pod = worker_pod()
    pod["metadata"]["annotations"] = {ann.IN_FLIGHT: ann.encode_in_flight(rec), ann.LAST_RESIZE: "100.0"}
    s = pod_state(pod)
    assert s.in_flight == rec and s.last_resized_at == 100.0
    pod["metadata"]["annotations"][ann.IN_FLIGHT] = "{not json"
    assert pod_state(pod).in_flight is None  # unreadable record = absent, never a crash


def test_accounting_uses_max_of_desired_allocated_actual() -> None:
    pod = worker_pod()
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "3"  # desired > allocated
    assert pod_accounted_requests(pod) == Resources.of(cpu=3000, memory=4 * GI)
    # Infeasible: the desired value is not counted (KEP-1287 §Scheduler and API Server Interaction)
    pod["status"]["conditions"].append({"type": "PodResizePending", "status": "True", "reason": "Infeasible"})
    assert pod_accounted_requests(pod) == Resources.of(cpu=2000, memory=4 * GI)
    # downsize in progress: the larger actual still counts
    pod2 = worker_pod()
    pod2["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1"
    assert pod_accounted_requests(pod2).get(CPU) == 2000


def test_accounting_counts_sidecars_and_init_max() -> None:
    pod = worker_pod()
    pod["spec"]["initContainers"] = [
        {"name": "agent", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
        {"name": "setup", "resources": {"requests": {"cpu": "8", "memory": "1Gi"}}},
    ]
    total = pod_accounted_requests(pod)
    assert total.get(CPU) == 8000  # the init container's peak dominates cpu
    assert total.get(MEMORY) == 4 * GI + 64 * 2**20


def test_finished_pods_count_nothing() -> None:
    pod = worker_pod()
    pod["status"]["phase"] = "Succeeded"
    assert pod_accounted_requests(pod) == Resources()


def test_node_state_sums_all_pods() -> None:
    node = {"metadata": {"name": "node-1", "labels": {"zone": "a"}},
            "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "1"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}
    other = worker_pod()
    other["metadata"]["labels"] = {}
    n = node_state(node, [worker_pod(), other])
    assert n.allocatable == Resources.of(cpu=16000, memory=64 * GI, gpu=1000)
    assert n.used == Resources.of(cpu=4000, memory=8 * GI)
    assert n.free() == Resources.of(cpu=12000, memory=56 * GI, gpu=1000) and n.ready


@pytest.mark.parametrize(
    ("group", "expected"),
    [  # KubeRay's TestGetWorkerGroupDesiredReplicas (reference §6 case 13), in replicas not pods
        ({"minReplicas": 1, "maxReplicas": 5}, 1),
        ({"minReplicas": 1, "maxReplicas": 5, "replicas": 3}, 3),
        ({"minReplicas": 1, "maxReplicas": 5, "replicas": 6}, 5),
        ({"minReplicas": 1, "maxReplicas": 5, "replicas": 0}, 1),
        ({"minReplicas": 5, "maxReplicas": 1, "replicas": 3}, 1),
        ({"minReplicas": 1, "maxReplicas": 5, "replicas": 3, "suspend": True}, 0),
    ],
)
def test_desired_replicas(group: dict[str, Any], expected: int) -> None:
    assert desired_replicas(group) == expected


def raycluster() -> dict[str, Any]:
    c0 = {"name": "ray-worker", "resources": {"requests": {"cpu": "1500m", "memory": "4Gi"},
                                              "limits": {"cpu": "1500m", "memory": "4Gi", "nvidia.com/gpu": "1"}}}
    return {
        "metadata": {"name": "rc", "namespace": "ray"},
        "spec": {"workerGroupSpecs": [
            {"groupName": "cpu", "replicas": 2, "minReplicas": 0, "maxReplicas": 10,
             "template": {"spec": {"containers": [{"name": "ray-worker", "resources": {
                 "requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}}]}}},
            {"groupName": "l4-spot", "labels": {"ray.io/market-type": "spot"}, "numOfHosts": 2, "priority": 5,
             "scaleStrategy": {"workersToDelete": ["x"]}, "resources": {"disk": "2"},
             "template": {"spec": {"containers": [copy.deepcopy(c0)]}}},
        ]},
    }


def test_group_states_read_labels_ray_resources_and_bounds() -> None:
    cpu, gpu = group_states(raycluster(), {"l4-spot": 99.0})
    assert cpu.labels == {"ray.io/node-group": "cpu"} and cpu.replicas == 2 and cpu.max_replicas == 10
    # KubeRay renders --num-cpus from the limit (whole cores) and --memory from the limit.
    assert cpu.ray_resources == Resources.of(cpu=4000, memory=8 * GI)
    assert cpu.template_requests == Resources.of(cpu=2000, memory=8 * GI) and not cpu.has_gpu()
    assert gpu.labels == {"ray.io/market-type": "spot", "ray.io/node-group": "l4-spot"}
    assert gpu.ray_resources == Resources.of(cpu=2000, memory=4 * GI, gpu=1000, disk=2000)
    assert gpu.num_of_hosts == 2 and gpu.priority == 5 and gpu.workers_to_delete == ("x",)
    assert gpu.stocked_out_until == 99.0 and gpu.has_gpu() and gpu.index == 1
    assert gpu.ray_resources.get(GPU) == 1000


def test_qos_rule() -> None:
    g = [{"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]
    assert compute_qos(g) is QoSClass.GUARANTEED
    assert compute_qos([{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]) is QoSClass.GUARANTEED
    assert compute_qos([{"resources": {"requests": {"cpu": "1"}}}]) is QoSClass.BURSTABLE
    assert compute_qos([{"resources": {}}]) is QoSClass.BEST_EFFORT
