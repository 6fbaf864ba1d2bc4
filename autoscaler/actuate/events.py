"""Kubernetes Events for every action, on the RayCluster and on the pod it touched."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)
COMPONENT = "rva"


class EventApi(Protocol):
    async def create_namespaced_event(self, namespace: str, body: Any, **kw: Any) -> Any: ...


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(
    namespace: str, kind: str, api_version: str, name: str, uid: str | None, reason: str, message: str,
    warning: bool, now: float, reporting_instance: str,
) -> dict[str, Any]:
    ts = _now_iso(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
        "involvedObject": {"kind": kind, "apiVersion": api_version, "name": name, "namespace": namespace,
                           **({"uid": uid} if uid else {})},
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": reporting_instance,
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
    }


class EventRecorder:
    """Best effort: an Event that cannot be written is logged, never fatal."""

    def __init__(self, core: EventApi, reporting_instance: str) -> None:
        self.core = core
        self.instance = reporting_instance
        self.written = 0

    async def emit(
        self, namespace: str, kind: str, name: str, reason: str, message: str, now: float,
        warning: bool = False, uid: str | None = None,
    ) -> None:
        api_version = "ray.io/v1" if kind == "RayCluster" else "v1"
        body = event_body(namespace, kind, api_version, name, uid, reason, message, warning, now, self.instance)
        try:
            await self.core.create_namespaced_event(namespace, body, _preload_content=False)
            self.written += 1
        except ApiException as e:
            log.warning("could not write Event %s on %s/%s: HTTP %s", reason, kind, name, e.status)
