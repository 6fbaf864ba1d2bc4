"""ObjectStore: the generic registry rules every simulated writer goes through."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.sim.store import ApiError, ObjectStore


def _pod(name: str, labels: dict[str, str] | None = None, **res: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ray", "labels": labels or {}},
        "spec": {"containers": [{"name": "ray", "image": "rayproject/ray:2.60.0", "resources": res}]},
    }


_TEMPLATE = {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.60.0"}]}}


def _rc(name: str = "rc", **group: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ray"}, "spec": {
        "headGroupSpec": {"template": _TEMPLATE},
        "workerGroupSpecs": [{"groupName": "g", "template": _TEMPLATE, **group}]}}


@pytest.fixture
def store() -> ObjectStore:
    return ObjectStore(server_minor=34, clock=lambda: 1_764_000_000.0)


def test_create_sets_system_fields_and_pod_defaults(store: ObjectStore) -> None:
    pod = store.create("pods", _pod("w1", limits={"cpu": "2000m", "memory": "2048Mi"}))
    meta = pod["metadata"]
    assert meta["resourceVersion"] == "1" and meta["generation"] == 1 and len(meta["uid"]) == 36
    assert meta["creationTimestamp"] == "2025-11-24T16:00:00Z"
    assert pod["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}
    c = pod["spec"]["containers"][0]
    assert c["resources"] == {"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "2", "memory": "2Gi"}}
    assert "resizePolicy" not in c  # no default resizePolicy entries
    assert pod["spec"]["restartPolicy"] == "Always" and c["imagePullPolicy"] == "IfNotPresent"


def test_create_duplicate_is_409_already_exists(store: ObjectStore) -> None:
    store.create("pods", _pod("w1"))
    with pytest.raises(ApiError) as e:
        store.create("pods", _pod("w1"))
    assert e.value.to_status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'pods "w1" already exists', "reason": "AlreadyExists",
        "details": {"name": "w1", "kind": "pods"}, "code": 409,
    }


def test_generate_name_is_deterministic_per_seed() -> None:
    names = []
    for _ in range(2):
        s = ObjectStore(seed=7)
        obj = _pod("")
        obj["metadata"] = {"generateName": "rc-gpu-worker-", "namespace": "ray"}
        names.append(s.create("pods", obj)["metadata"]["name"])
    assert names[0] == names[1] and names[0].startswith("rc-gpu-worker-") and len(names[0]) == 19


def test_missing_name_is_422(store: ObjectStore) -> None:
    with pytest.raises(ApiError) as e:
        store.create("configmaps", {"metadata": {"namespace": "ray"}, "data": {}})
    assert e.value.code == 422
    assert e.value.message == 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'


def test_get_missing_is_404_with_group_for_custom_resources(store: ObjectStore) -> None:
    with pytest.raises(ApiError) as e:
        store.get("rayclusters", "ray", "rc")
    assert e.value.code == 404 and e.value.message == 'rayclusters.ray.io "rc" not found'
    assert e.value.details == {"name": "rc", "group": "ray.io", "kind": "rayclusters"}


def test_update_with_stale_resource_version_is_409(store: ObjectStore) -> None:
    cm = store.create("configmaps", {"metadata": {"name": "policy", "namespace": "ray"}, "data": {"a": "1"}})
    cm["data"]["a"] = "2"
    store.update("configmaps", cm)
    cm["data"]["a"] = "3"
    with pytest.raises(ApiError) as e:
        store.update("configmaps", cm)
    assert e.value.code == 409 and e.value.reason == "Conflict"
    assert e.value.message == ('Operation cannot be fulfilled on configmaps "policy": the object has been modified; '
                               "please apply your changes to the latest version and try again")


def test_noop_write_keeps_resource_version_and_emits_nothing(store: ObjectStore) -> None:
    events: list[str] = []
    store.add_listener(lambda t, r, o: events.append(t))
    cm = store.create("configmaps", {"metadata": {"name": "p", "namespace": "ray"}, "data": {"a": "1"}})
    again = store.update("configmaps", cm)
    assert again["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]
    assert events == ["ADDED"]


def test_status_subresource_changes_only_status(store: ObjectStore) -> None:
    pod = store.create("pods", _pod("w1", requests={"cpu": "1"}))
    pod["metadata"]["labels"] = {"sneaky": "yes"}
    pod["status"]["phase"] = "Running"
    out = store.update("pods", pod, subresource="status")
    assert out["status"]["phase"] == "Running" and out["metadata"]["labels"] == {}
    assert out["metadata"]["generation"] == 1


def test_pod_status_update_cannot_change_qos_class(store: ObjectStore) -> None:
    pod = store.create("pods", _pod("w1", requests={"cpu": "1"}))
    pod["status"]["qosClass"] = "Guaranteed"
    with pytest.raises(ApiError) as e:
        store.update("pods", pod, subresource="status")
    assert e.value.message == 'Pod "w1" is invalid: status.qosClass: Invalid value: "Guaranteed": field is immutable'


def test_main_resource_update_ignores_status(store: ObjectStore) -> None:
    pod = store.create("pods", _pod("w1"))
    pod["status"]["phase"] = "Running"
    pod["metadata"]["labels"] = {"a": "b"}
    out = store.update("pods", pod)
    assert out["status"]["phase"] == "Pending" and out["metadata"]["labels"] == {"a": "b"}


def test_custom_resource_generation_bumps_on_spec_change_only(store: ObjectStore) -> None:
    rc = store.create("rayclusters", {**_rc(replicas=1), "status": {"ignored": True}})
    assert rc["metadata"]["generation"] == 1 and "status" not in rc
    # CRD structural defaults are applied by the server.
    assert rc["spec"]["workerGroupSpecs"][0]["maxReplicas"] == 2147483647
    rc = store.patch("rayclusters", "ray", "rc", [{"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas",
                                                   "value": 3}], "application/json-patch+json")
    assert rc["metadata"]["generation"] == 2
    rc = store.patch("rayclusters", "ray", "rc", {"status": {"desiredWorkerReplicas": 3}},
                     "application/merge-patch+json", subresource="status")
    assert rc["metadata"]["generation"] == 2 and rc["status"] == {"desiredWorkerReplicas": 3}


def test_custom_resources_refuse_strategic_merge_with_415(store: ObjectStore) -> None:
    store.create("rayclusters", _rc())
    with pytest.raises(ApiError) as e:
        store.patch("rayclusters", "ray", "rc", {"spec": {}}, "application/strategic-merge-patch+json")
    assert e.value.code == 415 and e.value.reason == "UnsupportedMediaType"


def test_raycluster_schema_violations_are_422(store: ObjectStore) -> None:
    with pytest.raises(ApiError) as e:
        store.create("rayclusters", {"metadata": {"name": "bad", "namespace": "ray"}, "spec": {
            "headGroupSpec": {"template": _TEMPLATE},
            "workerGroupSpecs": [{"groupName": "g", "replicas": "two", "template": _TEMPLATE}]}})
    assert e.value.code == 422
    assert e.value.message == (
        'RayCluster.ray.io "bad" is invalid: spec.workerGroupSpecs[0].replicas: Invalid value: "string": '
        'spec.workerGroupSpecs[0].replicas in body must be of type integer: "string"')


def test_unknown_patch_type_is_415(store: ObjectStore) -> None:
    store.create("pods", _pod("w1"))
    with pytest.raises(ApiError) as e:
        store.patch("pods", "ray", "w1", b"{}", "application/json")
    assert e.value.code == 415


def test_patch_carrying_a_stale_resource_version_is_409(store: ObjectStore) -> None:
    store.create("pods", _pod("w1"))
    with pytest.raises(ApiError) as e:
        store.patch("pods", "ray", "w1", {"metadata": {"resourceVersion": "999", "labels": {"a": "b"}}},
                    "application/merge-patch+json")
    assert e.value.code == 409


def test_list_with_label_and_field_selectors(store: ObjectStore) -> None:
    store.create("pods", _pod("a", {"ray.io/group": "cpu", "tier": "spot"}))
    store.create("pods", _pod("b", {"ray.io/group": "gpu"}))
    store.create("pods", _pod("c", {"ray.io/group": "gpu", "tier": "ondemand"}))
    store.bind("ray", "c", "node-1")

    def names(**kw: str) -> list[str]:
        return [p["metadata"]["name"] for p in store.list("pods", "ray", **kw)[0]]

    assert names(label_selector="ray.io/group=gpu") == ["b", "c"]
    assert names(label_selector="ray.io/group==gpu,tier") == ["c"]
    assert names(label_selector="!tier") == ["b"]
    assert names(label_selector="tier notin (spot)") == ["b", "c"]
    assert names(label_selector="tier in (spot,ondemand),ray.io/group!=gpu") == ["a"]
    assert names(field_selector="spec.nodeName=node-1") == ["c"]
    assert names(field_selector="spec.nodeName=,status.phase=Pending") == ["a", "b"]
    assert names(field_selector="metadata.name!=a") == ["b", "c"]
    with pytest.raises(ApiError) as e:
        names(field_selector="spec.bogus=1")
    assert e.value.code == 400 and e.value.message == "field label not supported: spec.bogus"


def test_bind_sets_node_once(store: ObjectStore) -> None:
    store.create("pods", _pod("w1"))
    pod = store.bind("ray", "w1", "n1")
    assert pod["spec"]["nodeName"] == "n1"
    assert pod["status"]["conditions"][0]["type"] == "PodScheduled"
    with pytest.raises(ApiError) as e:
        store.bind("ray", "w1", "n2")
    assert e.value.code == 409


def test_plain_update_cannot_set_node_name(store: ObjectStore) -> None:
    pod = store.create("pods", _pod("w1"))
    pod["spec"]["nodeName"] = "n1"
    with pytest.raises(ApiError) as e:
        store.update("pods", pod)
    assert e.value.code == 422 and "pod updates may not change fields other than" in e.value.message


def test_plain_update_may_change_image_and_bumps_generation(store: ObjectStore) -> None:
    pod = store.create("pods", _pod("w1"))
    pod["spec"]["containers"][0]["image"] = "rayproject/ray:2.61.0"
    assert store.update("pods", pod)["metadata"]["generation"] == 2


def test_delete_returns_object_and_emits_deleted_at_new_rv(store: ObjectStore) -> None:
    seen: list[tuple[str, str]] = []
    store.add_listener(lambda t, r, o: seen.append((t, o["metadata"]["resourceVersion"])))
    store.create("pods", _pod("w1"))
    gone = store.delete("pods", "ray", "w1")
    assert gone["metadata"]["name"] == "w1" and seen == [("ADDED", "1"), ("DELETED", "2")]
    with pytest.raises(ApiError):
        store.get("pods", "ray", "w1")


def test_graceful_pod_deletion_waits_for_the_kubelet() -> None:
    store = ObjectStore(graceful_pod_deletion=True, clock=lambda: 0.0)
    store.create("pods", _pod("w1"))
    store.bind("ray", "w1", "n1")
    pod = store.delete("pods", "ray", "w1")
    assert pod["metadata"]["deletionTimestamp"] == "1970-01-01T00:00:30Z"
    assert pod["metadata"]["generation"] == 2
    store.delete("pods", "ray", "w1", grace_period_seconds=0)
    assert store.list("pods")[0] == []


def test_listener_sees_events_in_commit_order_even_when_writing(store: ObjectStore) -> None:
    order: list[tuple[str, str]] = []

    def controller(t: str, r: str, o: dict[str, Any]) -> None:
        order.append(("ctl", o["metadata"]["resourceVersion"]))
        if r == "pods" and t == "ADDED":  # a controller writing from inside a notification
            store.update("pods", {**o, "status": {**o["status"], "phase": "Running"}}, subresource="status")

    store.add_listener(controller)
    store.add_listener(lambda t, r, o: order.append(("log", o["metadata"]["resourceVersion"])))
    store.create("pods", _pod("w1"))
    assert order == [("ctl", "1"), ("log", "1"), ("ctl", "2"), ("log", "2")]


def test_listener_errors_do_not_fail_writes(store: ObjectStore) -> None:
    def broken(t: str, r: str, o: dict[str, Any]) -> None:
        raise RuntimeError("boom")

    store.add_listener(broken)
    store.create("configmaps", {"metadata": {"name": "x", "namespace": "ray"}})
    assert len(store.listener_errors) == 1


async def test_watch_resume_and_expiry() -> None:
    store = ObjectStore(history_size=3)
    for i in range(5):
        store.create("configmaps", {"metadata": {"name": f"c{i}", "namespace": "ray"}})
    w = store.watch("configmaps", "ray", resource_version="3")
    got = [await w.next(0.1), await w.next(0.1)]
    assert [(t, o["metadata"]["name"]) for t, o in got if o] == [("ADDED", "c3"), ("ADDED", "c4")]
    with pytest.raises(ApiError) as e:
        store.watch("configmaps", "ray", resource_version="1")
    assert e.value.code == 410 and e.value.reason == "Expired"
    assert e.value.message == "too old resource version: 1 (2)"


async def test_watch_label_selector_turns_unselect_into_deleted() -> None:
    store = ObjectStore()
    store.create("pods", _pod("w1", {"ray.io/group": "gpu"}))
    w = store.watch("pods", "ray", label_selector="ray.io/group=gpu")
    assert (await w.next(0.1) or ("", {}))[0] == "ADDED"
    store.patch("pods", "ray", "w1", {"metadata": {"labels": {"ray.io/group": "cpu"}}},
                "application/merge-patch+json")
    ev = await w.next(0.1)
    assert ev is not None and ev[0] == "DELETED" and ev[1]["metadata"]["resourceVersion"] == "2"
    store.patch("pods", "ray", "w1", {"metadata": {"labels": {"ray.io/group": "gpu"}}},
                "application/merge-patch+json")
    ev = await w.next(0.1)
    assert ev is not None and ev[0] == "ADDED"
    w.close()
    assert await w.next(0.01) is None


def test_nodes_are_cluster_scoped_with_canonical_capacity(store: ObjectStore) -> None:
    node = store.create("nodes", {"metadata": {"name": "n1", "namespace": "ignored"},
                                  "status": {"allocatable": {"cpu": "4000m", "memory": "4096Mi"}}})
    assert "namespace" not in node["metadata"]
    assert node["status"]["allocatable"] == {"cpu": "4", "memory": "4Gi"}
    assert store.get("nodes", None, "n1")["metadata"]["name"] == "n1"


def test_server_minor_is_checked() -> None:
    with pytest.raises(ValueError):
        ObjectStore(server_minor=32)
