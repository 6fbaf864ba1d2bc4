"""Least-privilege RBAC: the rendered Role/ClusterRole grant exactly what rva's API calls need.

The calls are found in the source (every ``<api>.<verb>_<resource>(`` on a Kubernetes client), mapped to
the permissions they need, and compared with the rendered rules both ways. The simulated API server's
authoriser (``autoscaler.sim.rbac``) then allows each needed request and denies the neighbours.
The dynamic proof (the daemon's e2e tests pass under exactly these rules, and every rule was used) is
in the e2e suite, which loads the same rules through ``autoscaler.testing.rbac_rules``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autoscaler.sim.rbac import Rbac, Request, User
from autoscaler.testing.rbac_rules import as_table, rbac_documents, rbac_rules, rbac_yaml, service_account_user
from tests.deploy.conftest import requires_kubectl

PACKAGE = Path(__file__).resolve().parents[2] / "autoscaler"
#: Not the daemon: simulators, benchmarks, test helpers, peer adapters.
NOT_DAEMON = ("sim", "bench", "testing", "peers")
NS = "ray"

#: Kubernetes client method → permissions it needs: (scope, verb, api group, resource[, name]).
#: scope "ns" = the managed (and own) namespace, "cluster" = cluster-wide.
#: A list call is made by an informer, which also watches.
CALLS: dict[str, list[tuple[str, ...]]] = {
    "list_node": [("cluster", "list", "", "nodes"), ("cluster", "watch", "", "nodes")],
    "list_pod_for_all_namespaces": [("cluster", "list", "", "pods"), ("cluster", "watch", "", "pods")],
    "list_namespaced_custom_object": [("ns", "list", "ray.io", "rayclusters"),
                                      ("ns", "watch", "ray.io", "rayclusters")],
    "patch_namespaced_custom_object": [("ns", "patch", "ray.io", "rayclusters")],
    "patch_namespaced_pod": [("ns", "patch", "", "pods")],
    "patch_namespaced_pod_resize": [("ns", "patch", "", "pods/resize")],
    "list_namespaced_config_map": [("ns", "list", "", "configmaps"), ("ns", "watch", "", "configmaps")],
    "create_namespaced_event": [("ns", "create", "", "events")],
    "create_namespaced_lease": [("ns", "create", "coordination.k8s.io", "leases")],
    "read_namespaced_lease": [("ns", "get", "coordination.k8s.io", "leases", "rva-leader")],
    "replace_namespaced_lease": [("ns", "update", "coordination.k8s.io", "leases", "rva-leader")],
}
#: Calls the daemon makes only when it manages several (or all) namespaces; the shipped Deployment
#: manages its own namespace only (--namespace=$(POD_NAMESPACE)), so they are not granted.
MULTI_NAMESPACE_ONLY = {
    "list_cluster_custom_object": [("cluster", "list", "ray.io", "rayclusters")],
    "list_config_map_for_all_namespaces": [("cluster", "list", "", "configmaps")],
}
#: Calls that need no RBAC rule (GET /version: system:public-info-viewer).
NO_RULE_NEEDED = {"get_code"}

# A call, or a method handed to an informer (``Informer("nodes", core.list_node)``).
_CALL = re.compile(r"\.((?:list|read|create|patch|replace|delete|get|watch)_[a-z_]+|get_code)(?=[(,)])")


def api_calls_in_source() -> dict[str, set[str]]:
    """Kubernetes client method name → files calling (or passing) it, in the daemon's code."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in NOT_DAEMON:
            continue
        for name in _CALL.findall(path.read_text(encoding="utf-8")):
            if (name.startswith(("list_", "read_", "create_", "patch_", "replace_", "delete_", "watch_")) and (
                    "namespace" in name or name.startswith(("list_node", "read_node")) or "custom_object" in name
                    or name == "list_pod_for_all_namespaces")) or name == "get_code":
                found.setdefault(name, set()).add(str(rel))
    return found


def test_every_kubernetes_call_in_the_code_is_accounted_for() -> None:
    calls = api_calls_in_source()
    unknown = {c: sorted(f) for c, f in calls.items() if c not in {**CALLS, **MULTI_NAMESPACE_ONLY} and
               c not in NO_RULE_NEEDED}
    assert unknown == {}, "new Kubernetes API calls: add them to CALLS and to manifests/base/rbac.yaml"
    gone = set(CALLS) - set(calls)
    assert gone == set(), f"mapped calls no longer in the code (drop their RBAC rules): {sorted(gone)}"


def _granted() -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for r in rbac_rules():
        scope = "ns" if r.role_kind == "Role" else "cluster"
        for verb in r.verbs:
            for group in r.api_groups:
                for resource in r.resources:
                    if r.resource_names:
                        out |= {(scope, verb, group, resource, n) for n in r.resource_names}
                    else:
                        out.add((scope, verb, group, resource))
    return out


@requires_kubectl
def test_rendered_rules_grant_exactly_what_the_calls_need() -> None:
    needed = {p for perms in CALLS.values() for p in perms}
    assert _granted() == needed, as_table(rbac_rules())


@requires_kubectl
def test_rules_are_least_privilege_by_construction() -> None:
    rules = rbac_rules()
    for r in rules:
        assert "*" not in r.verbs and "*" not in r.resources and "*" not in r.api_groups, r
        assert not r.non_resource_urls, r
        assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(r.verbs), r
    cluster_wide = {(v, res) for r in rules if r.role_kind == "ClusterRole" for v in r.verbs for res in r.resources}
    assert cluster_wide == {("list", "nodes"), ("watch", "nodes"), ("list", "pods"), ("watch", "pods")}
    assert {d["kind"] for d in rbac_documents()} == {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}


@pytest.fixture(scope="module")
def sim_rbac() -> tuple[Rbac, User]:
    user = service_account_user(namespace=NS)
    return Rbac.from_yaml(rbac_yaml(namespace=NS), tokens={"t": user}), User.from_name(user)


def _req(scope: str, verb: str, group: str, resource: str, name: str = "", namespace: str = NS) -> Request:
    res, _, sub = resource.partition("/")
    return Request(verb=verb, api_group=group, resource=res, subresource=sub,
                   namespace=namespace if scope == "ns" else "", name=name)


@requires_kubectl
def test_simulated_apiserver_allows_every_needed_request(sim_rbac: tuple[Rbac, User]) -> None:
    rbac, user = sim_rbac
    for call, perms in CALLS.items():
        for perm in perms:
            assert rbac.authorize(user, _req(*perm)) is not None, (call, perm)
    assert rbac.unused_permissions(user) == []
    version = Request(verb="get", path="/version", resource_request=False)
    assert rbac.authorize(user, version) is not None


@requires_kubectl
@pytest.mark.parametrize("request_", [
    Request("delete", "", "pods", namespace=NS, name="w"),
    Request("patch", "", "pods", namespace="other", name="w"),
    Request("patch", "", "pods", "resize", namespace="other", name="w"),
    Request("patch", "", "pods", "resize", name="w"),
    Request("patch", "", "pods", "status", namespace=NS, name="w"),
    Request("get", "", "secrets", namespace=NS, name="s"),
    Request("list", "", "secrets", namespace=NS),
    Request("patch", "", "nodes", name="n"),
    Request("list", "ray.io", "rayclusters", namespace="other"),
    Request("patch", "ray.io", "rayclusters", namespace="other", name="c"),
    Request("delete", "ray.io", "rayclusters", namespace=NS, name="c"),
    Request("update", "coordination.k8s.io", "leases", namespace=NS, name="someone-elses-lease"),
    Request("create", "", "pods", namespace=NS),
    Request("update", "", "configmaps", namespace=NS, name="rva-policy"),
], ids=lambda r: f"{r.verb}-{r.full_resource}-{r.namespace or 'cluster'}")
def test_simulated_apiserver_denies_the_neighbours(sim_rbac: tuple[Rbac, User], request_: Request) -> None:
    rbac, user = sim_rbac
    assert rbac.authorize(user, request_) is None
