"""The RBAC rva ships, as data, so the simulated API server can enforce exactly it.

    from autoscaler.sim.rbac import Rbac
    from autoscaler.testing.rbac_rules import rbac_yaml, service_account_user
    rbac = Rbac.from_yaml(rbac_yaml(namespace="ray"), tokens={"t0k3n": service_account_user(namespace="ray")})

``namespace`` re-targets the rendered objects (Role, RoleBinding and the ServiceAccount subjects) to the
namespace a test runs rva in; the rules themselves are never changed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from autoscaler.testing.manifests import Obj, render

RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


@dataclass(frozen=True)
class Rule:
    """One ``rbac/v1`` PolicyRule of a Role (namespace set) or ClusterRole (namespace "")."""

    role_kind: str
    role_name: str
    namespace: str
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    def grants(self) -> list[tuple[str, str, str, str]]:
        """(scope, verb, api group, resource) tuples; scope is the namespace or "" (cluster-wide)."""
        return [(self.namespace, v, g, r) for v in self.verbs for g in self.api_groups for r in self.resources]


def rbac_documents(overlay: str = "base", namespace: str | None = None) -> list[Obj]:
    """The rendered Role, ClusterRole, RoleBinding and ClusterRoleBinding objects."""
    docs = [copy.deepcopy(d) for d in render(overlay) if d.get("kind") in RBAC_KINDS]
    if namespace is not None:
        for d in docs:
            if d["kind"] in ("Role", "RoleBinding"):
                d["metadata"]["namespace"] = namespace
            for s in d.get("subjects") or []:
                if s.get("kind") == "ServiceAccount":
                    s["namespace"] = namespace
    return docs


def rbac_yaml(overlay: str = "base", namespace: str | None = None) -> str:
    """The RBAC objects as one multi-document YAML (what ``autoscaler.sim.rbac.Rbac.from_yaml`` loads)."""
    return yaml.safe_dump_all(rbac_documents(overlay, namespace), sort_keys=False)


def rbac_rules(overlay: str = "base", namespace: str | None = None) -> list[Rule]:
    """Every rule of the rendered Role and ClusterRole, in manifest order."""
    out: list[Rule] = []
    for d in rbac_documents(overlay, namespace):
        if d["kind"] not in ("Role", "ClusterRole"):
            continue
        ns = d["metadata"].get("namespace", "") if d["kind"] == "Role" else ""
        for r in d.get("rules") or []:
            out.append(Rule(
                d["kind"], d["metadata"]["name"], ns,
                tuple(r.get("apiGroups") or ()), tuple(r.get("resources") or ()), tuple(r.get("verbs") or ()),
                tuple(r.get("resourceNames") or ()), tuple(r.get("nonResourceURLs") or ()),
            ))
    return out


def service_account_user(overlay: str = "base", namespace: str | None = None) -> str:
    """``system:serviceaccount:<ns>:<name>`` of the ServiceAccount the Deployment runs as."""
    objs = render(overlay)
    deployment = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "rva")
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    ns = namespace if namespace is not None else deployment["metadata"]["namespace"]
    return f"system:serviceaccount:{ns}:{sa}"


def as_table(rules: list[Rule]) -> list[dict[str, Any]]:
    """Rules as plain dicts (for JSON, reports and assertions)."""
    return [
        {"kind": r.role_kind, "name": r.role_name, "namespace": r.namespace, "apiGroups": list(r.api_groups),
         "resources": list(r.resources), "verbs": list(r.verbs),
         **({"resourceNames": list(r.resource_names)} if r.resource_names else {})}
        for r in rules
    ]
