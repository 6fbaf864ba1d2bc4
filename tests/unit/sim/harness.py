"""Test helper (not a conftest, so it never clashes with other fixtures): the in-memory store and a
virtual clock, with shortcuts for nodes, pods, resizes, conditions and events."""

from __future__ import annotations

from typing import Any

from autoscaler.sim.clock import VirtualClock
from autoscaler.sim.store import ObjectStore


class Harness:
    def __init__(self, minor: int = 34, graceful: bool = False) -> None:
        self.clock = VirtualClock()
        self.store = ObjectStore(server_minor=minor, clock=self.clock.now, graceful_pod_deletion=graceful)

    def node(
        self,
        name: str,
        cpu: str = "4",
        memory: str = "4Gi",
        labels: dict[str, str] | None = None,
        taints: list[dict[str, str]] | None = None,
        extra: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        alloc = {"cpu": cpu, "memory": memory, "pods": "110", **(extra or {})}
        return self.store.create(
            "nodes",
            {
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                "spec": {"taints": taints or []},
                "status": {
                    "capacity": alloc,
                    "allocatable": alloc,
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            },
        )

    def pod(
        self,
        name: str,
        requests: dict[str, str] | None = None,
        limits: dict[str, str] | None = None,
        node: str | None = None,
        policy: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        priority: int | None = None,
        sidecar: dict[str, str] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        res: dict[str, Any] = {}
        if requests:
            res["requests"] = requests
        if limits:
            res["limits"] = limits
        container: dict[str, Any] = {"name": "main", "image": "rayproject/ray:2.60.0", "resources": res}
        if policy:
            container["resizePolicy"] = [{"resourceName": k, "restartPolicy": v} for k, v in policy.items()]
        pod_spec: dict[str, Any] = {"containers": [container], **(spec or {})}
        if sidecar:
            pod_spec["initContainers"] = [
                {"name": "side", "image": "busybox", "restartPolicy": "Always", "resources": {"requests": sidecar}}
            ]
        if priority is not None:
            pod_spec["priority"] = priority
        obj = {"metadata": {"name": name, "namespace": "default", "annotations": annotations or {}}, "spec": pod_spec}
        created = self.store.create("pods", obj)
        if node:
            created = self.store.bind("default", name, node)
        return created

    def resize(self, name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> Any:
        res: dict[str, Any] = {}
        if requests:
            res["requests"] = requests
        if limits:
            res["limits"] = limits
        body = {"spec": {"containers": [{"name": "main", "resources": res}]}}
        return self.store.patch(
            "pods", "default", name, body, "application/strategic-merge-patch+json", subresource="resize"
        )

    def get(self, name: str) -> dict[str, Any]:
        return self.store.get("pods", "default", name)

    def cond(self, name: str, ctype: str) -> dict[str, Any] | None:
        for c in self.get(name).get("status", {}).get("conditions") or []:
            if c["type"] == ctype:
                return c
        return None

    def events(self, reason: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        items = self.store.list("events")[0]
        items.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
        return [
            e
            for e in items
            if (reason is None or e["reason"] == reason) and (name is None or e["involvedObject"]["name"] == name)
        ]

    async def run(self, seconds: float) -> None:
        await self.clock.advance(seconds)
