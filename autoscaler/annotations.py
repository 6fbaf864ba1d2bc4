"""Annotations rva reads and writes, and the codec of the in-flight resize record.

In-flight state lives on the pod so that a restarted daemon, or a new leader, resumes it.
"""

from __future__ import annotations

import json
from typing import Any

from autoscaler.model import InFlightResize, Resources

PREFIX = "rva.ray.io"
#: RayCluster opt-in: ``"true"`` to let rva manage the cluster.
ENABLED = f"{PREFIX}/enabled"
#: RayCluster: name of the policy ConfigMap (same namespace) to use instead of the default.
POLICY = f"{PREFIX}/policy"
#: RayCluster: explicit GCS address ``host:port`` (default: ``<cluster>-head-svc.<ns>.svc:6379``).
GCS_ADDRESS = f"{PREFIX}/gcs-address"
#: Pod: the resize rva started and has not finished (JSON, see ``encode_in_flight``).
IN_FLIGHT = f"{PREFIX}/resize"
#: Pod: when rva's last resize of this pod finished (epoch seconds) — cooldown survives restarts.
LAST_RESIZE = f"{PREFIX}/last-resize-at"
#: Pod: port of the memory-pressure agent (the agent listens on 9464 by default).
AGENT_PORT = f"{PREFIX}/agent-port"
#: ConfigMap label that marks policy ConfigMaps.
POLICY_LABEL = f"{PREFIX}/policy"

#: Ray's own in-place resize (autoscaler v2 IPPR); rva refuses to run beside it.
RAY_IPPR = "ray.io/ippr"


def encode_in_flight(r: InFlightResize) -> str:
    return json.dumps(
        {
            "targetRequests": dict(r.target_requests),
            "targetLimits": dict(r.target_limits),
            "previousRequests": dict(r.previous_requests),
            "previousLimits": dict(r.previous_limits),
            "startedAt": r.started_at,
            "generation": r.generation,
            "reason": r.reason,
            "rayletDone": r.raylet_done,
            **({"rayMemory": r.ray_memory} if r.ray_memory is not None else {}),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def decode_in_flight(text: str | None) -> InFlightResize | None:
    """The record, or None when absent or unreadable (an unreadable record is treated as absent)."""
    if not text:
        return None
    try:
        d: dict[str, Any] = json.loads(text)
        return InFlightResize(
            target_requests=Resources.of(d["targetRequests"]),
            target_limits=Resources.of(d["targetLimits"]),
            previous_requests=Resources.of(d["previousRequests"]),
            previous_limits=Resources.of(d["previousLimits"]),
            started_at=float(d["startedAt"]),
            generation=int(d["generation"]),
            reason=str(d["reason"]),
            raylet_done=bool(d.get("rayletDone", False)),
            ray_memory=int(d["rayMemory"]) if d.get("rayMemory") is not None else None,
        )
    except (ValueError, KeyError, TypeError):
        return None
