"""SimApiServer over real HTTP with kubernetes_asyncio: discovery, CRUD, errors, patches, subresources."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.sim.apiserver import SimApiServer
from autoscaler.sim.store import ObjectStore


@pytest.fixture
async def api() -> AsyncIterator[SimApiServer]:
    async with SimApiServer(ObjectStore(server_minor=33)) as server:
        yield server


@pytest.fixture
async def kube(api: SimApiServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(Configuration(host=api.url)) as ac:
        yield ac


def _pod(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "ray", "image": "rayproject/ray:2.60.0", "resources": {
                "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}}]}}


def _status(e: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(e.body)
    return body


async def test_version_with_trailing_slash_and_all_fields(kube: ApiClient) -> None:
    info = await client.VersionApi(kube).get_code()
    assert (info.major, info.minor, info.git_version) == ("1", "33", "v1.33.4")
    assert info.build_date and info.go_version and info.platform and info.compiler and info.git_tree_state


async def test_discovery_documents(api: SimApiServer) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{api.url}/api") as r:
            assert (await r.json())["versions"] == ["v1"]
        async with s.get(f"{api.url}/apis") as r:
            groups = {g["name"] for g in (await r.json())["groups"]}
            assert groups == {"coordination.k8s.io", "ray.io"}
        async with s.get(f"{api.url}/api/v1") as r:
            names = {res["name"]: res for res in (await r.json())["resources"]}
            assert names["pods/resize"]["verbs"] == ["get", "patch", "update"]
            assert names["nodes"]["namespaced"] is False
        async with s.get(f"{api.url}/apis/ray.io/v1") as r:
            body = await r.json()
            assert body["groupVersion"] == "ray.io/v1"
            assert {x["name"] for x in body["resources"]} == {"rayclusters", "rayclusters/status"}
        async with s.get(f"{api.url}/api/v1/namespaces/default/widgets") as r:
            assert r.status == 404 and (await r.json())["reason"] == "NotFound"


async def test_crud_selectors_and_status_errors(kube: ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    created = await v1.create_namespaced_pod("ray", _pod("w1", group="gpu"))
    await v1.create_namespaced_pod("ray", _pod("w2", group="cpu"))
    assert created.metadata.uid and created.metadata.generation == 1 and created.status.qos_class == "Burstable"
    listed = await v1.list_namespaced_pod("ray", label_selector="group in (gpu)")
    assert [p.metadata.name for p in listed.items] == ["w1"]
    assert int(listed.metadata.resource_version) >= 2
    every = await v1.list_pod_for_all_namespaces(field_selector="metadata.namespace=ray,status.phase=Pending")
    assert len(every.items) == 2

    with pytest.raises(ApiException) as e:
        await v1.create_namespaced_pod("ray", _pod("w1"))
    assert e.value.status == 409 and _status(e.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as e:
        await v1.read_namespaced_pod("nope", "ray")
    assert e.value.status == 404
    assert _status(e.value) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": 'pods "nope" not found', "reason": "NotFound",
                                "details": {"name": "nope", "kind": "pods"}, "code": 404}

    stale = created.to_dict()
    stale_body = kube.sanitize_for_serialization(created)
    await v1.patch_namespaced_pod("w1", "ray", {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(ApiException) as e:
        await v1.replace_namespaced_pod("w1", "ray", stale_body)
    assert e.value.status == 409 and _status(e.value)["reason"] == "Conflict"
    assert stale["metadata"]["name"] == "w1"

    deleted = await v1.delete_namespaced_pod("w2", "ray")
    assert deleted.metadata.name == "w2"
    cm = await v1.create_namespaced_config_map("ray", {"metadata": {"name": "policy"}, "data": {"a": "1"}})
    status = await v1.delete_namespaced_config_map("policy", "ray")
    assert status.status == "Success" and cm.metadata.name == "policy"


async def test_resize_over_http_keeps_image_and_reports_422(kube: ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    await v1.create_namespaced_pod("ray", _pod("w1"))
    # A dict body goes out as strategic merge from the core API client.
    out = await v1.patch_namespaced_pod_resize(
        "w1", "ray", {"spec": {"containers": [{"name": "ray", "resources": {"requests": {"cpu": "1500m"}}}]}})
    c = out.spec.containers[0]
    assert c.image == "rayproject/ray:2.60.0"
    assert c.resources.requests == {"cpu": "1500m", "memory": "1Gi"} and c.resources.limits["cpu"] == "2"
    assert out.metadata.generation == 2
    read = await v1.read_namespaced_pod_resize("w1", "ray")
    assert read.metadata.generation == 2

    with pytest.raises(ApiException) as e:
        await v1.patch_namespaced_pod_resize("w1", "ray", [
            {"op": "replace", "path": "/spec/containers/0/resources/limits/memory", "value": "1Gi"}])
    assert e.value.status == 422
    assert _status(e.value)["message"] == (
        'Pod "w1" is invalid: spec.containers[0].resources.limits[memory]: Forbidden: memory limits cannot be '
        "decreased unless resizePolicy is RestartContainer")

    with pytest.raises(ApiException) as e:
        await v1.patch_namespaced_pod(
            "w1", "ray", {"spec": {"containers": [{"name": "ray", "resources": {"requests": {"cpu": "1"}}}]}})
    assert e.value.status == 422
    assert "pod updates may not change fields other than" in _status(e.value)["message"]


async def test_status_subresource_and_binding(kube: ApiClient) -> None:
    v1 = client.CoreV1Api(kube)
    await v1.create_namespaced_pod("ray", _pod("w1"))
    # The real server answers a Status, which the generated client cannot read as a V1Binding (a known
    # client bug), hence _preload_content=False.
    resp = await v1.create_namespaced_binding(
        "ray", {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "w1"},
                "target": {"kind": "Node", "name": "n1"}}, _preload_content=False)
    assert resp.status == 201 and (await resp.json())["status"] == "Success"
    out = await v1.patch_namespaced_pod_status("w1", "ray", {"status": {"phase": "Running"},
                                                             "metadata": {"labels": {"ignored": "yes"}}})
    assert out.status.phase == "Running" and out.spec.node_name == "n1" and not out.metadata.labels


async def test_custom_resources_and_the_dict_as_json_patch_quirk(kube: ApiClient) -> None:
    co = client.CustomObjectsApi(kube)
    rc = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "rc"},
          "spec": {"headGroupSpec": {"template": {"spec": {"containers": [{"name": "ray-head", "image": "ray"}]}}},
                   "workerGroupSpecs": [{"groupName": "gpu", "replicas": 1, "minReplicas": 0, "maxReplicas": 4,
                                         "template": {"spec": {"containers": [{"name": "ray-worker",
                                                                                "image": "ray"}]}}}]}}
    await co.create_namespaced_custom_object("ray.io", "v1", "ray", "rayclusters", rc)
    # kubernetes_asyncio sends a dict body as application/json-patch+json: a real apiserver answers 400.
    with pytest.raises(ApiException) as e:
        await co.patch_namespaced_custom_object("ray.io", "v1", "ray", "rayclusters", "rc",
                                                {"spec": {"workerGroupSpecs": []}})
    assert e.value.status == 400
    assert _status(e.value)["message"] == "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
    out = await co.patch_namespaced_custom_object("ray.io", "v1", "ray", "rayclusters", "rc", [
        {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": 3},
        {"op": "add", "path": "/spec/workerGroupSpecs/0/scaleStrategy", "value": {"workersToDelete": ["a"]}},
    ])
    with pytest.raises(ApiException) as e:  # replace on a missing path fails, as in evanphx/json-patch v4
        await co.patch_namespaced_custom_object("ray.io", "v1", "ray", "rayclusters", "rc", [
            {"op": "replace", "path": "/spec/headGroupSpec/rayStartParams", "value": {}}])
    assert e.value.status == 422
    with pytest.raises(ApiException) as e:  # the schema refuses a wrong type, as CRD validation does
        await co.patch_namespaced_custom_object("ray.io", "v1", "ray", "rayclusters", "rc", [
            {"op": "replace", "path": "/spec/workerGroupSpecs/0/replicas", "value": "three"}])
    assert e.value.status == 422
    assert out["spec"]["workerGroupSpecs"][0]["replicas"] == 3 and out["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as e:
        await co.patch_namespaced_custom_object("ray.io", "v1", "ray", "rayclusters", "rc", [
            {"op": "test", "path": "/spec/workerGroupSpecs/0/replicas", "value": 1}])
    assert e.value.status == 422
    st = await co.patch_namespaced_custom_object_status(
        "ray.io", "v1", "ray", "rayclusters", "rc", {"status": {"desiredWorkerReplicas": 3}},
        _content_type="application/merge-patch+json")
    assert st["status"] == {"desiredWorkerReplicas": 3} and st["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as e:
        await co.patch_namespaced_custom_object("ray.io", "v1", "ray", "rayclusters", "rc", {"spec": {}},
                                                _content_type="application/strategic-merge-patch+json")
    assert e.value.status == 415


async def test_leases_and_events_are_plain_objects(kube: ApiClient) -> None:
    coord = client.CoordinationV1Api(kube)
    lease = await coord.create_namespaced_lease("ray", {"metadata": {"name": "rva"}, "spec": {
        "holderIdentity": "a", "leaseDurationSeconds": 15}})
    lease.spec.holder_identity = "b"
    out = await coord.replace_namespaced_lease("rva", "ray", lease)
    assert out.spec.holder_identity == "b"
    v1 = client.CoreV1Api(kube)
    await v1.create_namespaced_event("ray", {"metadata": {"generateName": "w1."}, "involvedObject": {
        "kind": "Pod", "name": "w1", "namespace": "ray"}, "reason": "ResizeStarted", "type": "Normal"})
    evs = await v1.list_namespaced_event("ray", field_selector="involvedObject.name=w1,reason=ResizeStarted")
    assert len(evs.items) == 1


async def test_put_name_mismatch_and_bad_json(api: SimApiServer) -> None:
    async with aiohttp.ClientSession() as s:
        url = f"{api.url}/api/v1/namespaces/ray/configmaps"
        async with s.post(url, json={"metadata": {"name": "a"}}) as r:
            assert r.status == 201
        async with s.put(f"{url}/a", json={"metadata": {"name": "b"}}) as r:
            assert r.status == 400
            assert (await r.json())["message"] == "the name of the object (b) does not match the name on the URL (a)"
        async with s.post(url, data=b"{nope", headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400 and (await r.json())["kind"] == "Status"
        async with s.patch(f"{url}/a", data=b"{}", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415


async def test_subresource_verbs(api: SimApiServer) -> None:
    api.store.create("pods", _pod("w1"), namespace="ray")
    async with aiohttp.ClientSession() as s:
        base = f"{api.url}/api/v1/namespaces/ray/pods/w1"
        async with s.delete(f"{base}/resize") as r:
            assert r.status == 405 and (await r.json())["reason"] == "MethodNotAllowed"
        async with s.get(f"{base}/status") as r:
            assert r.status == 200 and (await r.json())["metadata"]["name"] == "w1"
        async with s.get(f"{base}/bogus") as r:
            assert r.status == 404
    assert api.store.get("pods", "ray", "w1")["metadata"]["name"] == "w1"
