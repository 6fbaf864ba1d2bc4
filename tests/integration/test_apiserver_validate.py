"""Everything the sim stores is a valid Kubernetes object: Pods per kubernetes-validate (strict, 1.33 and
1.35), RayClusters per rva's schema and the real KubeRay CRD (tests/kuberay_crd.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autoscaler.sim.schemas import raycluster_schema
from autoscaler.sim.store import ObjectStore
from tests.kuberay_crd import raycluster_validator

kv = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

SMP = "application/strategic-merge-patch+json"


def _pod(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ray", "labels": {
        "ray.io/cluster": "rc", "ray.io/node-type": "worker"}},
            "spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.60.0",
                                     "resources": {"requests": {"cpu": 1.5, "memory": "2Gi"},
                                                   "limits": {"cpu": "2000m", "memory": 4294967296}},
                                     "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]}],
                     **extra}}


def _rc() -> dict[str, Any]:
    tmpl = {"metadata": {"labels": {"app": "ray"}}, "spec": {"containers": [{
        "name": "ray-worker", "image": "rayproject/ray:2.60.0",
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": 2, "memory": "4Gi"}},
        "resizePolicy": [{"resourceName": "memory", "restartPolicy": "NotRequired"}]}]}}
    return {"apiVersion": "ray.io/v1", "kind": "RayCluster",
            "metadata": {"name": "rc", "namespace": "ray", "annotations": {"rva.dev/managed": "true"}},
            "spec": {"rayVersion": "2.60.0", "enableInTreeAutoscaling": False,
                     "headGroupSpec": {"rayStartParams": {}, "template": tmpl},
                     "workerGroupSpecs": [{"groupName": "gpu-spot", "replicas": 1, "minReplicas": 0, "maxReplicas": 8,
                                           "labels": {"ray.io/market-type": "spot"}, "rayStartParams": {},
                                           "template": tmpl}]}}


def _stored_objects() -> list[tuple[str, dict[str, Any]]]:
    """Drive pods and a RayCluster through every write path and keep each committed object."""
    store = ObjectStore(server_minor=34)
    seen: list[tuple[str, dict[str, Any]]] = []
    store.add_listener(lambda t, r, o: seen.append((r, json.loads(json.dumps(o)))))
    store.create("pods", _pod("w1"))
    store.create("pods", {**_pod(""), "metadata": {"generateName": "rc-gpu-worker-", "namespace": "ray"}})
    store.bind("ray", "w1", "node-1")
    store.patch("pods", "ray", "w1", {"spec": {"containers": [
        {"name": "ray-worker", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "3"}}}]}}, SMP, "resize")
    pod = store.get("pods", "ray", "w1")
    pod["status"].update({
        "phase": "Running", "observedGeneration": 2, "hostIP": "10.0.0.1", "podIP": "10.1.0.5",
        "startTime": "2026-11-25T00:00:00Z",
        "conditions": [{"type": "PodResizeInProgress", "status": "True", "observedGeneration": 2,
                        "lastProbeTime": None, "lastTransitionTime": "2026-11-25T00:00:00Z"}],
        "containerStatuses": [{"name": "ray-worker", "ready": True, "restartCount": 0, "started": True,
                               "image": "rayproject/ray:2.60.0", "imageID": "", "containerID": "sim://1",
                               "state": {"running": {"startedAt": "2026-11-25T00:00:00Z"}},
                               "allocatedResources": {"cpu": "2000m", "memory": "2Gi"},
                               "resources": {"requests": {"cpu": "1500m", "memory": "2Gi"},
                                             "limits": {"cpu": "2", "memory": "4Gi"}}}]})
    store.update("pods", pod, "status")
    store.delete("pods", "ray", "w1")
    store.create("rayclusters", _rc())
    store.patch("rayclusters", "ray", "rc", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas",
                                              "value": 3}], "application/json-patch+json")
    store.patch("rayclusters", "ray", "rc", {"status": {"desiredWorkerReplicas": 3, "readyWorkerReplicas": 1,
                                                        "observedGeneration": 2}},
                "application/merge-patch+json", "status")
    return seen


@pytest.mark.parametrize("version", ["1.33", "1.35"])
def test_every_stored_pod_validates_strictly(version: str) -> None:
    pods = [o for r, o in _stored_objects() if r == "pods"]
    assert len(pods) >= 5
    for pod in pods:
        kv.validate(pod, version, strict=True)


def test_every_stored_raycluster_matches_the_project_schema() -> None:
    validator = jsonschema.Draft7Validator(raycluster_schema())
    rcs = [o for r, o in _stored_objects() if r == "rayclusters"]
    assert len(rcs) == 3
    for rc in rcs:
        assert list(validator.iter_errors(rc)) == []


def test_every_stored_raycluster_matches_the_real_crd() -> None:
    validator = raycluster_validator(strict=True)
    for rc in (o for r, o in _stored_objects() if r == "rayclusters"):
        body = {k: v for k, v in rc.items()}
        body["metadata"] = {k: v for k, v in rc["metadata"].items()}
        assert [e.message for e in validator.iter_errors(body)] == []
    bad = _rc()
    bad["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    assert list(validator.iter_errors(bad))
