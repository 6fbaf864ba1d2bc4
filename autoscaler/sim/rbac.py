"""RBAC for the simulated apiserver: Roles and bindings loaded from the project's YAML manifests.

Authentication is by bearer token: ``Rbac(tokens={"t0k3n": "system:serviceaccount:ray:rva"})``. A
ServiceAccount user gets the groups ``system:serviceaccounts``, ``system:serviceaccounts:<ns>`` and
``system:authenticated``; any other name is a plain user in ``system:authenticated``. Like a real
apiserver with anonymous auth on (the default), a request **without** a token is ``system:anonymous``
(group ``system:unauthenticated``) and gets 403 unless a rule grants it; a request with an **unknown**
token is 401 ``Unauthorized``. Discovery (``/api``, ``/apis``, ``/openapi``, ``/version``) is open to
authenticated users and ``/version``/``/healthz`` to everyone, as the default ``system:discovery`` and
``system:public-info-viewer`` bindings do.

Authorisation follows ``rbac/v1`` rule matching (verbs, apiGroups, resources incl. ``*`` and
``*/<sub>``, resourceNames, nonResourceURLs). A denial is 403 with the real message, e.g.
``pods "x" is forbidden: User "system:serviceaccount:ns:sa" cannot patch resource "pods/resize" in API
group "" in the namespace "ns"``. Every allow records the (rule, verb, resource) it used, so a test can
assert that every granted permission was exercised (``unused_permissions``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autoscaler.sim.apierrors import ApiError

__all__ = ["Permission", "Rbac", "Request", "RuleRef", "User"]

_DISCOVERY_PREFIXES = ("/api", "/apis", "/openapi", "/version")
_PUBLIC_PATHS = ("/version", "/version/", "/healthz", "/livez", "/readyz")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]

    @staticmethod
    def from_name(name: str) -> User:
        parts = name.split(":")
        if name.startswith("system:serviceaccount:") and len(parts) == 4:
            return User(name, ("system:serviceaccounts", f"system:serviceaccounts:{parts[2]}", "system:authenticated"))
        return User(name, ("system:authenticated",))


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Request:
    """The authorizer's view of a request (``authorizer.Attributes``)."""

    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True)
class RuleRef:
    """Where a rule comes from: ``Role ns/name`` or ``ClusterRole name``, rule index."""

    role_kind: str
    role_namespace: str
    role_name: str
    index: int


@dataclass(frozen=True)
class Permission:
    rule: RuleRef
    verb: str
    api_group: str
    resource: str


@dataclass
class _Rule:
    ref: RuleRef
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...]
    non_resource_urls: tuple[str, ...]

    def permissions(self) -> list[Permission]:
        if self.non_resource_urls:
            return [Permission(self.ref, v, "", u) for v in self.verbs for u in self.non_resource_urls]
        return [Permission(self.ref, v, g, r) for v in self.verbs for g in self.api_groups for r in self.resources]

    def allows(self, req: Request) -> Permission | None:
        verb = _match(self.verbs, req.verb)
        if verb is None:
            return None
        if not req.resource_request:
            for url in self.non_resource_urls:
                if url == "*" or url == req.path or (url.endswith("*") and req.path.startswith(url[:-1])):
                    return Permission(self.ref, verb, "", url)
            return None
        group = _match(self.api_groups, req.api_group)
        if group is None:
            return None
        resource = None
        for r in self.resources:
            if r in ("*", req.full_resource) or (
                req.subresource and r == f"*/{req.subresource}"
            ):
                resource = r
                break
        if resource is None:
            return None
        if self.resource_names and req.name not in self.resource_names:
            return None
        return Permission(self.ref, verb, group, resource)


def _match(allowed: tuple[str, ...], value: str) -> str | None:
    if value in allowed:
        return value
    return "*" if "*" in allowed else None


@dataclass
class _Binding:
    kind: str
    namespace: str  # "" for ClusterRoleBinding
    name: str
    role_kind: str
    role_name: str
    subjects: list[dict[str, Any]]


@dataclass
class Rbac:
    tokens: dict[str, str] = field(default_factory=dict)
    _roles: dict[tuple[str, str, str], list[_Rule]] = field(default_factory=dict)
    _bindings: list[_Binding] = field(default_factory=list)
    used: set[Permission] = field(default_factory=set)

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_yaml(
        cls, *sources: str | Path, tokens: dict[str, str] | None = None, namespace: str = "default"
    ) -> Rbac:
        """Load from YAML text or files (multi-document; non-RBAC kinds are skipped). Roles and
        RoleBindings without ``metadata.namespace`` land in ``namespace``, like ``kubectl apply -n``."""
        rbac = cls(tokens=dict(tokens or {}))
        for src in sources:
            text = src.read_text() if isinstance(src, Path) else src
            rbac.load_documents((d for d in yaml.safe_load_all(text) if d), namespace)
        return rbac

    def load_documents(self, docs: Iterable[dict[str, Any]], namespace: str = "default") -> None:
        for doc in docs:
            kind = doc.get("kind")
            if kind == "List":
                self.load_documents(doc.get("items") or [], namespace)
                continue
            meta = doc.get("metadata") or {}
            ns = meta.get("namespace", namespace) if kind in ("Role", "RoleBinding") else ""
            if kind in ("Role", "ClusterRole"):
                self._roles[(kind, ns, meta["name"])] = [
                    _Rule(
                        RuleRef(kind, ns, meta["name"], i),
                        tuple(r.get("verbs") or ()),
                        tuple(r.get("apiGroups") or ()),
                        tuple(r.get("resources") or ()),
                        tuple(r.get("resourceNames") or ()),
                        tuple(r.get("nonResourceURLs") or ()),
                    )
                    for i, r in enumerate(doc.get("rules") or [])
                ]
            elif kind in ("RoleBinding", "ClusterRoleBinding"):
                ref = doc.get("roleRef") or {}
                self._bindings.append(_Binding(kind, ns, meta["name"], ref.get("kind", ""), ref.get("name", ""),
                                               list(doc.get("subjects") or [])))

    # ---------------------------------------------------------------- authn
    def authenticate(self, authorization: str | None) -> User:
        """The user for an ``Authorization`` header; 401 for an unknown bearer token."""
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        name = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if name is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return User.from_name(name)

    # ---------------------------------------------------------------- authz
    def _subject_matches(self, subject: dict[str, Any], binding: _Binding, user: User) -> bool:
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "ServiceAccount":
            ns = subject.get("namespace") or binding.namespace
            return user.name == f"system:serviceaccount:{ns}:{name}"
        if kind == "User":
            return user.name == name
        if kind == "Group":
            return name in user.groups
        return False

    def _rules_for(self, user: User, namespace: str) -> tuple[list[_Rule], list[str]]:
        rules: list[_Rule] = []
        errors: list[str] = []
        for b in self._bindings:
            if b.kind == "RoleBinding" and b.namespace != namespace:
                continue
            if not any(self._subject_matches(s, b, user) for s in b.subjects):
                continue
            role_ns = b.namespace if b.role_kind == "Role" else ""
            role = self._roles.get((b.role_kind, role_ns, b.role_name))
            if role is None:
                what = "role" if b.role_kind == "Role" else "clusterrole"
                errors.append(f'{what}.rbac.authorization.k8s.io "{b.role_name}" not found')
                continue
            rules.extend(role)
        return rules, errors

    def authorize(self, user: User, req: Request) -> Permission | None:
        if not req.resource_request and req.verb == "get" and (
            req.path in _PUBLIC_PATHS
            or ("system:authenticated" in user.groups and req.path.startswith(_DISCOVERY_PREFIXES))
        ):
            return Permission(RuleRef("ClusterRole", "", "system:discovery", 0), "get", "", req.path)
        rules, _ = self._rules_for(user, req.namespace)
        for rule in rules:
            perm = rule.allows(req)
            if perm is not None:
                self.used.add(perm)
                return perm
        return None

    def check(self, user: User, req: Request, qualified_resource: str = "") -> Permission:
        """Allow or raise the real 403 ``Forbidden`` Status."""
        perm = self.authorize(user, req)
        if perm is not None:
            return perm
        if not req.resource_request:
            msg = f'forbidden: User "{user.name}" cannot {req.verb} path "{req.path}"'
            raise ApiError(403, "Forbidden", msg, {})
        where = f'in the namespace "{req.namespace}"' if req.namespace else "at the cluster scope"
        reason = (f'User "{user.name}" cannot {req.verb} resource "{req.full_resource}" in API group '
                  f'"{req.api_group}" {where}')
        _, errors = self._rules_for(user, req.namespace)
        if errors:
            reason += ": RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
        qualified = qualified_resource or req.resource
        subject = f'{qualified} "{req.name}"' if req.name else qualified
        details: dict[str, Any] = {}
        if req.name:
            details["name"] = req.name
        if req.api_group:
            details["group"] = req.api_group
        details["kind"] = req.resource
        raise ApiError(403, "Forbidden", f"{subject} is forbidden: {reason}", details)

    # ---------------------------------------------------------------- coverage
    def granted_permissions(self, user: User | str) -> list[Permission]:
        """Every (rule, verb, group, resource) bound to ``user`` in any namespace."""
        u = User.from_name(user) if isinstance(user, str) else user
        namespaces = {b.namespace for b in self._bindings}
        seen: dict[Permission, None] = {}
        for ns in sorted(namespaces):
            for rule in self._rules_for(u, ns)[0]:
                for p in rule.permissions():
                    seen[p] = None
        return list(seen)

    def unused_permissions(self, user: User | str) -> list[Permission]:
        return [p for p in self.granted_permissions(user) if p not in self.used]
