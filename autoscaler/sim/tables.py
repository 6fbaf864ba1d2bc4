"""Server-side printing (``meta.k8s.io/v1 Table``) so ``kubectl get`` shows the usual columns.

kubectl asks for ``application/json;as=Table;v=v1;g=meta.k8s.io``; a real apiserver answers with rows
built by its printers. Pods get NAME/READY/STATUS/RESTARTS/AGE (+ IP/NODE with ``-o wide``), nodes
NAME/STATUS/ROLES/AGE/VERSION, everything else NAME/AGE.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["human_age", "to_table", "wants_table"]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def human_age(seconds: float) -> str:
    """``duration.HumanDuration`` as kubectl prints ages."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d" if d < 365 * 2 else f"{d // 365}y"


def _age(obj: dict[str, Any], now: float) -> str:
    ts = obj.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    created = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return human_age(now - created)


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": "", "priority": priority}


def _pod_row(pod: dict[str, Any], now: float) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for c in statuses:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
    if pod.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    return [pod["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}", reason, restarts,
            _age(pod, now), status.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", "<none>"]


def _node_row(node: dict[str, Any], now: float) -> list[Any]:
    conds = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    state = "Ready" if conds.get("Ready") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [node["metadata"]["name"], state, "<none>", _age(node, now), version]


def to_table(resource: str, objects: list[dict[str, Any]], resource_version: str, now: float) -> dict[str, Any]:
    if resource == "pods":
        columns = [_col("Name", fmt="name"), _col("Ready"), _col("Status"), _col("Restarts", "integer"), _col("Age"),
                   _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1),
                   _col("Readiness Gates", priority=1)]
        rows = [_pod_row(o, now) for o in objects]
    elif resource == "nodes":
        columns = [_col("Name", fmt="name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version")]
        rows = [_node_row(o, now) for o in objects]
    else:
        columns = [_col("Name", fmt="name"), _col("Age")]
        rows = [[o["metadata"]["name"], _age(o, now)] for o in objects]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": [{"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                             "metadata": o["metadata"]}}
                 for cells, o in zip(rows, objects, strict=True)],
    }
