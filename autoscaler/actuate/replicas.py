"""RayCluster worker-group writes: one JSON patch per change, guarded by the group's name.

KubeRay deletes random pods when ``replicas`` drops and in-tree autoscaling is off, so a scale-down
always sends ``replicas`` and ``workersToDelete`` together (ray-gcs reference §3). The ``test`` op
on ``/spec/workerGroupSpecs/<i>/groupName`` makes the patch fail (422) instead of touching another
group if the list was reordered since rva read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from autoscaler.kubeclient import read_json

JSON_PATCH = "application/json-patch+json"
GROUP, VERSION, PLURAL = "ray.io", "v1", "rayclusters"


class CustomApi(Protocol):
    async def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any, **kw: Any
    ) -> Any: ...


def replicas_patch(
    index: int, group: str, replicas: int, workers_to_delete: Sequence[str]
) -> list[dict[str, Any]]:
    base = f"/spec/workerGroupSpecs/{index}"
    return [
        {"op": "test", "path": f"{base}/groupName", "value": group},
        {"op": "replace", "path": f"{base}/replicas", "value": replicas},
        # "add" creates or replaces, so it works whether scaleStrategy exists or not.
        {"op": "add", "path": f"{base}/scaleStrategy", "value": {"workersToDelete": list(workers_to_delete)}},
    ]


class ReplicaWriter:
    def __init__(self, custom: CustomApi) -> None:
        self.custom = custom

    async def set_replicas(
        self, namespace: str, cluster: str, index: int, group: str, replicas: int,
        workers_to_delete: Sequence[str],
    ) -> dict[str, Any]:
        resp = await self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, cluster,
            replicas_patch(index, group, replicas, workers_to_delete),
            _content_type=JSON_PATCH, _preload_content=False,
        )
        body: dict[str, Any] = await read_json(resp)
        return body
