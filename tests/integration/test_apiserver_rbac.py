"""RBAC enforcement from YAML Roles: pods/resize needs its own rule; 401/403 bodies; rule usage."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.sim.apiserver import SimApiServer
from autoscaler.sim.rbac import Rbac
from autoscaler.sim.store import ObjectStore

SA = "system:serviceaccount:ray:rva"
MANIFEST = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: rva, namespace: ray}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
- apiGroups: [ray.io]
  resources: [rayclusters]
  verbs: [get, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rva, namespace: ray}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: rva}
subjects:
- {kind: ServiceAccount, name: rva, namespace: ray}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: rva-nodes}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: rva-nodes}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rva-nodes}
subjects:
- {kind: ServiceAccount, name: rva, namespace: ray}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: rva, namespace: ray}
"""
RESIZE_RULE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: rva-resize, namespace: ray}
rules:
- apiGroups: [""]
  resources: [pods/resize]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rva-resize, namespace: ray}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: rva-resize}
subjects:
- {kind: ServiceAccount, name: rva, namespace: ray}
"""


def _pod(name: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "ray"}, "spec": {"containers": [{
        "name": "ray", "image": "ray:1", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}]}}


async def _server(*docs: str) -> SimApiServer:
    store = ObjectStore()
    store.create("pods", _pod("w1"))
    server = SimApiServer(store, rbac=Rbac.from_yaml(*docs, tokens={"sa-token": SA, "admin": "admin"}))
    await server.start()
    return server


@pytest.fixture
async def patch_only() -> AsyncIterator[SimApiServer]:
    server = await _server(MANIFEST)
    yield server
    await server.stop()


def _client(url: str, token: str | None) -> ApiClient:
    cfg = Configuration(host=url)
    if token:
        cfg.api_key = {"BearerToken": token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
    return ApiClient(cfg)


async def test_patch_on_pods_does_not_grant_pods_resize(patch_only: SimApiServer) -> None:
    async with _client(patch_only.url, "sa-token") as ac:
        v1 = client.CoreV1Api(ac)
        await v1.patch_namespaced_pod("w1", "ray", {"metadata": {"annotations": {"rva/state": "x"}}})
        with pytest.raises(ApiException) as e:
            await v1.patch_namespaced_pod_resize(
                "w1", "ray", {"spec": {"containers": [{"name": "ray", "resources": {"requests": {"cpu": "2"}}}]}})
    assert e.value.status == 403
    assert json.loads(e.value.body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'pods "w1" is forbidden: User "system:serviceaccount:ray:rva" cannot patch resource '
                   '"pods/resize" in API group "" in the namespace "ray"',
        "reason": "Forbidden", "details": {"name": "w1", "kind": "pods"}, "code": 403}
    assert patch_only.store.get("pods", "ray", "w1")["metadata"]["generation"] == 1


async def test_resize_rule_grants_it_and_usage_is_recorded() -> None:
    server = await _server(MANIFEST, RESIZE_RULE)
    try:
        async with _client(server.url, "sa-token") as ac:
            v1 = client.CoreV1Api(ac)
            await v1.patch_namespaced_pod_resize(
                "w1", "ray", {"spec": {"containers": [{"name": "ray", "resources": {"requests": {"cpu": "2"}}}]}})
            await v1.list_namespaced_pod("ray")
            await v1.list_node()
            await client.VersionApi(ac).get_code()
        assert server.rbac is not None
        unused = {(p.verb, p.api_group, p.resource) for p in server.rbac.unused_permissions(SA)}
        assert unused == {("get", "", "pods"), ("watch", "", "pods"), ("patch", "", "pods"),
                          ("get", "ray.io", "rayclusters"), ("patch", "ray.io", "rayclusters")}
    finally:
        await server.stop()


async def test_forbidden_messages_for_list_cluster_scope_and_custom_resources(patch_only: SimApiServer) -> None:
    async with _client(patch_only.url, "sa-token") as ac:
        v1 = client.CoreV1Api(ac)
        with pytest.raises(ApiException) as e:
            await v1.list_namespaced_pod("default")
        assert json.loads(e.value.body)["message"] == (
            'pods is forbidden: User "system:serviceaccount:ray:rva" cannot list resource "pods" in API group "" '
            'in the namespace "default"')
        with pytest.raises(ApiException) as e:
            await v1.read_node("n1")
        assert json.loads(e.value.body)["message"] == (
            'nodes "n1" is forbidden: User "system:serviceaccount:ray:rva" cannot get resource "nodes" in API '
            'group "" at the cluster scope')
        with pytest.raises(ApiException) as e:
            await client.CustomObjectsApi(ac).delete_namespaced_custom_object("ray.io", "v1", "ray",
                                                                             "rayclusters", "rc")
        body = json.loads(e.value.body)
        assert body["message"].startswith('rayclusters.ray.io "rc" is forbidden: User ')
        assert body["details"] == {"name": "rc", "group": "ray.io", "kind": "rayclusters"}


async def test_anonymous_is_403_and_unknown_token_is_401(patch_only: SimApiServer) -> None:
    async with _client(patch_only.url, None) as ac:
        with pytest.raises(ApiException) as e:
            await client.CoreV1Api(ac).list_namespaced_pod("ray")
        assert e.value.status == 403 and 'User "system:anonymous"' in json.loads(e.value.body)["message"]
        assert (await client.VersionApi(ac).get_code()).minor == "33"  # public info stays open
    async with _client(patch_only.url, "wrong") as ac:
        with pytest.raises(ApiException) as e:
            await client.CoreV1Api(ac).list_namespaced_pod("ray")
        assert e.value.status == 401 and json.loads(e.value.body)["reason"] == "Unauthorized"


def test_binding_to_a_missing_role_explains_itself() -> None:
    rbac = Rbac.from_yaml("""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: b, namespace: ray}
roleRef: {kind: Role, name: typo}
subjects: [{kind: ServiceAccount, name: rva}]
""", tokens={"t": SA})
    from autoscaler.sim.apierrors import ApiError
    from autoscaler.sim.rbac import Request

    with pytest.raises(ApiError) as e:
        rbac.check(rbac.authenticate("Bearer t"), Request("get", "", "pods", "", "ray", "x"))
    assert e.value.message.endswith(': RBAC: role.rbac.authorization.k8s.io "typo" not found')


def test_wildcards_subresource_patterns_and_resource_names() -> None:
    from autoscaler.sim.rbac import Request

    rbac = Rbac.from_yaml("""
kind: ClusterRole
metadata: {name: r}
rules:
- {apiGroups: ["*"], resources: ["*/status"], verbs: [update]}
- {apiGroups: [""], resources: [configmaps], resourceNames: [policy], verbs: ["*"]}
---
kind: ClusterRoleBinding
metadata: {name: r}
roleRef: {kind: ClusterRole, name: r}
subjects: [{kind: Group, name: "system:serviceaccounts:ray"}]
""", tokens={"t": SA})
    user = rbac.authenticate("Bearer t")
    assert rbac.authorize(user, Request("update", "ray.io", "rayclusters", "status", "ray", "rc"))
    assert not rbac.authorize(user, Request("update", "ray.io", "rayclusters", "", "ray", "rc"))
    assert rbac.authorize(user, Request("delete", "", "configmaps", "", "ray", "policy"))
    assert not rbac.authorize(user, Request("delete", "", "configmaps", "", "ray", "other"))
    assert not rbac.authorize(user, Request("list", "", "configmaps", "", "ray", ""))


SHIPPED = Path(__file__).resolve().parents[2] / "manifests" / "base" / "rbac.yaml"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="manifests/base/rbac.yaml not present")
async def test_shipped_manifests_grant_resize_but_not_more() -> None:
    store = ObjectStore()
    store.create("pods", _pod("w1"))
    store.create("pods", {**_pod("other"), "metadata": {"name": "other", "namespace": "tenant"}})
    rbac = Rbac.from_yaml(SHIPPED, tokens={"sa-token": SA}, namespace="ray")
    async with SimApiServer(store, rbac=rbac) as server, _client(server.url, "sa-token") as ac:
        v1 = client.CoreV1Api(ac)
        await v1.patch_namespaced_pod_resize(
            "w1", "ray", {"spec": {"containers": [{"name": "ray", "resources": {"requests": {"cpu": "2"}}}]}})
        assert len((await v1.list_pod_for_all_namespaces()).items) == 2
        with pytest.raises(ApiException) as e:
            await v1.read_namespaced_pod("w1", "ray")
        assert e.value.status == 403
        with pytest.raises(ApiException) as e:
            await v1.patch_namespaced_pod_resize("other", "tenant", {"spec": {"containers": [
                {"name": "ray", "resources": {"requests": {"cpu": "2"}}}]}})
        assert json.loads(e.value.body)["message"] == (
            'pods "other" is forbidden: User "system:serviceaccount:ray:rva" cannot patch resource "pods/resize" '
            'in API group "" in the namespace "tenant"')
        lease = {"metadata": {"name": "rva-leader"}, "spec": {"holderIdentity": "a"}}
        coord = client.CoordinationV1Api(ac)
        created = await coord.create_namespaced_lease("ray", lease)
        await coord.replace_namespaced_lease("rva-leader", "ray", created)
        with pytest.raises(ApiException) as e:
            await coord.read_namespaced_lease("someone-else", "ray")
        assert e.value.status == 403
